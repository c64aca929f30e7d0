#!/usr/bin/env bash
# The request path against its ceiling: GET /Users/{id} on scim-local (embedded store, in
# memory) and on a bare hyper server answering a static ~1 KB SCIM User (`bench
# static-server`), both pinned to the same core (taskset), the load generator on another;
# interleaved rounds in one run (`bench ceiling`, a hand-written HTTP/1.1 load generator with
# 8 kept-alive connections). Prints requests/s of each and the ratio scim-local / static.
#
#   tests/bench/ceiling.sh [OPS] [ROUNDS]
#
# SCIM_LOCAL=path measures another scim-local build (e.g. before and after a change), with
# this tree's bench.
# Needs release builds: cargo build --release -p scim-functions --bin scim-local -p scim-tests --bin bench
set -euo pipefail
ops=${1:-50000}
rounds=${2:-5}
here=$(cd "$(dirname "$0")/../.." && pwd)
bin="$here/target/release"
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
scim_port=$((20000 + RANDOM % 20000))
static_port=$((scim_port + 1))
taskset -c 0 "${SCIM_LOCAL:-$bin/scim-local}" --memory --port "$scim_port" >"$work/scim.out" 2>"$work/scim.err" &
pids+=($!)
taskset -c 0 "$bin/bench" static-server --port "$static_port" >"$work/static.out" 2>&1 &
pids+=($!)
for _ in $(seq 300); do grep -q SCIM_TOKEN "$work/scim.out" 2>/dev/null && grep -q static "$work/static.out" 2>/dev/null && break; sleep 0.1; done
token=$(sed -n 's/^SCIM_TOKEN=//p' "$work/scim.out")
taskset -c 1 "$bin/bench" ceiling --ops "$ops" --rounds "$rounds" \
  --scim "http://127.0.0.1:$scim_port/scim/v2=$token" --static "http://127.0.0.1:$static_port/scim/v2"
