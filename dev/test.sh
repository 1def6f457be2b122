#!/usr/bin/env bash
# Runs every check and test: installs what is missing, starts the AWS emulator, runs fmt, clippy and the
# whole test suite, and stops what it started. Usage: dev/test.sh [extra nextest arguments]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=dev/lib.sh
source "$ROOT/dev/lib.sh"

ensure_python_tools
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

log "template.yaml: cfn-lint and sam validate --lint"
"$ROOT/dev/lint-template.sh"

trap stop_moto EXIT
start_moto

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "tests"
cargo nextest run --workspace --locked --no-fail-fast "$@"
log "doc tests"
cargo test --workspace --doc --locked
