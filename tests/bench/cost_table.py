#!/usr/bin/env python3
"""The cost table of docs/cost.md, derived from the bench output and the list prices.

    python3 tests/bench/cost_table.py                  print the table (and its summary)
    python3 tests/bench/cost_table.py --write          rewrite the generated block of docs/cost.md
    python3 tests/bench/cost_table.py --check          exit 1 (with a diff) when that block differs
    python3 tests/bench/cost_table.py --compare FRESH  exit 1 when a fresh `bench cost` output
                                                       moves away from the committed one

Inputs: `--bench FILE` (default docs/cost-inputs/bench-cost.txt, the output of
`target/debug/bench cost`) and `--prices FILE` (default docs/cost-inputs/prices.json). Only the
bench's `dynamodb` rows are used. Every figure of the block comes from these two files; nothing
in it is typed by hand. `--check` and `--compare` combine: CI runs

    target/debug/bench cost > fresh.txt && python3 tests/bench/cost_table.py --check --compare fresh.txt

`--compare` holds the round trips (get, get_many, query, write), RCU, WCU and the status of every
dynamodb row, and the authentication rows, to the committed input exactly, and the response size
to within 10 %. A row found in one file only is a difference. moto's own column is not compared.

Standard library only.
"""
from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BENCH = ROOT / "docs" / "cost-inputs" / "bench-cost.txt"
DEFAULT_PRICES = ROOT / "docs" / "cost-inputs" / "prices.json"
DEFAULT_DOC = ROOT / "docs" / "cost.md"
BEGIN = "<!-- cost-table:begin -->"
END = "<!-- cost-table:end -->"
STORE = "dynamodb"
RESP_TOLERANCE = 0.10


class InputError(Exception):
    """An input file that cannot be read as what it should be."""


# ----------------------------------------------------------------------------------------------
# The bench output
# ----------------------------------------------------------------------------------------------

# tests/bench/main.rs, fn cost: "{:<44} {:>9} {:>5} {:>9} {:>6} {:>6} {:>6.1} {:>6.1} {:>7} {:>13}{}"
# (name, store, get, get_many, query, write, RCU, WCU, resp B, moto r/w CU, "  (status N)" when
# N >= 400). A name longer than 44 characters pushes the rest right, and a name may hold spaces
# and parentheses, so a row is read from the right.
NUM = r"-?\d+(?:\.\d+)?"
OP_ROW = re.compile(
    r"^(?P<name>\S.*?)\s+(?P<store>embedded|dynamodb)"
    r"\s+(?P<get>\d+)\s+(?P<get_many>\d+)\s+(?P<query>\d+)\s+(?P<write>\d+)"
    rf"\s+(?P<rcu>{NUM})\s+(?P<wcu>{NUM})\s+(?P<resp>\d+)"
    rf"\s+(?P<moto>-|{NUM} / {NUM})"
    r"(?:\s+\(status (?P<status>\d+)\))?\s*$"
)
# fn auth_costs: "{name:<28} {store:>9} {:>5} {:>9} {:>6.1}" (credential, store, get, get_many, RCU)
AUTH_ROW = re.compile(
    rf"^(?P<name>\S.*?)\s+(?P<store>embedded|dynamodb)\s+(?P<get>\d+)\s+(?P<get_many>\d+)\s+(?P<rcu>{NUM})\s*$"
)


@dataclass(frozen=True)
class OpRow:
    name: str
    store: str
    get: int
    get_many: int
    query: int
    write: int
    rcu: float
    wcu: float
    resp: int
    moto: str  # "r / w" as moto reported, or "-"
    status: int | None  # only when the bench printed one (>= 400)


@dataclass(frozen=True)
class AuthRow:
    name: str
    store: str
    get: int
    get_many: int
    rcu: float


@dataclass
class Bench:
    auth: dict  # (name, store) -> AuthRow, in file order
    ops: dict  # (name, store) -> OpRow, in file order

    def dynamodb_ops(self) -> list:
        return [r for (_, s), r in self.ops.items() if s == STORE]

    def dynamodb_auth(self) -> list:
        return [r for (_, s), r in self.auth.items() if s == STORE]


