#!/usr/bin/env bash
# Static checks of the SAM template: cfn-lint (schema, SAM transform, best
# practices) and checkov (security policy). Run from the repository root:
#   bash infra/check.sh
# Exits non-zero when either tool reports a failure.
#
# Tools already on PATH are used as they are. A missing tool is installed into
# a private virtualenv (SCIM_INFRA_VENV, default under ~/.cache) rather than
# the system Python: checkov pins old boto3/botocore releases, and installing
# it system-wide downgrades them under the AWS CLI and moto.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
template="infra/template.yaml"

venv="${SCIM_INFRA_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/scim-serverless/infra-venv}"

ensure_venv() {
  if [[ ! -x "$venv/bin/python" ]]; then
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
  fi
}

# tool_path NAME PIP_PACKAGE: prints the command to run, installing if missing.
tool_path() {
  local name="$1" package="$2"
  if command -v "$name" >/dev/null 2>&1; then
    command -v "$name"
    return
  fi
  if [[ ! -x "$venv/bin/$name" ]]; then
    echo "infra/check.sh: installing $package into $venv" >&2
    ensure_venv
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$package" >&2
  fi
  echo "$venv/bin/$name"
}

cfn_lint="$(tool_path cfn-lint cfn-lint)"
checkov="$(tool_path checkov checkov)"

lint_status="ok"
if ! "$cfn_lint" "$template"; then
  lint_status="FAILED"
fi

# --skip-download: run the bundled checks only, with no calls to the vendor's
# platform (there is no API key, and CI may have no route to it).
checkov_status="ok"
if ! "$checkov" -f "$template" --framework cloudformation --quiet --compact --skip-download; then
  checkov_status="FAILED"
fi

echo "infra: cfn-lint $lint_status, checkov $checkov_status"
[[ "$lint_status" == "ok" && "$checkov_status" == "ok" ]]
