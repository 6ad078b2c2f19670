//! `silo init --example` embeds `examples/`; rebuild when any file in it
//! changes (include_dir cannot tell cargo on stable Rust).
// Build scripts talk to cargo on stdout; the binary's rule does not apply.
#[allow(clippy::disallowed_macros)]
fn main() {
    println!("cargo:rerun-if-changed=../../examples");
}
