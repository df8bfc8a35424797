#!/usr/bin/env bash
# Re-runs the fidelity table of docs/fidelity.md: Maelstrom's broadcast
# performance guide rows, with the flooding fixture under maelstrom-sim.
# Each run holds /tmp/bench.lock so that timed runs never overlap.
# Usage: docs/fidelity.sh [SEED...]   (default seed 1)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin maelstrom-sim --bin fixture-flood >&2
SIM=target/release/maelstrom-sim
FLOOD=target/release/fixture-flood
STORE=${STORE:-/tmp/fidelity-store}
SEEDS=("${@:-1}")

# name | doc figures | extra arguments
ROWS=(
  "5 grid, echo-back|5.0 msgs/op|--rate 100 --time-limit 20 -- --echo"
  "5 grid|2.94 msgs/op|--rate 100 --time-limit 20"
  "25 grid|27.8 msgs/op|--node-count 25 --rate 100 --time-limit 20"
  "25 line|12.0 msgs/op|--node-count 25 --topology line --rate 100 --time-limit 20"
  "25 line, latency 10, random pick|median 86, max 224|--node-count 25 --topology line --latency 10 --rate 100 --time-limit 20 --thread-pick random"
  "25 line, latency 10, round-robin|median 86, max 224|--node-count 25 --topology line --latency 10 --rate 100 --time-limit 20"
  "25 grid, latency 100|median 452, max 791|--node-count 25 --latency 100 --rate 100 --time-limit 20"
  "25 grid, latency 100 exponential|median 229, max 630|--node-count 25 --latency 100 --latency-dist exponential --rate 100 --time-limit 20"
  "25 total, latency 100|290 msgs/op, median 77, max 97|--node-count 25 --topology total --latency 100 --rate 100 --time-limit 20"
  "25 tree4, latency 100|12.0 msgs/op, median 386, max 505|--node-count 25 --topology tree4 --latency 100 --rate 100 --time-limit 20"
)

echo "| row | doc | seed | servers msgs/op | stable latency median | max | harness lateness p99 / max (ms) | valid |"
echo "|---|---|---|---|---|---|---|---|"
for row in "${ROWS[@]}"; do
  IFS='|' read -r name doc args <<<"$row"
  for seed in "${SEEDS[@]}"; do
    # shellcheck disable=SC2086
    flock /tmp/bench.lock "$SIM" test -w broadcast --bin "$FLOOD" --store "$STORE" --seed "$seed" $args >/dev/null 2>&1 || true
    python3 - "$STORE/latest/results.json" "$name" "$doc" "$seed" <<'PY'
import json, sys
path, name, doc, seed = sys.argv[1:]
r = json.load(open(path))
lat = r["workload"].get("stable-latencies", {})
h = r["harness"]["delivery-lateness-ms"] if r["harness"].get("delivery-lateness-ms") else None
late = f'{h["p99"]:.2f} / {h["max"]:.2f}' if h else "n/a (no timed deliveries)"
print(f'| {name} | {doc} | {seed} | {r["net"]["servers"]["msgs-per-op"]:.2f} | {lat.get("0.5")} | {lat.get("1")} | {late} | {r["valid?"]} |')
PY
  done
done
