// The rule pages in docs/rules are embedded (`silo lint --explain`);
// rebuild when they change.
fn main() {
    println!("cargo:rerun-if-changed=../../docs/rules");
}
