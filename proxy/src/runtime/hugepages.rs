//! Transparent huge pages off for the whole process, before any executor allocates.
//!
//! mimalloc maps its arenas read-write up front; where the kernel backs them with transparent huge
//! pages, a 2 MiB page is resident (and zeroed) as soon as one byte of it is touched, so RSS runs
//! ahead of what the allocator hands out: a gateway buffering 2 M spans sat at 1.56× the wire bytes
//! with THP and 1.48× without (docs/proxy-measurements.md, gateway). `PR_SET_THP_DISABLE` is
//! checked at fault time, so setting it at start-up covers the arena mimalloc reserved before
//! `main` too.
//! Setting `MIMALLOC_ALLOW_THP` (mimalloc's own switch, read before `main`) leaves the choice to it.

/// The environment variable that, when set, leaves THP to mimalloc.
pub const ALLOW_THP_VAR: &str = "MIMALLOC_ALLOW_THP";

/// Whether tailgate should turn THP off, given `MIMALLOC_ALLOW_THP` from the environment.
pub fn should_disable(allow_thp_var: Option<&str>) -> bool {
    allow_thp_var.is_none()
}

/// Turns THP off for this process unless `MIMALLOC_ALLOW_THP` is set; a failure (kernel without
/// the prctl) only costs memory, so it is logged, not returned.
pub fn disable_unless_configured() {
    if !should_disable(std::env::var(ALLOW_THP_VAR).ok().as_deref()) {
        return;
    }
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        tracing::debug!("cannot disable transparent huge pages: {e}");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_variable_leaves_the_choice_to_mimalloc() {
        assert!(should_disable(None));
        assert!(!should_disable(Some("1")));
        assert!(!should_disable(Some("0")));
    }

    #[test]
    fn disabling_sets_the_process_flag() {
        if std::env::var(ALLOW_THP_VAR).is_ok() {
            return;
        }
        disable_unless_configured();
        assert!(nix::sys::prctl::get_thp_disable().unwrap());
    }
}
