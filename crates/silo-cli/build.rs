//! `silo init --example` embeds `examples/`; rebuild when any file in it
//! changes (include_dir cannot tell cargo on stable Rust).
fn main() {
    println!("cargo:rerun-if-changed=../../examples");
}
