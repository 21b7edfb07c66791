//! `resolver.static`: a fixed list of backends, published once at start-up.

use tailgate_routing::Member;

/// The members of a static list, kept as written (the collector's ring hashes them that way).
/// Ordinals come from `name-N` host names when every entry has a distinct one, else from list
/// positions (then the list must be identical on every agent and grow by appending); see
/// `docs/routing.md`.
pub fn members(hostnames: &[String]) -> Vec<Member> {
    Member::static_list(hostnames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_from_names_or_positions() {
        let named = members(&["gw-1:4317".to_owned(), "gw-0:4317".to_owned()]);
        assert_eq!(named[0].ordinal(), Some(1));
        let plain = members(&["b:4317".to_owned(), "a:4317".to_owned()]);
        assert_eq!(plain[0].ordinal(), Some(0));
        assert_eq!(plain[1].ordinal(), Some(1));
    }
}
