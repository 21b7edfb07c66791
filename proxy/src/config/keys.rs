//! Deserializing one component's keys, with serde's message recorded at the exact key path. Its own
//! module (below `registry`) so component config modules can use it without importing the registry
//! that imports them.

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use super::error::{join, ConfigErrors};

/// Deserializes `value` into `T`, recording serde's message at the exact key path on failure.
/// A `null` component (`batch:` with nothing under it) means all defaults, as in the collector.
pub fn parse_keys<T: DeserializeOwned>(
    value: Value,
    path: &str,
    errors: &mut ConfigErrors,
) -> Option<T> {
    let value = if value.is_null() {
        Value::Mapping(Mapping::new())
    } else {
        value
    };
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(t) => Some(t),
        Err(e) => {
            let inner = e.path().to_string();
            let full = if inner == "." {
                path.to_owned()
            } else {
                join(path, &inner)
            };
            errors.push(full, e.into_inner().to_string());
            None
        }
    }
}
