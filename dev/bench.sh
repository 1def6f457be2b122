#!/usr/bin/env bash
# Benchmarks: criterion micro-benchmarks, load runs over the local stack, cold starts, and the comparison
# with Postmark's Node.js client. Numbers are printed; nothing here is a test.
#
#   dev/bench.sh criterion    criterion benchmarks (release profile: LTO, one codegen unit; slow to build)
#   dev/bench.sh webhook      10,000 webhook events through the webhook function against moto
#   dev/bench.sh webhook-faults  the same mix with 20% copies against 5% DynamoDB faults, checked
#                             exactly; seeds $SEEDS (default "1 2 3"); not part of `all`
#   dev/bench.sh recover      2,000 jobs ($JOBS) through the whole stack with 30% of the webhooks lost for
#                             good, then one recovery run, checked against the simulator; seeds $SEEDS
#                             (default "1 2 3"); not part of `all`
#   dev/bench.sh sender       10,000 send jobs through SQS, the poller and the sender to the simulator
#   dev/bench.sh sender-faults  1,000 jobs ($JOBS) under Postmark and DynamoDB faults and kills, counted per
#                             job; seeds $SEEDS (default "1 2 3"); not part of `all`
#   dev/bench.sh cold-start   spawn to first request for work of each release binary, and its size
#   dev/bench.sh compare      Node's `postmark` client (warmed by one unmeasured batch), the Postmark crate
#                             and the whole sender (CPU while its handler runs), one run
#   dev/bench.sh all          all of the above
#
# N (default 10000) sets the number of events, jobs and messages. LOAD_PROFILE=dev runs the load
# harness unoptimised (quicker to build, slower to run).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=dev/lib.sh
source "$ROOT/dev/lib.sh"

N=${N:-10000}
PROFILE=${LOAD_PROFILE:-release}
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
if [[ $PROFILE == dev ]]; then BIN_DIR=$TARGET_DIR/debug; else BIN_DIR=$TARGET_DIR/release; fi
LOAD=$BIN_DIR/load
SIM=$BIN_DIR/postmark-sim

build_tools() {
  log "building the load harness and the simulator ($PROFILE profile)"
  cargo build --locked --profile "$PROFILE" -p load -p postmark-sim
}

with_moto() {
  ensure_python_tools
  if [[ -z ${MOTO_PID:-} ]]; then
    trap stop_moto EXIT
    start_moto
  fi
  aws_env_for_moto
}

run_criterion() {
  log "criterion benchmarks"
  cargo bench --locked -p benchmarks
}

run_webhook() {
  build_tools
  with_moto
  log "webhook load: $N events"
  "$LOAD" webhook --events "$N"
}

# A fault run for each seed of $SEEDS: run_faults <load subcommand> <its size option> <size> [options...].
run_faults() {
  build_tools
  with_moto
  local seed
  for seed in ${SEEDS:-1 2 3}; do
    log "$1: $3, seed $seed"
    "$LOAD" "$1" "$2" "$3" "${@:4}" --seed "$seed"
  done
}

run_sender() {
  build_tools
  with_moto
  log "sender load: $N jobs"
  "$LOAD" sender --jobs "$N"
}

run_cold_start() {
  local bins=()
  for f in webhook sender config-api; do
    if [[ ! -x $TARGET_DIR/lambda/$f/bootstrap ]]; then
      log "target/lambda/$f/bootstrap is missing: building the release binaries (dev/build-release.sh)"
      "$ROOT/dev/build-release.sh"
    fi
    bins+=("$TARGET_DIR/lambda/$f/bootstrap")
  done
  build_tools
  log "cold starts"
  "$LOAD" cold-start --runs 10 "${bins[@]}"
}

# Runs "$@" as a child and prints its RESULT line with the child's CPU seconds (user + system, from
# /usr/bin/time) added as process_cpu_seconds.
measured() {
  local out
  out=$(mktemp)
  # A client that reports a wrong count still prints its numbers; the summary below fails the run.
  /usr/bin/time -f 'TIME %U %S' -o "$out.time" "$@" | tee "$out" >&2 || true
  python3 - "$out" <<'PY'
import json, sys
path = sys.argv[1]
result = next(json.loads(l[7:]) for l in open(path) if l.startswith("RESULT "))
user, system = map(float, next(l for l in open(path + ".time") if l.startswith("TIME ")).split()[1:])
result["process_cpu_seconds"] = user + system
print(json.dumps(result))
PY
  rm -f "$out" "$out.time"
}

