#!/usr/bin/env bash
# Static checks of the SAM template: cfn-lint (schema, SAM transform, best
# practices), checkov (security policy), `sam validate --lint` (the SAM CLI's
# own translation of the template, offline), infra/iam_check.py (what each
# function's role may do on each item family of the table, against
# infra/iam-expected.tsv; its own self-test first), the PreTraffic hook's tests and infra/template_check.py
# (custom domain, aliases and CodeDeploy groups, the pipe filter on sample
# stream records, alarms, dashboard, logs, timeouts, rules; on the translated
# template under several parameter sets, its self-test first). Run from the
# repository root:
#   bash infra/check.sh
# Exits non-zero when any tool reports a failure.
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
# the SAM CLI pins its own boto3, so it gets a virtualenv of its own
sam_venv="${venv%-venv}-sam-venv"

# tool_path NAME PIP_PACKAGE VENV: prints the command to run, installing if missing.
tool_path() {
  local name="$1" package="$2" env="$3"
  if command -v "$name" >/dev/null 2>&1; then
    command -v "$name"
    return
  fi
  if [[ ! -x "$env/bin/$name" ]]; then
    echo "infra/check.sh: installing $package into $env" >&2
    if [[ ! -x "$env/bin/python" ]]; then
      mkdir -p "$(dirname "$env")"
      python3 -m venv "$env"
    fi
    "$env/bin/python" -m pip install --quiet --disable-pip-version-check "$package" >&2
  fi
  echo "$env/bin/$name"
}

cfn_lint="$(tool_path cfn-lint cfn-lint "$venv")"
checkov="$(tool_path checkov checkov "$venv")"
sam="$(tool_path sam aws-sam-cli "$sam_venv")"

# infra/iam_check.py and infra/template_check.py need samtranslator (package aws-sam-translator, which
# cfn-lint depends on too) and PyYAML; when python3 lacks them they go into the
# infra virtualenv.
iam_python="python3"
if ! python3 -c 'import samtranslator, yaml' >/dev/null 2>&1; then
  iam_python="$venv/bin/python"
  if ! "$iam_python" -c 'import samtranslator, yaml' >/dev/null 2>&1; then
    echo "infra/check.sh: installing aws-sam-translator into $venv" >&2
    if [[ ! -x "$venv/bin/python" ]]; then
      mkdir -p "$(dirname "$venv")"
      python3 -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check aws-sam-translator pyyaml >&2
  fi
fi

# check LABEL COMMAND...: runs one check, notes "LABEL ok" or "LABEL FAILED"; every check
# runs whatever the others gave, and the script fails when any did.
results=()
failed=0
check() {
  local label="$1"
  shift
  if "$@"; then
    results+=("$label ok")
  else
    results+=("$label FAILED")
    failed=1
  fi
}

# run_checkov: checkov's JSON report, summarised by infra/checkov_summary.py: the counts,
# every failure in full, and the skipped checks grouped by check id with their reason (the
# template's suppression comments; infra/README.md lists them), instead of checkov's bare
# "Skipped checks: N". --skip-download: run the bundled checks only, with no calls to the
# vendor's platform (there is no API key, and CI may have no route to it).
run_checkov() {
  local report status=0
  report="$(mktemp)"
  "$checkov" -f "$template" --framework cloudformation --skip-download --output json >"$report" || status=$?
  python3 infra/checkov_summary.py "$report" || status=1
  rm -f "$report"
  return "$status"
}

check cfn-lint "$cfn_lint" "$template"
check checkov run_checkov
# Offline: the transform runs locally, --lint adds cfn-lint's rules; no AWS
# credentials are needed or read (the region only names the partition).
check "sam validate --lint" env SAM_CLI_TELEMETRY=0 "$sam" validate --lint --template-file "$template" --region eu-west-1
# Offline as well: the SAM transform runs in-process (samtranslator), with a
# fixed region and account; no AWS call, no credentials.
check "iam self-test" "$iam_python" infra/iam_check.py --self-test
check "iam check" "$iam_python" infra/iam_check.py
# Offline too: the same translation under several parameter sets; the self-test
# breaks copies of the template and shows each check failing.
# The PreTraffic hook's own tests (botocore's Stubber, no network): boto3 comes with moto.
check "pretraffic hook tests" python3 -m unittest --quiet infra/hooks/test_pretraffic.py
check "template self-test" "$iam_python" infra/template_check.py --self-test
check "template check" "$iam_python" infra/template_check.py

summary=$(printf ', %s' "${results[@]}")
echo "infra: ${summary:2}"
exit "$failed"