def parse_op_row(line: str) -> OpRow:
    m = OP_ROW.match(line.rstrip("\n"))
    if not m:
        raise InputError(f"not an operation row: {line.rstrip()!r}")
    g = m.groupdict()
    return OpRow(
        name=g["name"].strip(),
        store=g["store"],
        get=int(g["get"]),
        get_many=int(g["get_many"]),
        query=int(g["query"]),
        write=int(g["write"]),
        rcu=float(g["rcu"]),
        wcu=float(g["wcu"]),
        resp=int(g["resp"]),
        moto=g["moto"],
        status=int(g["status"]) if g["status"] else None,
    )


def parse_auth_row(line: str) -> AuthRow:
    m = AUTH_ROW.match(line.rstrip("\n"))
    if not m:
        raise InputError(f"not an authentication row: {line.rstrip()!r}")
    g = m.groupdict()
    return AuthRow(g["name"].strip(), g["store"], int(g["get"]), int(g["get_many"]), float(g["rcu"]))


def parse_bench(text: str) -> Bench:
    """Both sections of `bench cost`. A line inside a section that is not a row is an error."""
    auth: dict = {}
    ops: dict = {}
    section = None
    for line in text.splitlines():
        if line.startswith("credential ") and line.split()[-1] == "RCU":
            section = "auth"
            continue
        if line.startswith("operation ") and "moto r/w CU" in line:
            section = "ops"
            continue
        if not line.strip():
            if section == "auth":
                section = None
            continue
        if section is None:
            continue  # the sections' titles
        row = parse_auth_row(line) if section == "auth" else parse_op_row(line)
        into = auth if section == "auth" else ops
        key = (row.name, row.store)
        if key in into:
            raise InputError(f"row {row.name!r} ({row.store}) appears twice")
        into[key] = row
    if not ops:
        raise InputError("no operation rows (is this the output of `bench cost`?)")
    if not any(s == STORE for _, s in ops):
        raise InputError(f"no {STORE} operation rows")
    return Bench(auth, ops)


# ----------------------------------------------------------------------------------------------
# Prices and assumptions
# ----------------------------------------------------------------------------------------------


@dataclass
class Prices:
    raw: dict

    def __post_init__(self):
        for group in ("prices", "assumptions"):
            for key, entry in self.raw.get(group, {}).items():
                if not isinstance(entry, dict) or "value" not in entry:
                    raise InputError(f"prices.json {group}.{key}: needs a value")
                if not (entry.get("source") or entry.get("why")):
                    raise InputError(f"prices.json {group}.{key}: needs a source or a why")
        for name, op in self.raw.get("operations", {}).items():
            if op.get("duration") not in self.v("billed_ms"):
                raise InputError(f"prices.json operations[{name!r}]: duration must be one of {sorted(self.v('billed_ms'))}")
            if not isinstance(op.get("events"), int) or not op.get("why"):
                raise InputError(f"prices.json operations[{name!r}]: needs events (a count) and why")

    def v(self, key: str):
        for group in ("prices", "assumptions"):
            if key in self.raw.get(group, {}):
                return self.raw[group][key]["value"]
        raise InputError(f"prices.json has no {key}")

    @property
    def operations(self) -> dict:
        return self.raw.get("operations", {})

    @property
    def highlights(self) -> list:
        return self.raw.get("highlights", {}).get("value", [])


def load_prices(path: Path) -> Prices:
    try:
        return Prices(json.loads(Path(path).read_text(encoding="utf-8")))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: {e}") from e


# ----------------------------------------------------------------------------------------------
# The arithmetic, dollars per million requests
# ----------------------------------------------------------------------------------------------

COLUMNS = ["api_rest", "api_http", "lambda", "dynamodb", "logs", "transfer", "events"]


