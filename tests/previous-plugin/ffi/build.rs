//! Compiles this copy under the name it was released with: the layout
//! checker compares the package name (and version) recorded in every type
//! layout, and a workspace cannot hold two packages named `openclaw-ffi`.
fn main() {
    println!("cargo:rustc-env=CARGO_PKG_NAME=openclaw-ffi");
}
