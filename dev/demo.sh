#!/usr/bin/env bash
# The demo: starts the local stack (dev/stack.sh), plays a scenario through its public interfaces (config
# API, send queue, tracking URLs, the Postmark simulator standing in for recipients), prints what the
# platform reads back (the config API, and the event feed from a queue behind a rule on the feed's bus),
# checks it against what was sent, and stops everything. Exit 0 only if all matched.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=dev/lib.sh
source "$ROOT/dev/lib.sh"
# Where cargo puts the binaries (CARGO_TARGET_DIR moves them).
BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/debug

READY=$(mktemp)
rm -f "$READY"
# The demo runs recovery on demand; the timer stays off so that it shows the stats short first.
RECOVERY_EVERY_SECONDS=0 STACK_READY_FILE="$READY" LAMBDA_PORT=${LAMBDA_PORT:-9000} "$ROOT/dev/stack.sh" &
STACK=$!
stop_stack() {
  kill -TERM "$STACK" 2>/dev/null || true
  wait "$STACK" 2>/dev/null || true
  rm -f "$READY"
}
trap stop_stack EXIT

deadline=$((SECONDS + 1200))
until [[ -s "$READY" ]]; do
  if ! kill -0 "$STACK" 2>/dev/null; then log "the local stack did not start"; exit 1; fi
  if ((SECONDS > deadline)); then log "the local stack did not start in time"; exit 1; fi
  sleep 1
done
# shellcheck disable=SC1090
source "$READY"
log "running the demo scenario"
cargo build --quiet -p local-stack --bin demo
"$BIN_DIR"/demo
