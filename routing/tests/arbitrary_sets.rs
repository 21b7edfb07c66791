//! Property tests over arbitrary member sets and keys: building never panics (it errors with a
//! reason), routing always answers an in-range usable member, and the table does not depend on the
//! order or duplication of its input. Case counts are moderate so `cargo test` stays quick.

use proptest::prelude::*;
use tailgate_routing::{Member, Mode, RoutingTable};

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Jump), Just(Mode::Slots), Just(Mode::Collector)]
}

/// Endpoints that look like pod names, addresses, or anything at all.
fn endpoint() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..40).prop_map(|i| format!("gw-{i}.gw-headless:4317")),
        (1u8..255, 1u8..255).prop_map(|(a, b)| format!("10.0.{a}.{b}:4317")),
        "\\PC{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_set_builds_or_explains_and_routes_in_range(
        mode in mode(),
        endpoints in prop::collection::vec(endpoint(), 0..12),
        keys in prop::collection::vec(any::<[u8; 16]>(), 1..64),
        sick in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
    ) {
        let members: Vec<Member> = endpoints.iter().map(|e| Member::new(e.as_str())).collect();
        let Ok(table) = RoutingTable::build(mode, members.clone()) else {
            return Ok(()); // errors are values with a message, never panics
        };
        // Order and duplicates do not matter.
        let mut reversed = members.clone();
        reversed.reverse();
        reversed.extend(members.iter().take(2).cloned());
        prop_assert_eq!(&RoutingTable::build(mode, reversed).expect("same set"), &table);

        let names: Vec<String> = if table.is_empty() {
            Vec::new()
        } else {
            sick.iter().map(|i| table.members()[i.index(table.len())].endpoint().to_owned()).collect()
        };
        let degraded = table.failover(names.iter().map(String::as_str));
        for key in &keys {
            match (table.route_trace(key), degraded.route_trace(key)) {
                (None, None) => prop_assert!(table.is_empty()),
                (Some(a), Some(b)) => {
                    prop_assert!(a < table.len() && b < table.len());
                    prop_assert!(degraded.is_usable(b));
                    if degraded.is_usable(a) {
                        prop_assert_eq!(a, b, "a healthy member's key moved");
                    }
                }
                _ => prop_assert!(false, "empty in one table only"),
            }
            prop_assert_eq!(table.route_service(key).is_some(), !table.is_empty());
        }
    }
}

#[test]
fn tables_can_be_shared_across_cores() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RoutingTable>();
}
