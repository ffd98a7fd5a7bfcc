//! The shared fixtures (`beluga_test_support::otlp` and `servers`).
#![allow(dead_code, unreachable_pub, unused_imports)]

pub use beluga_test_support::otlp::*;
pub use beluga_test_support::poll;
pub use beluga_test_support::servers as shared;
