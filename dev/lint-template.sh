#!/usr/bin/env bash
# Lints template.yaml: cfn-lint on the template as written, then `sam validate --lint` (SAM's transform,
# then cfn-lint on the result). Installs what is missing: cfn-lint with the other Python tools, the SAM CLI
# in a virtualenv of its own (.venv-sam, or $SAM_VENV), because installed globally it upgrades packages
# that moto relies on. Works offline once installed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=dev/lib.sh
source "$ROOT/dev/lib.sh"

SAM_VENV=${SAM_VENV:-$ROOT/.venv-sam}
SAM_CLI_REQUIREMENT='aws-sam-cli>=1.170,<2'

ensure_python_tools
if [[ ! -x "$SAM_VENV/bin/sam" ]] || ! "$SAM_VENV/bin/sam" --version >/dev/null 2>&1; then
  log "installing the SAM CLI into $SAM_VENV"
  python3 -m venv "$SAM_VENV"
  "$SAM_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$SAM_CLI_REQUIREMENT"
fi

log "cfn-lint template.yaml"
# Through the interpreter that has it, whether or not pip's script directory is on PATH.
python3 -c 'import sys; from cfnlint.runner import main; sys.argv[0] = "cfn-lint"; sys.exit(main())' \
  template.yaml

log "sam validate --lint"
# Validation needs no AWS account, only a region; keep it from reporting usage.
SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 \
  "$SAM_VENV/bin/sam" validate --lint --template template.yaml --region us-east-1
