#!/usr/bin/env bash
# The simulator smoke set (CI gate): ci-smoke with two seeds against the real cloudcore and
# API server code, devices-smoke (DeviceTwin, virtual mappers, DeviceStatus) with one, then
# the determinism check (same seed in two processes, same digest).
# Reports go to a temporary directory; exit codes are fleet's (127 crash, 128 liveness,
# 129 safety, 1 not deterministic).
set -euo pipefail
cd "$(dirname "$0")/.."
unset RUSTFLAGS RUSTDOCFLAGS
cargo build --locked -p edgefleet-harness --bin fleet
FLEET="${CARGO_TARGET_DIR:-target}/debug/fleet"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for seed in 1 2; do
  echo "== sim smoke: ci-smoke seed $seed"
  "$FLEET" run scenarios/ci-smoke.toml --seed "$seed" --quiet --out "$out/seed-$seed"
done
echo "== sim smoke: devices-smoke seed 1"
"$FLEET" run scenarios/devices-smoke.toml --seed 1 --quiet --out "$out/devices-1"
echo "== sim determinism: ci-smoke seed 1 twice"
"$FLEET" determinism scenarios/ci-smoke.toml --seed 1 --quiet
