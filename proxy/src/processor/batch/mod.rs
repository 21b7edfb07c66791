//! The `batch` processor: per core, size and timeout triggers, `send_batch_max_size` splits.

pub mod config;
pub mod processor;
