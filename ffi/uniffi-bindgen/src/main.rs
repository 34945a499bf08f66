//! uniffi's binding generator built from the same uniffi version as `yilian-ffi`, so the
//! generated Kotlin and Swift always match the library's scaffolding
//! (`scripts/bindings` calls it in library mode).

fn main() {
    uniffi::uniffi_bindgen_main()
}
