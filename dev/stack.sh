#!/usr/bin/env bash
# The local stack: the AWS emulator (moto), the Postmark simulator, the four functions as Lambda functions
# (cargo lambda watch), a poller playing SQS's event source mapping for the sender and one playing the
# table stream's event source mapping for the stream function. It installs what is missing, builds,
# creates the table, queues, secrets and the feed's bus (with a rule routing every feed event to a queue)
# from the same definitions the deployment uses, prints the URLs and stops everything on Ctrl-C.
#
# Ports (override with the variables): LAMBDA_PORT=9000 (functions), SIM_PORT=8025 (Postmark simulator
# API), SIM_SMTP_PORT=2525. With STACK_READY_FILE set, the environment is written there once ready.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=dev/lib.sh
source "$ROOT/dev/lib.sh"
# Where cargo puts the binaries (CARGO_TARGET_DIR moves them).
BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/debug

LAMBDA_PORT=${LAMBDA_PORT:-9000}
SIM_PORT=${SIM_PORT:-8025}
SIM_SMTP_PORT=${SIM_SMTP_PORT:-2525}
STATE=${STACK_STATE_DIR:-"$ROOT/target/local-stack"}
mkdir -p "$STATE"
PIDS=()

cleanup() {
  trap - EXIT INT TERM
  log "stopping the local stack"
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  pkill -P $$ 2>/dev/null || true
  stop_moto
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ensure_python_tools
ensure_cargo_lambda

log "building (debug)"
cargo build --quiet -p local-stack -p postmark-sim -p webhook -p sender -p config-api -p stream -p recover

MOTO_LOG="$STATE/moto.log" start_moto
aws_env_for_moto

export LOCAL_WEBHOOK_PASSWORD=${LOCAL_WEBHOOK_PASSWORD:-local-webhook-password}
export LOCAL_ADMIN_KEY=${LOCAL_ADMIN_KEY:-local-admin-key}
eval "$("$BIN_DIR"/bootstrap --prefix local)"

FUNCTIONS="http://127.0.0.1:$LAMBDA_PORT/lambda-url"
export PUBLIC_BASE_URL="$FUNCTIONS/webhook"
export TRACKING_BASE_URL="$FUNCTIONS/webhook"
export POSTMARK_API_URL="http://127.0.0.1:$SIM_PORT"
export SMTP_EXTRA_CA_PEM_FILE="$STATE/sim-ca.pem"
export SECRETS_CACHE_SECONDS=30 WEBHOOK_PASSWORD_RECHECK_SECONDS=1 CLAIM_LEASE_SECONDS=60
# Quicker retries than a deployment's, for a local run; the simulator's search shows a message at once.
export POSTMARK_TIMEOUT_SECONDS=8 DEADLINE_MARGIN_SECONDS=4 SEARCH_SETTLE_SECONDS=5 \
  RETRY_BASE_SECONDS=2 RETRY_MAX_SECONDS=30 BREAKER_COOLDOWN_SECONDS=5
# The recovery function asks the simulator for everything up to now (no settle time), an hour back at first.
export RECOVERY_SETTLE_SECONDS=${RECOVERY_SETTLE_SECONDS:-0} RECOVERY_FIRST_LOOKBACK_HOURS=1 \
  RECOVERY_OVERLAP_SECONDS=60
export RUST_LOG=${RUST_LOG:-info}
WEBHOOK_URL="$PUBLIC_BASE_URL/wh/postmark?password=$LOCAL_WEBHOOK_PASSWORD"

log "starting the Postmark simulator on :$SIM_PORT (SMTP :$SIM_SMTP_PORT)"
"$BIN_DIR"/postmark-sim --api-addr "127.0.0.1:$SIM_PORT" --smtp-addr "127.0.0.1:$SIM_SMTP_PORT" \
  --ca-pem-out "$SMTP_EXTRA_CA_PEM_FILE" >"$STATE/postmark-sim.log" 2>&1 &
PIDS+=($!)
wait_url "http://127.0.0.1:$SIM_PORT/_sim/health" 30 || { log "the simulator did not start"; exit 1; }

log "starting the functions (cargo lambda watch on :$LAMBDA_PORT)"
cargo lambda watch -A 127.0.0.1 -P "$LAMBDA_PORT" --ignore-changes >"$STATE/functions.log" 2>&1 &
PIDS+=($!)
wait_url "$FUNCTIONS/config-api/api/health" 600 || { log "the functions did not start (see $STATE/functions.log)"; exit 1; }
# The first request of each function builds and starts it; do it now rather than on the first real call.
curl -s -o /dev/null "$FUNCTIONS/webhook/t/o/warm-up" || true

log "starting the SQS poller (the sender's event source mapping)"
"$BIN_DIR"/sqs-poller --invoke-url "http://127.0.0.1:$LAMBDA_PORT/2015-03-31/functions/sender/invocations" \
  --batch-size "${POLLER_BATCH_SIZE:-1000}" --window-ms "${POLLER_WINDOW_MS:-1000}" >"$STATE/poller.log" 2>&1 &
PIDS+=($!)

log "starting the stream poller (the stream function's event source mapping)"
"$BIN_DIR"/stream-poller --invoke-url "http://127.0.0.1:$LAMBDA_PORT/2015-03-31/functions/stream/invocations" \
  --batch-size "${STREAM_BATCH_SIZE:-1000}" --window-ms "${STREAM_WINDOW_MS:-1000}" >"$STATE/stream-poller.log" 2>&1 &
PIDS+=($!)

RECOVER_INVOKE_URL="http://127.0.0.1:$LAMBDA_PORT/2015-03-31/functions/recover/invocations"
RECOVERY_EVERY_SECONDS=${RECOVERY_EVERY_SECONDS:-300}
if ((RECOVERY_EVERY_SECONDS > 0)); then
  log "starting the recovery timer (every $RECOVERY_EVERY_SECONDS s; the schedule's stand-in)"
  (while sleep "$RECOVERY_EVERY_SECONDS"; do
    curl -s -X POST -d '{"trigger":"timer"}' "$RECOVER_INVOKE_URL" >>"$STATE/recover.log" 2>&1
    echo >>"$STATE/recover.log"
  done) &
  PIDS+=($!)
fi

cat >"$STATE/stack.env" <<ENV
export AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_EC2_METADATA_DISABLED=true
export CONFIG_API_URL=$FUNCTIONS/config-api
export WEBHOOK_URL='$WEBHOOK_URL'
export TRACKING_BASE_URL=$TRACKING_BASE_URL
export POSTMARK_SIM_URL=http://127.0.0.1:$SIM_PORT
export POSTMARK_SIM_SMTP=127.0.0.1:$SIM_SMTP_PORT
export SMTP_EXTRA_CA_PEM_FILE=$SMTP_EXTRA_CA_PEM_FILE
export QUEUE_URL=$QUEUE_URL
export DLQ_URL=$DLQ_URL
export TABLE_NAME=$TABLE_NAME
export EVENT_BUS_NAME=$EVENT_BUS_NAME
export FEED_QUEUE_URL=$FEED_QUEUE_URL
export ADMIN_KEY=$LOCAL_ADMIN_KEY
export RECOVER_INVOKE_URL=$RECOVER_INVOKE_URL
ENV

cat <<INFO

  Local stack is up (logs in $STATE):
    config API      $FUNCTIONS/config-api/api   (Authorization: Bearer $LOCAL_ADMIN_KEY)
    webhook URL     $WEBHOOK_URL
    tracking        $TRACKING_BASE_URL/t/o/{token}, /t/c/{token}
    send queue      $QUEUE_URL
    dead letters    $DLQ_URL
    event feed      bus $EVENT_BUS_NAME, every event routed to $FEED_QUEUE_URL
    recovery        every $RECOVERY_EVERY_SECONDS s (0: off); now: dev/recover.sh
    Postmark sim    http://127.0.0.1:$SIM_PORT (control: /_sim/), SMTP 127.0.0.1:$SIM_SMTP_PORT
    AWS emulator    $AWS_ENDPOINT_URL
  Environment for other shells: source $STATE/stack.env
  Ctrl-C stops everything.

INFO
if [[ -n "${STACK_READY_FILE:-}" ]]; then cp "$STATE/stack.env" "$STACK_READY_FILE"; fi
wait
