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

log "IAM actions in template.yaml"
# cfn-lint skips its check of action names in SAM templates; this one uses the same IAM data.
python3 - template.yaml <<'PY'
import sys
from cfnlint.data import AdditionalSpecs
from cfnlint.decode import decode
from cfnlint.helpers import ensure_list, load_resource

template, errors = decode(sys.argv[1])
if errors:
    sys.exit(f"{sys.argv[1]} could not be read: {errors}")
services = load_resource(AdditionalSpecs, "Policies.json")
unknown = []
for name, resource in template.get("Resources", {}).items():
    if resource.get("Type") != "AWS::IAM::Role":
        continue
    for policy in resource.get("Properties", {}).get("Policies", []):
        for statement in ensure_list(policy["PolicyDocument"]["Statement"]):
            for action in ensure_list(statement.get("Action", [])):
                service, _, operation = action.partition(":")
                known = services.get(service.lower(), {}).get("Actions", {})
                if operation.lower() not in known:
                    unknown.append(f"{name}: {action}")
if unknown:
    sys.exit("IAM knows no such action:\n  " + "\n  ".join(unknown))
PY

log "sam validate --lint"
# Validation needs no AWS account, only a region; keep it from reporting usage.
SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 \
  "$SAM_VENV/bin/sam" validate --lint --template template.yaml --region us-east-1
