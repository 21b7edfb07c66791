//! The probabilistic policy hashes exactly as the collector: vectors from testdata/gen_vectors.go.
#![allow(clippy::unwrap_used, missing_docs)]

use tailgate_sampler::policy::probabilistic::{
    hash_trace_id, threshold, Probabilistic, DEFAULT_HASH_SALT,
};

fn vectors() -> serde_json::Value {
    serde_json::from_str(include_str!("../testdata/probabilistic_vectors.json")).unwrap()
}

fn trace_id(hex: &str) -> [u8; 16] {
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    id
}

#[test]
fn thresholds_match_go_big_float() {
    let v = vectors();
    let list = v["thresholds"].as_array().unwrap();
    assert!(list.len() > 10);
    for t in list {
        let pct = t["percentage"].as_f64().unwrap();
        let want: u64 = t["threshold"].as_str().unwrap().parse().unwrap();
        assert_eq!(threshold(pct / 100.0), want, "percentage {pct}");
    }
}

#[test]
fn hashes_and_decisions_match_the_collector() {
    let v = vectors();
    let list = v["hashes"].as_array().unwrap();
    assert_eq!(list.len(), 200);
    let mut sampled = 0;
    for h in list {
        let salt = h["salt"].as_str().unwrap();
        let id = trace_id(h["trace_id"].as_str().unwrap());
        let want: u64 = h["hash"].as_str().unwrap().parse().unwrap();
        let effective = if salt.is_empty() {
            DEFAULT_HASH_SALT
        } else {
            salt
        };
        assert_eq!(hash_trace_id(effective, &id), want);
        let pct = h["percentage"].as_f64().unwrap();
        let expect = h["sampled"].as_bool().unwrap();
        assert_eq!(Probabilistic::new(salt, pct).samples(&id), expect, "{h}");
        sampled += usize::from(expect);
    }
    // The vectors exercise both outcomes.
    assert!(sampled > 20 && sampled < 180, "{sampled}");
}
