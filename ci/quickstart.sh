#!/usr/bin/env bash
# The README's main command: builds the simulator (release) and runs scenarios/quickstart.toml:
# 1,000 virtual edge nodes (real edgecore code, 10 pods each) against the real cloudcore and
# the embedded API server code in one deterministic simulation, with a site partition and
# heal. Writes reports/quickstart/<seed>/ (report.json, report.md, SVG plots) and exits with
# fleet's code (0 passed, 127 crash, 128 liveness, 129 safety). Extra arguments go to
# `fleet run` (e.g. --seed 7, --nodes 200).
set -euo pipefail
cd "$(dirname "$0")/.."
unset RUSTFLAGS RUSTDOCFLAGS
if ! command -v cargo >/dev/null; then
  echo "quickstart: cargo not found; install the Rust toolchain first" >&2
  exit 2
fi
cargo build --release --locked -p edgefleet-harness --bin fleet
exec "${CARGO_TARGET_DIR:-target}/release/fleet" run scenarios/quickstart.toml "$@"
