#!/usr/bin/env bash
# Runs the Gossip Glomers broadcast challenges (3a-3e) against broadcast-node,
# under real Maelstrom when one is installed, else under maelstrom-sim.
set -euo pipefail

usage() {
  cat <<'TXT'
Usage: ./maelstrom.sh [OPTIONS] [CHALLENGE...] [-- NODE ARGS...]
       ./maelstrom.sh stress [OPTIONS] [ROW...] the stress suite (maelstrom-sim only), see below
       ./maelstrom.sh test [HARNESS ARGS...]   pass straight through to the harness
       ./maelstrom.sh sweep [OPTIONS]          the reference write-up's interval x branching sweep
                                               and the profiles: docs/sweep.md, docs/frontier.svg

CHALLENGE is one of 3a 3b 3c 3d 3e fast (default: 3a 3b 3c 3d 3e).
Each runs with the challenge parameters (spec section 8); 3d, 3e and fast
start the node with the profile of the same name.

Options:
  --seeds N        run each challenge on N random seeds (maelstrom-sim only;
                   the seeds are in the run labels, rerun one with --seed K)
  --seed K         run each challenge once, on seed K (maelstrom-sim only)
  --nemesis        add --nemesis partition to every challenge
  --sim            use maelstrom-sim even if real Maelstrom is installed
  --no-build       do not run cargo build --release first
  -h, --help       this text

Real Maelstrom is used when the environment variable MAELSTROM names its
launcher or `maelstrom` is on PATH (unless --sim). Results are read from each
run's store/latest/results.edn either way; the table shows servers
msgs-per-op and the stable-latency median (0.5) and max (1) in ms, and
whether the run passes the challenge's limits and this project's targets;
with several runs per challenge, a line per challenge gives the pass counts
("3d 10/10 pass") and the worst msgs/op, median and max over its runs.
A maelstrom-sim run whose
own lateness was over its bound (:harness :lateness-exceeded true) is run
once more; the table then shows the rerun, labelled RUN-rerun, and its
harness column says whether that one was late too, and how many output
lines the nodes wrote that could not be routed (N unroutable: each one
silenced its node for the rest of the run, as under Maelstrom).

Stress rows (ROW, default all but 3d-100n; each on 25 nodes, rate 100,
latency 100 unless said otherwise, limits and targets in results-table):
  3d-jitter 3e-jitter fast-jitter   --delivery-jitter-ms 5
  3d-loss      3d profile, --p-loss 0.2 --p-dup 0.1, clients exempt
  fast-loss    fast profile, --p-loss 0.2, clients exempt
  5n-loss      5 nodes, rate 10, --p-loss 0.3 --p-dup 0.2, clients exempt
  3d-100n      100 nodes, rate 1000, 3d profile (slow: about 45 s a run)
  kill         5 nodes, rate 10, --nemesis kill, the node with --durable-acks
  kill-partition-pause   the same with --nemesis partition,kill,pause
  kill-3d      3d profile, --nemesis kill, --durable-acks
  volatile-kill   5 nodes, rate 10, --nemesis kill, without --durable-acks:
               reports what a SIGKILL loses (judged on nothing)
TXT
}