run_compare() {
  build_tools
  with_moto
  if [[ ! -d $ROOT/dev/compare/node_modules/postmark ]]; then
    log "npm install (dev/compare)"
    (cd "$ROOT/dev/compare" && npm install --no-audit --no-fund --silent)
  fi
  local port token=bench-token messages results
  port=$(free_port)
  "$SIM" --api-addr "127.0.0.1:$port" --no-smtp --no-webhooks --server-token "$token" \
    --sender-domain example.com >/dev/null 2>&1 &
  SIM_PID=$!
  trap 'kill "$SIM_PID" 2>/dev/null || true; stop_moto' EXIT
  wait_http "$port" 30
  messages=$(mktemp --suffix .json)
  "$LOAD" messages --count "$N" --out "$messages"
  results=$(mktemp)
  log "Node.js postmark client: $N messages"
  measured node "$ROOT/dev/compare/send.mjs" "http://127.0.0.1:$port" "$token" "$messages" >>"$results"
  log "Postmark crate: $N messages"
  measured "$LOAD" postmark-crate --messages "$N" --sim-url "http://127.0.0.1:$port" --sim-token "$token" >>"$results"
  log "whole sender: $N jobs"
  measured "$LOAD" sender --jobs "$N" --sim-url "http://127.0.0.1:$port" --sim-token "$token" --json >>"$results"
  python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print()
print(f"{'client':<16} {'messages':>8} {'calls':>6} {'msg/s':>9} {'CPU s/1000 (send)':>18} {'CPU s/1000 (process)':>21}")
for r in rows:
    r["rate"] = r["messages"] / r["seconds"]
    r["cpu"] = r["cpu_seconds"] / r["messages"] * 1000
    r["pcpu"] = r["process_cpu_seconds"] / r["messages"] * 1000
    print(f"{r['client']:<16} {r['messages']:>8} {r['calls']:>6} {r['rate']:>9.0f} {r['cpu']:>18.3f} {r['pcpu']:>21.3f}")
for r in rows:
    if "drain_cpu_seconds" in r:
        print(f"{r['client']}: {r['drain_cpu_seconds'] / r['messages'] * 1000:.3f} CPU s/1000 over the whole drain "
              "(the handler's, the poller's and the harness's; the send column is the handler's alone)")
node = next(r for r in rows if r["client"] == "postmark-node")
print()
for r in rows:
    if r is node:
        continue
    print(f"{r['client']} vs Node: {r['rate'] / node['rate']:.2f}x the messages/s, "
          f"{r['cpu'] / node['cpu'] if node['cpu'] else float('nan'):.2f}x the CPU per message while sending, "
          f"{r['pcpu'] / node['pcpu']:.2f}x for the whole process")
bad = [r["client"] for r in rows if r["accepted"] != r["messages"] or r["calls"] != -(-r["messages"] // 500)]
if bad:
    sys.exit(f"not every message was accepted in ceil(N/500) calls: {bad}")
PY
  rm -f "$messages" "$results"
}

case ${1:-all} in
  criterion) run_criterion ;;
  webhook) run_webhook ;;
  webhook-faults) run_faults webhook-faults --events "$N" ;;
  recover) run_faults recover --jobs "${JOBS:-2000}" --drop 0.3 ;;
  sender-faults) run_faults sender-faults --jobs "${JOBS:-1000}" ;;
  sender) run_sender ;;
  cold-start) run_cold_start ;;
  compare) run_compare ;;
  all)
    run_criterion
    run_cold_start
    run_webhook
    run_sender
    run_compare
    ;;
  *)
    echo "usage: dev/bench.sh [criterion|webhook|webhook-faults|recover|sender|sender-faults|cold-start|compare|all]" >&2
    exit 2
    ;;
esac
