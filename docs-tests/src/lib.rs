//! The Rust blocks of the README and of `docs/tutorial.md`, compiled (and,
//! unless marked `no_run`, run) as doctests, so the pages cannot drift from
//! the code: `cargo test -p beluga-docs-tests --doc`. A crate of its own
//! because the pages use every user-facing crate, and no library should
//! depend on the others only to test a page.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

/// The README's examples.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// `docs/tutorial.md`.
#[cfg(doctest)]
#[doc = include_str!("../../docs/tutorial.md")]
pub struct TutorialDoctests;
