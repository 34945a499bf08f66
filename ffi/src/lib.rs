//! Yilian FFI: the uniffi bindings over `yilian-core` for the Android and iOS apps (built with the phones issue).