def lambda_per_million(p: Prices, ms: float) -> float:
    """Requests and GB-seconds of one invocation, times a million."""
    gb = p.v("lambda_memory_mb") / 1024
    return p.v("lambda_per_million_requests") + ms / 1000 * gb * p.v("lambda_per_gb_second_arm64") * 1e6


def gb_per_million(p: Prices, nbytes: float) -> float:
    return nbytes * 1e6 / p.v("bytes_per_gb")


def per_event(p: Prices) -> float:
    """One change event: a pipe record, a custom event on the bus and a share of an enrichment
    invocation (its request, duration and log line, over the records of a batch)."""
    enrichment = lambda_per_million(p, p.v("enrichment_billed_ms")) + gb_per_million(p, p.v("enrichment_log_line_bytes")) * p.v(
        "logs_ingestion_per_gb"
    )
    return p.v("pipes_per_million_records") + p.v("custom_events_per_million") + enrichment / p.v("events_per_enrichment_batch")


def operation_cost(p: Prices, row: OpRow) -> dict:
    """The columns of one operation, unrounded, dollars per million requests."""
    op = p.operations.get(row.name)
    if op is None:
        raise InputError(f"prices.json operations has no entry for the bench row {row.name!r} (its duration class and events)")
    out_bytes = row.resp + p.v("response_header_bytes")
    http_units = max(1, math.ceil(out_bytes / p.v("api_http_metering_bytes")))
    return {
        "api_rest": p.v("api_rest_per_million"),
        "api_http": p.v("api_http_per_million") * http_units,
        "lambda": lambda_per_million(p, p.v("billed_ms")[op["duration"]]),
        "dynamodb": row.rcu * p.v("dynamodb_per_million_rru") + row.wcu * p.v("dynamodb_per_million_wru"),
        "logs": gb_per_million(p, p.v("function_log_line_bytes") + p.v("access_log_line_bytes")) * p.v("logs_ingestion_per_gb"),
        "transfer": gb_per_million(p, out_bytes) * p.v("data_transfer_out_per_gb"),
        "events": op["events"] * per_event(p),
    }


def rate_limit_cost(p: Prices) -> dict:
    return dict.fromkeys(COLUMNS, 0.0) | {"dynamodb": p.v("rate_limit_wcu") * p.v("dynamodb_per_million_wru")}


def authorizer_cost(p: Prices, auth: AuthRow) -> dict:
    """An authorizer invocation on every request (the cache off): Lambda, its reads, its log line."""
    return dict.fromkeys(COLUMNS, 0.0) | {
        "lambda": lambda_per_million(p, p.v("authorizer_billed_ms")),
        "dynamodb": auth.rcu * p.v("dynamodb_per_million_rru"),
        "logs": gb_per_million(p, p.v("authorizer_log_line_bytes")) * p.v("logs_ingestion_per_gb"),
    }


def cents(x: float) -> float:
    """Rounded to the cent, halves up (not to even): 0.125 is 0.13."""
    return math.floor(x * 100 + 0.5 + 1e-9) / 100


def rounded(cost: dict) -> dict:
    """The columns to the cent and the totals as the sum of the rounded columns, so that every
    row of the table adds up as printed."""
    r = {k: cents(v) for k, v in cost.items()}
    shared = r["lambda"] + r["dynamodb"] + r["logs"] + r["transfer"] + r["events"]
    r["total_rest"] = round(r["api_rest"] + shared, 2)
    r["total_http"] = round(r["api_http"] + shared, 2)
    return r


# ----------------------------------------------------------------------------------------------
# The block
# ----------------------------------------------------------------------------------------------


def money(x: float) -> str:
    return "–" if x == 0 else f"{x:.2f}"


def num(x: float) -> str:
    return f"{x:g}"


