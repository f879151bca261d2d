//! Integration tests of graft-data against independently built references.

mod data {
    pub mod batch;
    pub mod cache;
    pub mod common;
    pub mod corrupt;
    pub mod csv;
    pub mod f16;
    pub mod format_roundtrip;
    pub mod fuzz_corpus;
    pub mod idx;
    pub mod images;
    pub mod kshot;
    pub mod npy;
    pub mod ops;
    pub mod photo;
    pub mod prefetch;
    pub mod real_data;
    pub mod split;
    pub mod stream;
    pub mod text;
    pub mod writer;
}
