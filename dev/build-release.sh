#!/usr/bin/env bash
# Builds the three Lambda functions for release with cargo lambda: target/lambda/<name>/bootstrap.
# Usage: dev/build-release.sh [--arm64] [other `cargo lambda build` arguments]
# Without --arm64 it builds for x86_64. Installs cargo-lambda (which brings zig) from PyPI when missing,
# and the aarch64 Rust target for --arm64. Not part of dev/test.sh: a release build of the three takes
# minutes (fat LTO, one codegen unit).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=dev/lib.sh
source "$ROOT/dev/lib.sh"

FUNCTIONS=(webhook config-api sender)

# pip may put the cargo-lambda script in a directory that is not on PATH.
PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
PATH="$PATH:$(python3 -c 'import site; print(site.getuserbase())')/bin"
export PATH
if ! cargo lambda --version >/dev/null 2>&1; then
  log "installing cargo-lambda from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check cargo-lambda
fi

for arg in "$@"; do
  if [[ $arg == --arm64 ]] && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    log "adding the aarch64-unknown-linux-gnu Rust target"
    rustup target add aarch64-unknown-linux-gnu
  fi
done

# One binary at a time, exactly as `sam build` runs it, so that its build afterwards finds them up to date.
for f in "${FUNCTIONS[@]}"; do
  log "cargo lambda build --release --bin $f $*"
  cargo lambda build --release --bin "$f" "$@"
done

for f in "${FUNCTIONS[@]}"; do
  ls -l "target/lambda/$f/bootstrap" | awk -v f="$f" '{ printf "%-12s %6.1f MiB  %s\n", f, $5 / 1048576, $NF }'
done
