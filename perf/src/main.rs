//! tailgate-perf: load generator, sink and scenarios (skeleton; see issue 8).

fn main() {
    eprintln!("tailgate-perf: the demo is not built yet (issue 8); nothing to run");
}
