//! Criterion benches of the wire layer (filled in below).

fn main() {}
