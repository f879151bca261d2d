#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod batch;
pub mod cache;
pub mod checksum;
pub mod csv;
pub mod dataset;
pub mod error;
pub mod f16;
pub mod format;
pub mod idx;
pub mod images;
pub mod metadata;
pub mod npy;
pub mod ops;
pub mod output;
pub mod photo;
mod pixel_stats;
pub mod rng;
pub mod split;
pub mod stream;
pub mod text;
pub mod view;
pub mod writer;

pub use batch::{Batch, BatchIter, Normalize, PrefetchBatches};
pub use cache::{FeatureCache, FeatureKey, Features};
pub use csv::{import_csv, CsvOptions, LabelColumn};
pub use dataset::Dataset;
pub use error::DataError;
pub use format::{write_f16_dataset, write_f32_dataset, write_u8_dataset, ElementType};
pub use idx::{import_idx, read_idx_images, read_idx_labels, IdxImages};
pub use images::{import_image_folder, ImageFolderOptions, Resample};
pub use metadata::Metadata;
pub use npy::{import_npy, read_npy, read_npy_labels, write_npy_f32, NpyArray, NpyData, NpyHeader};
pub use ops::{
    concat, detect_format, import, inspect, split, verify, ImportOptions, InputFormat, Summary,
};
pub use rng::SplitMix64;
pub use split::{Part, SplitRule};
pub use stream::WindowedReader;
pub use text::{write_text_dataset, TextDataset, TextView};
pub use view::View;
pub use writer::DatasetWriter;
