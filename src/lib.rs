//! # steadfast
//!
//! Async fault tolerance for tokio.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod breaker;
pub mod checkpoint;
pub mod coordinator;
pub mod degradation;
mod error;
pub mod handler;
pub mod health;
pub mod recovery;
pub mod retry;
mod serde_duration;
pub mod storage;
pub mod timeout;

pub use error::ConfigError;

/// The README's examples, compiled as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
