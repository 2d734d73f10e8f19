//! Retries with exponential backoff and jitter.

mod classify;

pub use classify::{is_transient_io_kind, Transient};
