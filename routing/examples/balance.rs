//! Prints the balance / movement table of the crate docs and `docs/routing.md`.
//!
//! `cargo run --release -p tailgate-routing --example balance [keys]` (default 1,000,000 trace IDs).

use tailgate_routing::measure::measure;
use tailgate_routing::Mode;

const SIZES: [usize; 9] = [2, 3, 4, 5, 8, 12, 16, 32, 64];
const SEED: u64 = 0x5eed;

fn main() {
    let keys = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    println!(
        "{keys} random trace IDs (seed {SEED:#x}); moved = fraction of keys whose gateway changes"
    );
    println!();
    println!("| n | ideal add / remove | jump max/mean | jump add / remove | slots max/mean | slots add / remove | collector max/mean | collector add / remove |");
    println!("|---|---|---|---|---|---|---|---|");
    for n in SIZES {
        let mut row = format!(
            "| {n} | {:.1}% / {:.1}% |",
            100.0 / (n + 1) as f64,
            100.0 / n as f64
        );
        for mode in Mode::ALL {
            let f = measure(mode, n, keys, SEED);
            row.push_str(&format!(
                " {:.3} | {:.1}% / {:.1}% |",
                f.balance,
                100.0 * f.moved_on_add,
                100.0 * f.moved_on_remove
            ));
        }
        println!("{row}");
    }
}
