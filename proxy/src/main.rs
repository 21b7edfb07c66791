//! The `tailgate` binary (skeleton; see issue 5).

fn main() {
    eprintln!("tailgate: not built yet (issue 5)");
    std::process::exit(2);
}
