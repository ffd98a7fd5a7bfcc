//! Histogram storage: exact classic buckets plus HDR counts, recorded per
//! thread and merged on read. The handle that records into it is
//! [`crate::handles`]' `Histogram`.

mod bucket_map;
mod buckets;
mod exponential;
mod hdr_counts;
pub(crate) mod layout;
pub(crate) mod storage;

pub(crate) use bucket_map::BucketMap;
pub use buckets::Buckets;
pub use exponential::{ExponentialBuckets, ExponentialScale};
pub(crate) use storage::HistogramStorage;
pub use storage::{HistogramValue, Quantiles};
