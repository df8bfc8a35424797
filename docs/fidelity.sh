#!/usr/bin/env bash
# Re-runs the fidelity table of docs/fidelity.md: Maelstrom's broadcast
# performance guide rows, with the flooding fixture under maelstrom-sim
# (and the 25-node line row also with the fixture slowed down per message).
# Each run holds /tmp/bench.lock so that timed runs never overlap; a run
# whose harness lateness is over its bound (:lateness-exceeded true) is run
# once more and the row says "rerun".
# Usage: docs/fidelity.sh [SEED...]   (default seed 1)
# Needs python3 to read results.json (a development script, not CI).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin maelstrom-sim --bin fixture-flood >&2
SIM=target/release/maelstrom-sim
FLOOD=target/release/fixture-flood
STORE=${STORE:-/tmp/fidelity-store}
SEEDS=("${@:-1}")
LINE10="--node-count 25 --topology line --latency 10 --rate 100 --time-limit 20"

# name | doc figures | extra arguments
ROWS=(
  "5 grid, echo-back|5.0 msgs/op|--rate 100 --time-limit 20 -- --echo"
  "5 grid|2.94 msgs/op|--rate 100 --time-limit 20"
  "25 grid|27.8 msgs/op|--node-count 25 --rate 100 --time-limit 20"
  "25 line|12.0 msgs/op|--node-count 25 --topology line --rate 100 --time-limit 20"
  "25 line, latency 10, random pick|median 86, max 224|$LINE10 --thread-pick random"
  "25 line, latency 10, round-robin|median 86, max 224|$LINE10"
  "25 line, latency 10, random pick, fixture +0.8 ms per message|median 86, max 224|$LINE10 --thread-pick random -- --delay-us 800"
  "25 line, latency 10, random pick, fixture +2 ms per message|median 86, max 224|$LINE10 --thread-pick random -- --delay-us 2000"
  "25 line, latency 10, random pick, --delivery-jitter-ms 0.8|median 86, max 224|$LINE10 --thread-pick random --delivery-jitter-ms 0.8"
  "25 grid, latency 100|median 452, max 791|--node-count 25 --latency 100 --rate 100 --time-limit 20"
  "25 grid, latency 100 exponential|median 229, max 630|--node-count 25 --latency 100 --latency-dist exponential --rate 100 --time-limit 20"
  "25 total, latency 100|290 msgs/op, median 77, max 97|--node-count 25 --topology total --latency 100 --rate 100 --time-limit 20"
  "25 tree4, latency 100|12.0 msgs/op, median 386, max 505|--node-count 25 --topology tree4 --latency 100 --rate 100 --time-limit 20"
)
if [[ -n "${ROW_FILTER:-}" ]]; then
  selected=()
  for row in "${ROWS[@]}"; do [[ "$row" == *"$ROW_FILTER"* ]] && selected+=("$row"); done
  ROWS=("${selected[@]}")
fi

echo "| row | doc | seed | ops | servers msgs/op | stable latency median | max | worst lateness p99 (ms, stage) | valid |"
echo "|---|---|---|---|---|---|---|---|---|"
for row in "${ROWS[@]}"; do
  IFS='|' read -r name doc args <<<"$row"
  for seed in "${SEEDS[@]}"; do
    rerun=""
    for attempt in first rerun; do
      # shellcheck disable=SC2086
      flock /tmp/bench.lock "$SIM" test -w broadcast --bin "$FLOOD" --store "$STORE" --seed "$seed" $args >/dev/null 2>&1 || true
      if [[ $attempt == first ]] && grep -q ':lateness-exceeded true' "$STORE/latest/results.edn"; then
        rerun=" (rerun)"
        continue
      fi
      break
    done
    python3 - "$STORE/latest/results.json" "$name" "$doc" "$seed$rerun" <<'PY'
import json, sys
path, name, doc, seed = sys.argv[1:]
r = json.load(open(path))
lat = r["workload"].get("stable-latencies", {})
h = r["harness"]
stages = h.get("lateness-ms", {})
stage, worst = max(((k, v["p99"]) for k, v in stages.items()), key=lambda kv: kv[1], default=("-", 0.0))
late = f'{worst:.2f} ({stage}){" LATE" if h["lateness-exceeded"] else ""}'
ops = r["stats"]["count"]
print(f'| {name} | {doc} | {seed} | {ops} | {r["net"]["servers"]["msgs-per-op"]:.2f} | {lat.get("0.5")} | {lat.get("1")} | {late} | {r["valid?"]} |')
PY
  done
done
