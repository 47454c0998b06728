//! librdkafka (through lockstep-sink and lockstep-store) and libpg_query (through lockstep-ddl)
//! both compile xxHash into their static libraries with the same public symbol names
//! (`XXH32`, `XXH64_update`...), so linking both fails with "duplicate symbol". The two copies
//! (xxHash 0.6 in librdkafka, 0.8 in libpg_query) implement the same specified algorithms with
//! the same state layouts (`XXH32_state_s`, `XXH64_state_s`), so either copy serves both
//! callers: let the linker keep the first. Every package whose binaries or tests link both
//! needs this line (crates/ddl-exec has the same build script).
fn main() {
    println!("cargo:rustc-link-arg=-Wl,--allow-multiple-definition");
}