die() { echo "maelstrom.sh: $*" >&2; exit 2; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$root"
bin_dir="$root/target/release"
node_bin="$bin_dir/broadcast-node"

build=1
force_sim=0
seeds=()
nemesis=0
challenges=()
node_args=()
mode=challenges

if [[ $# -gt 0 && ( "$1" == "test" || "$1" == "sweep" || "$1" == "stress" ) ]]; then
  mode=$1
  shift
fi

if [[ $mode == test ]]; then
  harness_args=("$@")
else
  while [[ $# -gt 0 ]]; do
    case "$1" in
      -h|--help) usage; exit 0 ;;
      --seeds)
        [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || die "--seeds needs a positive integer"
        seeds=()
        for _ in $(seq 1 "$2"); do
          seeds+=("$(( $(od -An -N8 -td8 /dev/urandom) & 0x7fffffffffffffff ))")
        done
        shift 2 ;;
      --seed)
        [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || die "--seed needs a non-negative integer"
        seeds=("$2"); shift 2 ;;
      --nemesis) nemesis=1; shift ;;
      --sim) force_sim=1; shift ;;
      --no-build) build=0; shift ;;
      --) shift; node_args=("$@"); break ;;
      3a|3b|3c|3d|3e|fast) [[ $mode == challenges ]] || die "$mode takes no challenge names"
        challenges+=("$1"); shift ;;
      3d-jitter|3e-jitter|fast-jitter|3d-loss|fast-loss|5n-loss|3d-100n|kill|kill-partition-pause|kill-3d|volatile-kill)
        [[ $mode == stress ]] || die "$1 is a stress row: ./maelstrom.sh stress $1"
        challenges+=("$1"); shift ;;
      sweep) mode=sweep; shift ;;
      *) die "unknown argument '$1' (see --help)" ;;
    esac
  done
  [[ $mode != sweep || ${#challenges[@]} -eq 0 ]] || die "sweep takes no challenge names"
fi

harness=()
harness_kind=sim
if [[ $force_sim == 0 && -n "${MAELSTROM:-}" ]]; then
  harness=("$MAELSTROM"); harness_kind=maelstrom
elif [[ $force_sim == 0 ]] && command -v maelstrom >/dev/null 2>&1; then
  harness=(maelstrom); harness_kind=maelstrom
else
  harness=("$bin_dir/maelstrom-sim")
fi

if [[ $build == 1 ]]; then
  cargo build --release --quiet --bin broadcast-node --bin maelstrom-sim --bin results-table
fi

if [[ $mode == test ]]; then
  exec "${harness[@]}" test "${harness_args[@]}"
fi

if [[ ${#seeds[@]} -gt 0 && $harness_kind != sim ]]; then
  die "--seed/--seeds need maelstrom-sim (real Maelstrom has no seed option)"
fi
if [[ $mode == stress && $harness_kind != sim ]]; then
  die "stress needs maelstrom-sim's extensions (pass --sim)"
fi
[[ ${#seeds[@]} -gt 0 ]] || seeds=("")

# Challenge parameters (spec section 8) and the node profile each one uses.
params() {
  case "$1" in
    3a) echo "--node-count 1 --time-limit 20 --rate 10" ;;
    3b) echo "--node-count 5 --time-limit 20 --rate 10" ;;
    3c) echo "--node-count 5 --time-limit 20 --rate 10 --nemesis partition" ;;
    3d|3e|fast) echo "--node-count 25 --time-limit 20 --rate 100 --latency 100" ;;
    3d-jitter|3e-jitter|fast-jitter)
      echo "--node-count 25 --time-limit 20 --rate 100 --latency 100 --delivery-jitter-ms 5" ;;
    3d-loss) echo "--node-count 25 --time-limit 20 --rate 100 --latency 100 --p-loss 0.2 --p-dup 0.1 --p-loss-clients exempt" ;;
    fast-loss) echo "--node-count 25 --time-limit 20 --rate 100 --latency 100 --p-loss 0.2 --p-loss-clients exempt" ;;
    5n-loss) echo "--node-count 5 --time-limit 20 --rate 10 --p-loss 0.3 --p-dup 0.2 --p-loss-clients exempt" ;;
    3d-100n) echo "--node-count 100 --time-limit 20 --rate 1000 --latency 100" ;;
    kill|volatile-kill) echo "--node-count 5 --time-limit 20 --rate 10 --nemesis kill" ;;
    kill-partition-pause) echo "--node-count 5 --time-limit 20 --rate 10 --nemesis partition,kill,pause" ;;
    kill-3d) echo "--node-count 25 --time-limit 20 --rate 100 --latency 100 --nemesis kill" ;;
  esac
}
# Whether a row's nodes answer broadcast_ok only once another node holds the
# value (BROADCAST_DURABLE_ACKS; empty: as the environment says).
durable() {
  case "$1" in
    kill|kill-partition-pause|kill-3d) echo 1 ;;
    volatile-kill) echo 0 ;;
  esac
}
profile() {
  case "$1" in
    3d|3e|fast) echo "$1" ;;
    3d-*|3e-*|fast-*) echo "${1%%-*}" ;;
    kill-3d) echo 3d ;;
    *) echo default ;;
  esac
}

# The console line of a finished maelstrom-sim run: its summary's figures.
outcome() {
  sed -n -e 's/^valid? *\(.*\)/valid \1/p' -e 's/^lost *\(.*\)/lost \1/p' \
    -e 's/^servers msgs-per-op *\(.*\)/msgs-per-op \1/p' \
    -e 's/^stable latency (ms) *\(.*\)/stable latency (ms) \1/p' "$1" | paste -sd ';' - | sed 's/;/; /g'
}

