#!/usr/bin/env bash
# The test command (README): installs what the tests need, then runs formatting, lints,
# every test of the workspace, and builds the benchmarks. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/deps.sh
# A full run writes about 5 GiB under target/. When the disk fills, the linker dies with
# SIGBUS (a "Bus error" from lld), which reads like a toolchain bug: say so up front.
free_kib=$(df -Pk . | awk 'NR == 2 {print $4}')
echo "== disk: $((free_kib / 1024 / 1024)) GiB free for target/"
if [ "$free_kib" -lt $((8 * 1024 * 1024)) ]; then
  echo "ci/test.sh: WARNING: less than 8 GiB free; the build may fail with linker bus errors" >&2
fi
# RUSTFLAGS would replace .cargo/config.toml's --cfg tokio_unstable; never let it leak in.
unset RUSTFLAGS RUSTDOCFLAGS
# Incremental caches double the size of a one-shot build; CI never reuses them.
export CARGO_INCREMENTAL=0
echo "== fmt"; cargo fmt --all -- --check
echo "== clippy"; cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== build"; cargo build --workspace --all-targets --locked
echo "== benches build"; cargo bench --workspace --no-run --locked
# Doc tests first, so the run closes with the summary of the real test suite.
echo "== doc tests"; cargo test --workspace --doc --locked
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
echo "== simulator smoke set"
bash ci/smoke.sh
