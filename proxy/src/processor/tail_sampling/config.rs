//! Keys of the `tail_sampling` processor: delegated whole to `tailgate-sampler`'s parser, so the
//! proxy and the engine can never disagree about what a key means.

use serde_yaml::{Mapping, Value};
use tailgate_sampler::SamplerConfig;

use super::membership::{self, MembershipConfig};
use crate::config::error::{join, ConfigErrors};

/// `processors.tail_sampling`: the sampler's checked settings.
#[derive(Debug, Clone)]
pub struct TailSamplingConfig {
    /// What every core's engine is built from (`num_shards` is set to the core count at start).
    pub sampler: SamplerConfig,
    /// `tailgate.membership`: the gateway's peers (issue 18), when set.
    pub membership: Option<MembershipConfig>,
}

/// The default of `tailgate.max_buffered_bytes` (the engine's byte budget over retained request
/// buffers) when the config sets none: half the soft limit (limit − spike) of the memory_limiter
/// in the same pipeline, the smallest if there are several; no budget without one.
///
/// Why half: a buffered span costs about 1.5× its retained bytes in RSS (views, trace table,
/// allocator; docs/proxy-measurements.md, "Gateway"), so a full budget is about three quarters of
/// the soft limit, and the last quarter is left for requests in flight, batches and sending
/// queues. Over the budget the engine decides nothing early: it drops its oldest undecided traces
/// (counted, reason `evicted_too_early`) rather than let memory_limiter refuse every client.
pub fn default_byte_budget(soft_limits: impl IntoIterator<Item = u64>) -> Option<u64> {
    soft_limits
        .into_iter()
        .filter(|s| *s > 0)
        .min()
        .map(|s| s / 2)
}

/// Parses a `tail_sampling` block at `path` (e.g. `processors.tail_sampling/gw`). The sampler
/// reports key paths starting with `tail_sampling`; they are re-rooted at `path`. Its warnings
/// (the seed's top-level cache keys, ...) go to `warnings`.
pub fn parse(
    value: Value,
    path: &str,
    errors: &mut ConfigErrors,
    warnings: &mut Vec<String>,
) -> Option<TailSamplingConfig> {
    let mut value = if value.is_null() {
        Value::Mapping(Mapping::new())
    } else {
        value
    };
    let membership_block = membership::take(&mut value);
    match SamplerConfig::from_yaml_value(value) {
        Ok((sampler, found)) => {
            warnings.extend(
                found
                    .iter()
                    .map(|w| format!("{}: {}", reroot(&w.path, path), w.message)),
            );
            let membership = match membership_block {
                None => None,
                Some(block) => {
                    let at = join(path, "tailgate.membership");
                    membership::parse(
                        block,
                        &at,
                        sampler.decision_wait,
                        sampler.timer_tick,
                        errors,
                    )
                }
            };
            Some(TailSamplingConfig {
                sampler,
                membership,
            })
        }
        Err(e) => {
            for p in e.problems {
                errors.push(reroot(&p.path, path), p.message);
            }
            None
        }
    }
}

/// `tail_sampling.policies[0].x` → `processors.tail_sampling/gw.policies[0].x`.
fn reroot(sampler_path: &str, path: &str) -> String {
    match sampler_path.strip_prefix("tail_sampling") {
        Some(rest) => format!("{path}{rest}"),
        None if sampler_path.is_empty() => path.to_owned(),
        None => format!("{path}.{sampler_path}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn run(yaml: &str) -> (Option<TailSamplingConfig>, ConfigErrors, Vec<String>) {
        let mut errors = ConfigErrors::default();
        let mut warnings = Vec::new();
        let v: Value = serde_yaml::from_str(yaml).unwrap();
        let c = parse(v, "processors.tail_sampling/gw", &mut errors, &mut warnings);
        (c, errors, warnings)
    }

    #[test]
    fn seed_keys_parse_with_a_warning_rooted_at_the_component() {
        let (c, errors, warnings) = run(
            "decision_wait: 30s\nnum_traces: 50000\nexpected_new_traces_per_sec: 1000\n\
             sampled_cache_size: 100000\nnon_sampled_cache_size: 100000\n\
             policies: [{name: p, type: probabilistic, probabilistic: {sampling_percentage: 10}}]",
        );
        assert!(errors.problems.is_empty(), "{errors:?}");
        let c = c.unwrap();
        assert_eq!(c.sampler.sampled_cache_size, 100_000);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings
                .iter()
                .all(|w| w.starts_with("processors.tail_sampling/gw.")),
            "{warnings:?}"
        );
    }

    #[test]
    fn the_default_budget_is_half_the_smallest_soft_limit() {
        assert_eq!(default_byte_budget([]), None);
        assert_eq!(default_byte_budget([0]), None);
        assert_eq!(default_byte_budget([800 << 20]), Some(400 << 20));
        assert_eq!(default_byte_budget([800 << 20, 200 << 20]), Some(100 << 20));
        // The key, when set, is read as written (the default is applied at start-up only when
        // it is absent).
        let policy = "policies: [{name: a, type: always_sample}]";
        let (c, errors, _) = run(&format!("tailgate: {{max_buffered_bytes: 1000}}\n{policy}"));
        assert_eq!(
            c.unwrap().sampler.max_buffered_bytes,
            Some(1000),
            "{errors:?}"
        );
        let (c, _, _) = run(policy);
        assert_eq!(c.unwrap().sampler.max_buffered_bytes, None);
    }

    #[test]
    fn problems_carry_the_full_key_path() {
        let (c, errors, _) = run(
            "decision_wait: 10s\npolicies: [{name: e, type: status_code, status_code: {status_codes: [BAD]}}]",
        );
        assert!(c.is_none());
        assert!(
            errors.problems.iter().any(|p| p
                .path
                .starts_with("processors.tail_sampling/gw.policies[0]")),
            "{errors:?}"
        );
        let (_, errors, _) = run("decision_wait: 10s\nbogus: 1\npolicies: []");
        assert!(
            errors
                .problems
                .iter()
                .any(|p| p.path.starts_with("processors.tail_sampling/gw")
                    && p.message.contains("bogus")),
            "{errors:?}"
        );
    }
}
