//! Fuzzes the parsers that see untrusted bytes first: the data-set header
//! and metadata (the whole in-memory validation `Dataset::open` does) and
//! the NPY header. None may panic, hang or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = graft_data::dataset::validate_bytes(data) {
        // A header that validated must describe sections inside the input.
        assert!(header.samples.offset + header.samples.len <= data.len() as u64);
        assert!(header.labels.offset + header.labels.len <= data.len() as u64);
        assert!(header.metadata.offset + header.metadata.len <= data.len() as u64);
        let _ = header.encode();
    }
    let _ =
        graft_data::format::Header::decode(data, data.len() as u64, std::path::Path::new("fuzz"));
    let _ = graft_data::Metadata::decode(data);
    if let Ok(h) = graft_data::npy::parse_npy_header(data) {
        assert!(h.data_offset <= data.len());
        let _ = h.element_count();
    }
});
