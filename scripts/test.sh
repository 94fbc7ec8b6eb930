#!/usr/bin/env bash
# Every test and check of the workspace, as CI runs it: formatting, lints, the test suites,
# the docs, a build of the benchmarks and examples, a short run of every fuzz target, and a
# few-second run of the benchmark harness (rawlimit, loadgen against corecast and GStreamer),
# so none of them can rot.
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

# Every fuzz target for CORECAST_FUZZ_SECONDS each (default 30; 0 only builds them and replays
# fuzz/regressions/), failing on a crash. Two or three minutes, most of it the first build.
echo "== fuzz targets, briefly (scripts/fuzz.sh ${CORECAST_FUZZ_SECONDS:-30})"
if cargo +nightly --version >/dev/null 2>&1 && cargo fuzz --version >/dev/null 2>&1; then
  scripts/fuzz.sh "${CORECAST_FUZZ_SECONDS:-30}"
else
  echo "!!! SKIPPED: the fuzz targets need the nightly toolchain and cargo-fuzz"
  echo "!!! (rustup toolchain install nightly --profile minimal; cargo install cargo-fuzz --locked)"
fi

echo "== benchmark harness, briefly (scripts/bench.sh --quick; writes only under target/)"
scripts/bench.sh --quick
echo "== GSO benchmark harness, briefly (scripts/bench-gso.sh --quick; writes only under target/)"
scripts/bench-gso.sh --quick

# One closing line with the totals over every test binary (the last binary cargo runs is a
# doc-test target with no tests, whose own closing line would say 0).
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' \
  target/test-output.log
