#!/usr/bin/env bash
# Runs the recovery function once, now, on the running local stack (dev/stack.sh), and prints the run's
# summary: what it recovered per server and kind, the suppressions it fixed, its Postmark calls, errors.
# In AWS the same is `aws lambda invoke --function-name <RecoverFunction> --payload '{"trigger":"admin"}'`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENV_FILE=${STACK_ENV:-"$ROOT/target/local-stack/stack.env"}
if [[ -z ${RECOVER_INVOKE_URL:-} ]]; then
  [[ -f $ENV_FILE ]] || { echo "no local stack: start dev/stack.sh first" >&2; exit 1; }
  # shellcheck source=/dev/null
  source "$ENV_FILE"
fi
curl -sS --fail-with-body -X POST -d '{"trigger":"admin"}' "$RECOVER_INVOKE_URL"
echo