def table_rows(bench: Bench, p: Prices) -> list:
    """(label, inputs, rounded columns) per line of the table."""
    rows = []
    for row in bench.dynamodb_ops():
        op = p.operations.get(row.name) or {}
        status = f", status {row.status}" if row.status else ""
        inputs = (
            f"{num(row.rcu)} / {num(row.wcu)} / {row.resp} / {op.get('events', 0)} / "
            f"{p.v('billed_ms').get(op.get('duration'), 0)}{status}"
        )
        rows.append((f"`{row.name}`", inputs, rounded(operation_cost(p, row))))
    rows.append(
        (
            "add to every request when the tenant sets a rate limit (discovery exempt)",
            f"0 / {num(p.v('rate_limit_wcu'))} / – / 0 / –",
            rounded(rate_limit_cost(p)),
        )
    )
    for auth in bench.dynamodb_auth():
        rows.append(
            (
                f"add to every request with the authorizer's cache off: {auth.name}",
                f"{num(auth.rcu)} / 0 / – / 0 / {p.v('authorizer_billed_ms')}",
                rounded(authorizer_cost(p, auth)),
            )
        )
    return rows


def render_table(bench: Bench, p: Prices) -> str:
    head = (
        "| operation (`bench cost` row) | RCU / WCU / resp B / events / billed ms | API (REST) | API (HTTP) | Lambda "
        "| DynamoDB | logs | data transfer | events | total REST | total HTTP |"
    )
    lines = [head, "|" + "---|" * 2 + "---:|" * 9]
    for label, inputs, r in table_rows(bench, p):
        cells = [r[k] for k in COLUMNS] + [r["total_rest"], r["total_http"]]
        lines.append(f"| {label} | {inputs} | " + " | ".join(money(c) for c in cells) + " |")
    return "\n".join(lines)


def grouped(n: float) -> str:
    """A whole number with its thousands apart: 10 000."""
    return f"{n:,.0f}".replace(",", " ")


def pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f} %"


def summary(bench: Bench, p: Prices) -> list:
    """Sentences with the figures the prose needs, computed here so that they cannot drift."""
    by_name = {r.name: r for r in bench.dynamodb_ops()}
    missing = [h for h in p.highlights if h not in by_name]
    if missing:
        raise InputError(f"prices.json highlights name rows the bench does not have: {missing}")
    out = []
    ops = [(r.name, rounded(operation_cost(p, r))) for r in bench.dynamodb_ops()]
    saved = sorted(((c["total_rest"] - c["total_http"]) / c["total_rest"], c["total_rest"] - c["total_http"], n) for n, c in ops)
    low, high = min(d for _, d, _ in saved), max(d for _, d, _ in saved)
    amount = f"${low:.2f}" if f"{low:.2f}" == f"{high:.2f}" else f"${low:.2f} to ${high:.2f}"
    out.append(
        f"- REST API against HTTP API: {amount} less per million requests with an HTTP API, on every row: "
        f"{100 * saved[0][0]:.0f} % of the total on `{saved[0][2]}`, {100 * saved[-1][0]:.0f} % on `{saved[-1][2]}`."
    )
    for name in p.highlights:
        c = operation_cost(p, by_name[name])
        r = rounded(c)
        biggest = sorted(((v, k) for k, v in r.items() if k in COLUMNS and k != "api_http"), reverse=True)[:2]
        label = {"api_rest": "the REST API", "lambda": "Lambda", "dynamodb": "DynamoDB", "logs": "logs",
                 "transfer": "data transfer out", "events": "events"}
        out.append(
            f"- `{name}`: ${r['total_rest']:.2f} per million with the REST API, ${r['total_http']:.2f} with an HTTP API "
            f"(${r['total_rest'] - r['total_http']:.2f} less); the REST API is {pct(r['api_rest'], r['total_rest'])} of its total. "
            f"Largest lines: {label[biggest[0][1]]} ${biggest[0][0]:.2f}, {label[biggest[1][1]]} ${biggest[1][0]:.2f}."
        )
    out.append(f"- One change event: ${cents(per_event(p)):.2f} per million (pipe record, bus event, enrichment share).")
    # the IdP example
    idp = p.v("idp_example")
    cycles = idp["days_per_month"] * 24 * 60 / idp["cycle_minutes"]
    changes = idp["users"] * idp["changed_share_per_cycle"] * cycles

    def per_request_set(names):
        for n in names:
            if n not in by_name:
                raise InputError(f"prices.json idp_example names a row the bench does not have: {n!r}")
        return sum(rounded(operation_cost(p, by_name[n]))["total_rest"] for n in names)

    monthly = changes * per_request_set(idp["requests_per_change"]) / 1e6
    requests = changes * len(idp["requests_per_change"])
    initial = idp["users"] * per_request_set(idp["requests_per_user_initial"]) / 1e6
    lookup_all = idp["users"] * cycles * rounded(operation_cost(p, by_name[idp["requests_per_change"][0]]))["total_rest"] / 1e6
    out.append(
        f"- An IdP syncing {grouped(idp['users'])} users every {idp['cycle_minutes']} minutes ({grouped(cycles)} cycles in "
        f"{idp['days_per_month']} days), {100 * idp['changed_share_per_cycle']:g} % of them changed per cycle, each looked up "
        f"and patched: {grouped(requests)} requests, ${monthly:.2f} a month with the REST API; its first cycle "
        f"(a lookup and a POST per user) ${initial:.2f} once. An IdP that looked up every user every cycle would "
        f"send {grouped(idp['users'] * cycles)} lookups a month: ${lookup_all:.2f}."
    )
    storage = p.v("dynamodb_storage_per_gb_month") + p.v("dynamodb_pitr_per_gb_month")
    per_million_users = 1e6 * p.v("user_storage_bytes") / p.v("bytes_per_gb")
    out.append(
        f"- Storage: {p.v('user_storage_bytes') / 1024:g} KB per user, ${p.v('dynamodb_storage_per_gb_month'):.2f} per GB-month "
        f"and ${p.v('dynamodb_pitr_per_gb_month'):.2f} for point-in-time recovery: a million users "
        f"({per_million_users:.2f} GB) ${per_million_users * storage:.2f} a month."
    )
    return out


