//! Any bytes given to the `.pth` reader give a state dict or a typed error: no panic, no
//! unbounded allocation. Seed the corpus with `tests/data/cases/*.pth` (both formats):
//! `cargo +nightly fuzz run read fuzz/corpus/read ../tests/data/cases`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sd) = graft_pth::read_bytes(data) {
        for t in &sd.tensors {
            assert_eq!(t.data.len(), t.numel() * t.dtype.size(), "{}", t.name);
        }
        let _ = graft_pth::to_safetensors(&sd, &graft_pth::ConvertOptions::default());
    }
});
