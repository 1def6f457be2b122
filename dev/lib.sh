# Shared by dev/test.sh and the local stack: install what is missing, start and stop the AWS emulator.
# shellcheck shell=bash

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Installs the Python packages of dev/requirements.txt when one of them cannot be imported.
ensure_python_tools() {
  if ! python3 -c 'import moto.server, flask, flask_cors, aiosmtpd, cfnlint, jsonschema, openapi_spec_validator, schemathesis' 2>/dev/null; then
    log "installing Python tools (moto server mode, aiosmtpd, cfn-lint)"
    python3 -m pip install --quiet --disable-pip-version-check -r "$ROOT/dev/requirements.txt"
  fi
}

# A free TCP port on the loopback interface.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Waits until http://127.0.0.1:$1/ answers, for at most $2 seconds.
wait_http() {
  local port=$1 deadline=$((SECONDS + ${2:-30}))
  until curl -s -o /dev/null "http://127.0.0.1:$port/"; do
    if ((SECONDS > deadline)); then return 1; fi
    sleep 0.2
  done
}

# Starts moto's server mode on a free port and exports MOTO_ENDPOINT (and MOTO_PID).
start_moto() {
  local port
  port=$(free_port)
  python3 "$ROOT/dev/moto_server.py" -H 127.0.0.1 -p "$port" >"${MOTO_LOG:-/dev/null}" 2>&1 &
  MOTO_PID=$!
  if ! wait_http "$port" 60; then
    log "the AWS emulator (moto) did not start on port $port"
    return 1
  fi
  export MOTO_ENDPOINT="http://127.0.0.1:$port" MOTO_PID
  log "AWS emulator (moto) at $MOTO_ENDPOINT"
}

stop_moto() {
  if [[ -n "${MOTO_PID:-}" ]]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
    MOTO_PID=
  fi
}

# Installs cargo-lambda (from PyPI; it brings zig) when missing.
ensure_cargo_lambda() {
  if ! cargo lambda --version >/dev/null 2>&1; then
    log "installing cargo-lambda"
    python3 -m pip install --quiet --disable-pip-version-check cargo-lambda
  fi
}

# Dummy credentials and the emulator's endpoint for the AWS SDK and the functions.
aws_env_for_moto() {
  export AWS_ENDPOINT_URL="$MOTO_ENDPOINT" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_EC2_METADATA_DISABLED=true
}

# Waits until the URL answers with any HTTP status, for at most $2 seconds.
wait_url() {
  local url=$1 deadline=$((SECONDS + ${2:-60}))
  until curl -s -o /dev/null "$url"; do
    if ((SECONDS > deadline)); then return 1; fi
    sleep 0.3
  done
}
