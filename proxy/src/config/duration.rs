//! Go `time.ParseDuration` syntax (`200ms`, `1m30s`, `1.5h`), which collector configs use.
//!
//! One parser serves the whole config: the sampler's (`tail_sampling` durations are read by
//! `tailgate-sampler`), so every component accepts and rejects exactly the same spellings.

pub use tailgate_sampler::config::{parse_go_duration, GoDuration};
