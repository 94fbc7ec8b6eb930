#!/usr/bin/env bash
# Every test and check of the workspace, as CI runs it: formatting, lints, the test suites,
# the docs, a build of the benchmarks and examples, and a few-second run of the benchmark
# harness (rawlimit, loadgen against corecast and GStreamer), so none of them can rot.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

echo "== benchmarks and examples build"
cargo bench --workspace --no-run --locked
cargo build --release -p corecast-engine --examples --locked

echo "== engine demo, briefly (it asserts its own accounting)"
cargo run --release -q -p corecast-engine --example demo --locked -- 300 4 >/dev/null

echo "== cargo test"
mkdir -p target
cargo test --workspace --locked 2>&1 | tee target/test-output.log

echo "== benchmark harness, briefly (scripts/bench.sh --quick; writes only under target/)"
scripts/bench.sh --quick

# One closing line with the totals over every test binary (the last binary cargo runs is a
# doc-test target with no tests, whose own closing line would say 0).
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' \
  target/test-output.log