rows=()
run_number=0
run_one() { # challenge label profile seed [extra harness args...]
  local challenge=$1 label=$2 prof=$3 seed=$4; shift 4
  local args
  read -r -a args <<<"$(params "$challenge")"
  if [[ $nemesis == 1 && " ${args[*]} " != *" --nemesis "* ]]; then
    args+=(--nemesis partition)
    # Latency is not scored under partitions: judge validity only.
    challenge="$challenge-partition"
  fi
  [[ -n "$seed" ]] && args+=(--seed "$seed")
  args+=("$@")
  run_number=$((run_number + 1))
  local attempt status results figures
  local node_env=(BROADCAST_PROFILE="$prof") durable_acks
  durable_acks=$(durable "${challenge%-partition}")
  [[ -z "$durable_acks" ]] || node_env+=(BROADCAST_DURABLE_ACKS="$durable_acks")
  for attempt in first rerun; do
    echo "== [$run_number/$run_total] $label: ${harness[*]##*/} test -w broadcast ${args[*]} (profile $prof${durable_acks:+, BROADCAST_DURABLE_ACKS=$durable_acks}${seed:+, seed $seed})" >&2
    status=0
    env "${node_env[@]}" "${harness[@]}" test -w broadcast --bin "$node_bin" "${args[@]}" \
      ${node_args[@]+-- "${node_args[@]}"} >"$log_dir/$label.out" 2>&1 || status=$?
    if [[ $status -ge 254 ]]; then
      echo "   aborted (exit $status); last lines of the harness output:" >&2
      tail -n 5 "$log_dir/$label.out" >&2
      rows+=("$challenge=$label=ABORTED")
      return
    fi
    figures=$(outcome "$log_dir/$label.out")
    if [[ -n "$figures" ]]; then echo "   $figures" >&2; fi
    results=$(readlink -f store/latest)/results.edn
    # A run on an overloaded machine is not evidence: run it once more.
    if [[ $attempt == first ]] && grep -q ':lateness-exceeded true' "$results"; then
      echo "   harness lateness over its bound; running $label once more" >&2
      label="$label-rerun"
      continue
    fi
    rows+=("$challenge=$label=$results")
    return
  done
}

log_dir=$(mktemp -d "${TMPDIR:-/tmp}/maelstrom-sh.XXXXXX")
if [[ ${#challenges[@]} -eq 0 ]]; then
  case $mode in
    challenges) challenges=(3a 3b 3c 3d 3e) ;;
    stress) challenges=(3d-jitter 3e-jitter fast-jitter 3d-loss fast-loss 5n-loss
                        kill kill-partition-pause kill-3d volatile-kill) ;;
  esac
fi
profiles=(3d 3e fast)
if [[ $mode == sweep ]]; then
  run_total=$(( (20 + ${#profiles[@]}) * ${#seeds[@]} ))
  for interval in 100 200 300 500; do
    for branch in 1 2 4 8 16; do
      for seed in "${seeds[@]}"; do
        label="i${interval}-b${branch}${seed:+-s$seed}"
        node_args=(--overlay "tree:$branch" --interval-ms "$interval")
        run_one 3e "$label" default "$seed"
      done
    done
  done
  node_args=()
  for prof in "${profiles[@]}"; do
    for seed in "${seeds[@]}"; do
      run_one "$prof" "$prof${seed:+-s$seed}" "$prof" "$seed"
    done
  done
  mkdir -p docs
  {
    echo "# Sweep: our node against the reference write-up's table"
    echo
    echo "Generated by \`./maelstrom.sh sweep\` on $(date -u +%Y-%m-%d) with ${harness[*]##*/}:"
    echo "25 nodes, rate 100, latency 100 ms, 20 s; our node with \`--overlay tree:BRANCH --interval-ms INTERVAL\`."
    echo "Latencies are stable-latency quantiles in ms; msgs/op is servers msgs-per-op."
    echo
    "$bin_dir/results-table" --sweep "${rows[@]}"
  } | tee docs/sweep.md
  "$bin_dir/results-table" --frontier docs/sweep.md docs/frontier.svg
  echo "frontier: docs/frontier.svg" >&2
  exit 0
fi

run_total=$(( ${#challenges[@]} * ${#seeds[@]} ))
for challenge in "${challenges[@]}"; do
  for seed in "${seeds[@]}"; do
    run_one "$challenge" "$challenge${seed:+-s$seed}" "$(profile "$challenge")" "$seed"
  done
done
"$bin_dir/results-table" "${rows[@]}"
