#!/usr/bin/env bash
# The public SCIM suites of ../shared/conformance (beside this repository), each run twice on a
# fresh in-memory scim-local: once authenticated with the bootstrap API key, once with an OAuth
# access token obtained from the token endpoint (client credentials). Not part of scripts/test:
# the suites come from outside the repository and fetch their own tools.
#
#   scripts/conformance.sh [SUITE ...]     SUITE: ms-postman okta-spec scim-sanity scim2-test-suite scim2-tester
#
# scim2-test-suite's TestResource items and scim-sanity's agent phases need resource types the
# tenant declares: this script declares them (scripts/conformance-types/, docs/agents/) first.
#
# Needs a release scim-local (cargo build --release -p scim-functions --bin scim-local).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
suites_dir=${CONFORMANCE_DIR:-$here/../shared/conformance}
bin=${SCIM_LOCAL:-$here/target/release/scim-local}
[ -x "$bin" ] || { echo "no $bin: cargo build --release -p scim-functions --bin scim-local" >&2; exit 2; }
[ -d "$suites_dir" ] || { echo "no $suites_dir (set CONFORMANCE_DIR)" >&2; exit 2; }
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(ms-postman okta-spec scim-sanity scim2-test-suite scim2-tester)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
for suite in "${suites[@]}"; do
  for cred in key token; do
    out="$work/$suite-$cred"
    "$bin" --port 0 --memory --new-oauth-client >"$out.stdout" 2>"$out.stderr" &
    pid=$!
    for _ in $(seq 100); do grep -q '^CLIENT_SECRET=' "$out.stdout" 2>/dev/null && break; sleep 0.1; done
    line() { sed -n "s/^$1=//p" "$out.stdout"; }
    base=$(line SCIM_BASE_URL)
    if [ "$cred" = key ]; then
      token=$(line SCIM_TOKEN)
    else
      token=$(curl -s -u "$(line CLIENT_ID):$(line CLIENT_SECRET)" -d grant_type=client_credentials "$(line SCIM_TOKEN_URL)" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
    fi
    # the suites that probe declared resource types get them declared first (bootstrap key)
    declare_type() {
      curl -sf -o /dev/null -X PUT -H "Authorization: Bearer $(line SCIM_TOKEN)" -H 'Content-Type: application/scim+json' \
        --data @"$2" "$base/Settings/ResourceTypes/$1" || echo "could not declare $1" >&2
    }
    case $suite in
      scim2-test-suite) declare_type TestResource "$here/scripts/conformance-types/testresource-type.json" ;;
      scim-sanity) declare_type Agent "$here/docs/agents/agent-type.json"
                   declare_type AgenticApplication "$here/docs/agents/agentic-application-type.json" ;;
    esac
    printf '%-18s %-6s ' "$suite" "$cred"
    timeout 900 bash "$suites_dir/run-$suite.sh" "$base" "$token" >"$out.log" 2>&1
    grep -E '[0-9]+ passed' "$out.log" | tail -1
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  done
done
