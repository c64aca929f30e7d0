#!/usr/bin/env bash
# Instructions per request of a scim-local binary, counted by valgrind's callgrind: unlike
# ops/s, the count repeats run after run whatever else the machine is doing, so a change to the
# request path can be measured on a noisy machine.
#
#   tests/bench/instructions.sh BINARY [post|get|patch|filter|page] [USERS]
#
# Creates USERS users (default 2000) with `bench http`, then runs the chosen operation (2000 at
# 8 in flight, 500 at 1) and prints instructions per request for the POSTs and for the chosen
# operation. Counters start after the server is up, so startup is not counted. BENCH_ARGS adds
# bench http arguments (e.g. BENCH_ARGS="--extension 20": users carry a declared extension).
# Needs valgrind
# and a release `bench` (cargo build --release -p scim-tests --bin bench).
set -euo pipefail
bin=${1:?usage: instructions.sh BINARY [post|get|patch|filter|page] [USERS]}
op=${2:-post}
users=${3:-2000}
here=$(cd "$(dirname "$0")/../.." && pwd)
bench="$here/target/release/bench"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

count() { # $1 = --only value; prints total instructions after startup
  local out="$work/callgrind.out" port
  port=$((20000 + RANDOM % 20000))
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --port "$port" --data-dir "$work/data-$1" >"$work/stdout" 2>"$work/stderr" &
  local pid=$!
  for _ in $(seq 600); do grep -q SCIM_TOKEN "$work/stdout" 2>/dev/null && break; sleep 0.2; done
  local token
  token=$(sed -n 's/^SCIM_TOKEN=//p' "$work/stdout")
  callgrind_control -z "$pid" >/dev/null 2>&1
  # shellcheck disable=SC2086 # BENCH_ARGS is a list of extra bench http arguments
  "$bench" http --base-url "http://127.0.0.1:$port/scim/v2" --token "$token" --users "$users" --only "$1" ${BENCH_ARGS:-} >/dev/null 2>&1
  kill -INT "$pid"
  wait "$pid" 2>/dev/null || true
  callgrind_annotate "$out" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,
}

posts=$(count none)
printf 'POST /Users          %8d instructions per request (%d requests)\n' $((posts / users)) "$users"
if [ "$op" != post ]; then
  both=$(count "$op")
  n=2500
  [ "$op" = page ] && n=250
  printf '%-20s %8d instructions per request (%d requests)\n' "$op" $(((both - posts) / n)) "$n"
fi