def assumptions_line(p: Prices) -> str:
    ms = p.v("billed_ms")
    return (
        "Assumed (prices.json): "
        + " or ".join(f"{v} ms" for v in ms.values())
        + f" billed per invocation (each row's is in its inputs) at {p.v('lambda_memory_mb')} MB; a {p.v('function_log_line_bytes')}-byte function log line and a "
        f"{p.v('access_log_line_bytes')}-byte access-log line per request; {p.v('response_header_bytes')} bytes of "
        f"headers on every response; {p.v('events_per_enrichment_batch')} events per enrichment invocation of "
        f"{p.v('enrichment_billed_ms')} ms; an authorizer invocation {p.v('authorizer_billed_ms')} ms; "
        f"1 GB = {grouped(p.v('bytes_per_gb'))} bytes."
    )


def render_block(bench: Bench, p: Prices) -> str:
    return "\n".join(
        [
            BEGIN,
            "<!-- generated by tests/bench/cost_table.py from docs/cost-inputs/bench-cost.txt and "
            "docs/cost-inputs/prices.json: edit those and run it with --write, not this block -->",
            "",
            "US dollars per million requests, us-east-1. " + assumptions_line(p),
            "",
            render_table(bench, p),
            "",
            *summary(bench, p),
            END,
        ]
    )


def doc_block(doc_text: str) -> str:
    start, end = doc_text.find(BEGIN), doc_text.find(END)
    if start < 0 or end < start:
        raise InputError(f"the document has no {BEGIN} … {END} block")
    return doc_text[start : end + len(END)]


def replace_block(doc_text: str, block: str) -> str:
    old = doc_block(doc_text)
    return doc_text.replace(old, block, 1)


# ----------------------------------------------------------------------------------------------
# --compare
# ----------------------------------------------------------------------------------------------


