//! Placeholder, replaced by the per-copy protect bench.
fn main() {}
