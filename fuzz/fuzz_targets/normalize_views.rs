#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(violation) = tollgate_core::fuzz::normalize_views(data) {
        panic!("{violation}");
    }
});