def compare(committed: Bench, fresh: Bench) -> list:
    """The differences between two bench outputs that matter to the table, one line each."""
    diffs = []
    exact = ("get", "get_many", "query", "write", "rcu", "wcu", "status")
    old_ops = {r.name: r for r in committed.dynamodb_ops()}
    new_ops = {r.name: r for r in fresh.dynamodb_ops()}
    for name in old_ops.keys() - new_ops.keys():
        diffs.append(f"{name!r}: in the committed input, not in the fresh output")
    for name in new_ops.keys() - old_ops.keys():
        diffs.append(f"{name!r}: in the fresh output, not in the committed input")
    for name in [n for n in old_ops if n in new_ops]:
        a, b = old_ops[name], new_ops[name]
        what = [f"{k} {getattr(a, k)} -> {getattr(b, k)}" for k in exact if getattr(a, k) != getattr(b, k)]
        if abs(b.resp - a.resp) > RESP_TOLERANCE * a.resp:  # a body where there was none is a difference too
            what.append(f"resp B {a.resp} -> {b.resp} (more than {100 * RESP_TOLERANCE:g} %)")
        if what:
            diffs.append(f"{name!r}: " + ", ".join(what))
    old_auth = {r.name: r for r in committed.dynamodb_auth()}
    new_auth = {r.name: r for r in fresh.dynamodb_auth()}
    for name in sorted(old_auth.keys() ^ new_auth.keys()):
        side = "committed input" if name in old_auth else "fresh output"
        diffs.append(f"authentication {name!r}: only in the {side}")
    for name in [n for n in old_auth if n in new_auth]:
        a, b = old_auth[name], new_auth[name]
        what = [f"{k} {getattr(a, k)} -> {getattr(b, k)}" for k in ("get", "get_many", "rcu") if getattr(a, k) != getattr(b, k)]
        if what:
            diffs.append(f"authentication {name!r}: " + ", ".join(what))
    return diffs


# ----------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, default=DEFAULT_BENCH, help="the output of target/debug/bench cost")
    ap.add_argument("--prices", type=Path, default=DEFAULT_PRICES, help="list prices and assumptions")
    ap.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="the document holding the generated block")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the block in --doc")
    mode.add_argument("--check", action="store_true", help="exit 1 when the block in --doc differs")
    ap.add_argument("--compare", type=Path, metavar="FRESH", help="a fresh bench output to hold against --bench")
    args = ap.parse_args(argv)
    try:
        bench = parse_bench(args.bench.read_text(encoding="utf-8"))
        prices = load_prices(args.prices)
        stale = [n for n in prices.operations if n not in {r.name for r in bench.dynamodb_ops()}]
        if stale:
            raise InputError(f"prices.json operations names rows the bench does not have: {stale}")
        block = render_block(bench, prices)
        status = 0
        if args.compare:
            diffs = compare(bench, parse_bench(args.compare.read_text(encoding="utf-8")))
            if diffs:
                print(f"{args.compare} differs from {args.bench} (regenerate the input: target/debug/bench cost > {args.bench}):")
                print("\n".join("  " + d for d in diffs))
                status = 1
            else:
                print(f"{args.compare}: the same round trips, capacity and statuses as {args.bench}, response sizes within 10 %")
        if args.write:
            text = args.doc.read_text(encoding="utf-8")
            args.doc.write_text(replace_block(text, block), encoding="utf-8")
            print(f"wrote the cost table into {args.doc}")
        elif args.check:
            current = doc_block(args.doc.read_text(encoding="utf-8"))
            if current != block:
                diff = difflib.unified_diff(
                    current.splitlines(), block.splitlines(), f"{args.doc} (as committed)", "derived from the inputs", lineterm=""
                )
                print("\n".join(diff))
                print(f"\n{args.doc}: the cost table differs from its inputs; run python3 tests/bench/cost_table.py --write")
                status = 1
            else:
                print(f"{args.doc}: the cost table matches its inputs")
        elif not args.compare:
            print(block)
        return status
    except (InputError, OSError) as e:
        print(f"cost_table.py: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
