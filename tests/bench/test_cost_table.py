"""Tests of tests/bench/cost_table.py. Run from the repo root:

    python3 -m unittest tests/bench/test_cost_table.py
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cost_table as ct  # noqa: E402

BENCH = ct.DEFAULT_BENCH.read_text(encoding="utf-8")

# real rows of docs/cost-inputs/bench-cost.txt
ROW_GET = "GET /Users/{id}                               dynamodb     1         1      1      0    2.5    0.0     665     2.5 / 0.0"
ROW_404 = (
    "GET /Users/{id} of no user (404: an activity entry)  dynamodb     1         0      0      1    1.0    1.0"
    "     108     0.5 / 1.0  (status 404)"
)
ROW_EMBEDDED = "page startIndex=101 count=100 (next page)     embedded     0         1      1      1   12.0    1.0   49213             -"
ROW_LONG = "GET /Users/{id} with a 20-attribute extension  dynamodb     1         0      0      0    1.0    0.0     938     0.5 / 0.0"


def format_op_row(r: ct.OpRow) -> str:
    """The row as tests/bench/main.rs (fn cost) prints it."""
    status = f"  (status {r.status})" if r.status else ""
    return (
        f"{r.name:<44} {r.store:>9} {r.get:>5} {r.get_many:>9} {r.query:>6} {r.write:>6} "
        f"{r.rcu:>6.1f} {r.wcu:>6.1f} {r.resp:>7} {r.moto:>13}{status}"
    )


def bench_with(row_name: str, store: str = "dynamodb", drop: bool = False, **changes) -> str:
    """The committed bench output with one operation row changed (or dropped)."""
    out = []
    for line in BENCH.splitlines():
        try:
            row = ct.parse_op_row(line)
        except ct.InputError:
            out.append(line)
            continue
        if (row.name, row.store) == (row_name, store):
            if drop:
                continue
            row = ct.OpRow(**(row.__dict__ | changes))
            line = format_op_row(row)
        out.append(line)
    text = "\n".join(out) + "\n"
    assert text != BENCH or not (drop or changes), f"no row {row_name!r} ({store}) changed"
    return text


def run(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = ct.main(list(argv))
    return status, out.getvalue() + err.getvalue()


class Parsing(unittest.TestCase):
    def test_a_row_with_moto_figures(self):
        r = ct.parse_op_row(ROW_GET)
        self.assertEqual(
            (r.name, r.store, r.get, r.get_many, r.query, r.write, r.rcu, r.wcu, r.resp, r.moto, r.status),
            ("GET /Users/{id}", "dynamodb", 1, 1, 1, 0, 2.5, 0.0, 665, "2.5 / 0.0", None),
        )

    def test_the_404_row_a_name_past_its_column_and_a_status(self):
        r = ct.parse_op_row(ROW_404)
        self.assertEqual(r.name, "GET /Users/{id} of no user (404: an activity entry)")
        self.assertEqual((r.get, r.write, r.rcu, r.wcu, r.resp, r.moto, r.status), (1, 1, 1.0, 1.0, 108, "0.5 / 1.0", 404))

    def test_a_name_one_past_its_column(self):
        r = ct.parse_op_row(ROW_LONG)
        self.assertEqual((r.name, r.rcu, r.resp), ("GET /Users/{id} with a 20-attribute extension", 1.0, 938))

    def test_no_moto_figures(self):
        r = ct.parse_op_row(ROW_EMBEDDED)
        self.assertEqual((r.name, r.store, r.get_many, r.rcu, r.wcu, r.resp, r.moto), ("page startIndex=101 count=100 (next page)", "embedded", 1, 12.0, 1.0, 49213, "-"))

    def test_a_line_that_is_not_a_row(self):
        for line in ["GET /Users/{id}  dynamodb  1  1  1  0  2.5  0.0  665", "operation store get", ROW_GET.replace("665", "6x5")]:
            with self.assertRaises(ct.InputError, msg=line):
                ct.parse_op_row(line)

    def test_the_committed_output_every_row_read_and_printed_back_the_same(self):
        b = ct.parse_bench(BENCH)
        self.assertEqual(len(b.dynamodb_ops()), 26)
        self.assertEqual(len(b.ops), 52)
        self.assertEqual([(a.name, a.get_many, a.rcu) for a in b.dynamodb_auth()], [("API key", 1, 3.0), ("OAuth access token", 0, 1.0)])
        rows = [line for line in BENCH.splitlines() if " embedded " in line or " dynamodb " in line]
        ops = [line for line in rows if not line.startswith(("API key", "OAuth access token"))]
        self.assertEqual([format_op_row(r) for r in b.ops.values()], ops)

    def test_a_broken_line_inside_a_section_is_an_error_not_skipped(self):
        broken = BENCH.replace(ROW_GET, ROW_GET.replace("2.5 / 0.0", "2.5/0.0"))
        self.assertNotEqual(broken, BENCH)
        with self.assertRaises(ct.InputError):
            ct.parse_bench(broken)


def minimal_prices(operations: dict) -> ct.Prices:
    """Prices and assumptions stated here, so that the hand computation below depends on
    nothing else."""
    v = lambda x: {"value": x, "source": "test"}  # noqa: E731
    return ct.Prices(
        {
            "prices": {
                "api_rest_per_million": v(3.50),
                "api_http_per_million": v(1.00),
                "api_http_metering_bytes": v(524288),
                "lambda_per_million_requests": v(0.20),
                "lambda_per_gb_second_arm64": v(0.0000133334),
                "dynamodb_per_million_wru": v(0.625),
                "dynamodb_per_million_rru": v(0.125),
                "logs_ingestion_per_gb": v(0.50),
                "data_transfer_out_per_gb": v(0.09),
                "pipes_per_million_records": v(0.40),
                "custom_events_per_million": v(1.00),
            },
            "assumptions": {
                "bytes_per_gb": v(2**30),
                "lambda_memory_mb": v(256),
                "billed_ms": v({"single": 10, "page": 50}),
                "function_log_line_bytes": v(200),
                "access_log_line_bytes": v(1024),
                "response_header_bytes": v(400),
                "events_per_enrichment_batch": v(10),
                "enrichment_billed_ms": v(10),
                "enrichment_log_line_bytes": v(200),
            },
            "operations": operations,
        }
    )


class Arithmetic(unittest.TestCase):
    def test_get_user_by_id_by_hand(self):
        # GET /Users/{id}, dynamodb: 2.5 RCU, 0 WCU, a 665-byte body, no event, 10 ms billed.
        #   API (REST)     3.50
        #   API (HTTP)     1.00                      (665 + 400 bytes: one 512 KB increment)
        #   Lambda         0.20 + 0.010 s * 0.25 GB * 0.0000133334 * 1e6 = 0.20 + 0.0333 = 0.2333 -> 0.23
        #   DynamoDB       2.5 * 0.125 = 0.3125                                                  -> 0.31
        #   logs           (200 + 1024) B * 1e6 / 2^30 = 1.1399 GB * 0.50 = 0.56997            -> 0.57
        #   data transfer  (665 + 400) B * 1e6 / 2^30 = 0.9919 GB * 0.09 = 0.08927             -> 0.09
        #   total REST     3.50 + 0.23 + 0.31 + 0.57 + 0.09 = 4.70; total HTTP 1.00 + ... = 2.20
        p = minimal_prices({"GET /Users/{id}": {"duration": "single", "events": 0, "why": "a read"}})
        c = ct.operation_cost(p, ct.parse_op_row(ROW_GET))
        self.assertAlmostEqual(c["lambda"], 0.2333335, places=6)
        self.assertAlmostEqual(c["dynamodb"], 0.3125, places=9)
        self.assertAlmostEqual(c["logs"], 0.56997, places=5)
        self.assertAlmostEqual(c["transfer"], 0.08927, places=5)
        self.assertEqual(c["events"], 0)
        r = ct.rounded(c)
        self.assertEqual([r[k] for k in ("api_rest", "api_http", "lambda", "dynamodb", "logs", "transfer")], [3.50, 1.00, 0.23, 0.31, 0.57, 0.09])
        self.assertEqual((r["total_rest"], r["total_http"]), (4.70, 2.20))

    def test_events_and_the_page_duration(self):
        # deactivate user in 1 group: 2 events at 0.40 + 1.00 + (0.2333 + 200 B * 1e6 / 2^30 * 0.50 = 0.0931) / 10
        p = minimal_prices({"deactivate user in 1 group": {"duration": "page", "events": 2, "why": "t"}})
        row = ct.parse_bench(BENCH).ops[("deactivate user in 1 group", "dynamodb")]
        c = ct.operation_cost(p, row)
        self.assertAlmostEqual(c["events"], 2 * (1.40 + (0.2333335 + 0.0931323) / 10), places=6)
        self.assertAlmostEqual(c["lambda"], 0.20 + 0.050 * 0.25 * 0.0000133334 * 1e6, places=9)
        self.assertAlmostEqual(c["dynamodb"], 1.5 * 0.125 + 8 * 0.625, places=9)

    def test_an_http_api_response_over_512_kb_is_two_requests(self):
        p = minimal_prices({"GET /Users/{id}": {"duration": "single", "events": 0, "why": "a read"}})
        big = ct.OpRow(**(ct.parse_op_row(ROW_GET).__dict__ | {"resp": 524288}))
        self.assertEqual(ct.operation_cost(p, big)["api_http"], 2.00)

    def test_halves_round_up(self):
        self.assertEqual([ct.cents(x) for x in (0.125, 0.3125, 0.625, 4.375)], [0.13, 0.31, 0.63, 4.38])


class Inputs(unittest.TestCase):
    def test_every_price_and_assumption_says_where_it_comes_from(self):
        raw = json.loads(ct.DEFAULT_PRICES.read_text(encoding="utf-8"))
        ct.Prices(raw)  # validates
        del raw["prices"]["api_rest_per_million"]["source"]
        with self.assertRaises(ct.InputError):
            ct.Prices(raw)

    def test_a_bench_row_without_an_operation_entry_is_an_error(self):
        with tempfile.TemporaryDirectory() as d:
            raw = json.loads(ct.DEFAULT_PRICES.read_text(encoding="utf-8"))
            del raw["operations"]["group add 1 member"]
            prices = Path(d) / "prices.json"
            prices.write_text(json.dumps(raw), encoding="utf-8")
            status, out = run("--prices", str(prices))
            self.assertEqual(status, 2)
            self.assertIn("group add 1 member", out)
            self.assertEqual(run()[0], 0)


class Check(unittest.TestCase):
    def test_the_committed_document_matches_its_inputs(self):
        status, out = run("--check")
        self.assertEqual(status, 0, out)

    def test_an_edited_block_fails_and_write_repairs_it(self):
        with tempfile.TemporaryDirectory() as d:
            doc = Path(d) / "cost.md"
            doc.write_text(f"# costs\n\nbefore\n\n{ct.BEGIN}\nstale\n{ct.END}\n\nafter\n", encoding="utf-8")
            self.assertEqual(run("--doc", str(doc), "--check")[0], 1)
            self.assertEqual(run("--doc", str(doc), "--write")[0], 0)
            text = doc.read_text(encoding="utf-8")
            self.assertTrue(text.startswith("# costs\n\nbefore\n\n") and text.endswith("\n\nafter\n"), "only the block is rewritten")
            self.assertEqual(run("--doc", str(doc), "--check"), (0, f"{doc}: the cost table matches its inputs\n"))
            row = next(line for line in text.splitlines() if line.startswith("| `GET /Users/{id}` |"))
            edited = row.replace("| 4.70 |", "| 4.60 |")
            self.assertNotEqual(row, edited)
            doc.write_text(text.replace(row, edited), encoding="utf-8")
            status, out = run("--doc", str(doc), "--check")
            self.assertEqual(status, 1)
            self.assertIn("-" + edited, out)
            self.assertIn("+" + row, out)

    def test_a_document_without_the_block_fails(self):
        with tempfile.TemporaryDirectory() as d:
            doc = Path(d) / "cost.md"
            doc.write_text("# costs\n", encoding="utf-8")
            self.assertEqual(run("--doc", str(doc), "--check")[0], 2)


class Compare(unittest.TestCase):
    def compare(self, fresh_text: str) -> tuple[int, str]:
        with tempfile.TemporaryDirectory() as d:
            fresh = Path(d) / "fresh.txt"
            fresh.write_text(fresh_text, encoding="utf-8")
            return run("--compare", str(fresh))

    def test_the_same_output_passes(self):
        self.assertEqual(self.compare(BENCH)[0], 0)

    def test_a_changed_wcu_fails_naming_the_row(self):
        status, out = self.compare(bench_with("POST /Users", wcu=8.0))
        self.assertEqual(status, 1)
        self.assertIn("'POST /Users': wcu 7.0 -> 8.0", out)

    def test_a_changed_round_trip_or_status_fails(self):
        self.assertEqual(self.compare(bench_with("GET /Users/{id}", query=2))[0], 1)
        self.assertEqual(self.compare(bench_with("GET /Users/{id} of no user (404: an activity entry)", status=None))[0], 1)

    def test_the_response_size_may_move_by_up_to_10_percent(self):
        self.assertEqual(self.compare(bench_with("page startIndex=1 count=100", resp=round(49097 * 1.05)))[0], 0)
        self.assertEqual(self.compare(bench_with("page startIndex=1 count=100", resp=round(49097 * 0.95)))[0], 0)
        status, out = self.compare(bench_with("page startIndex=1 count=100", resp=round(49097 * 1.15)))
        self.assertEqual(status, 1)
        self.assertIn("resp B 49097 -> 56462", out)
        self.assertEqual(self.compare(bench_with("group add 1 member", resp=10))[0], 1, "a body where there was none")

    def test_a_row_missing_on_either_side_fails(self):
        status, out = self.compare(bench_with("DELETE /Users/{id}", drop=True))
        self.assertEqual(status, 1)
        self.assertIn("'DELETE /Users/{id}': in the committed input, not in the fresh output", out)
        status, out = self.compare(bench_with("DELETE /Users/{id}", name="DELETE /Users/{id} renamed"))
        self.assertEqual(status, 1)
        self.assertIn("in the fresh output, not in the committed input", out)

    def test_authentication_rows_are_compared_too(self):
        fresh = BENCH.replace("API key                       dynamodb     0         1    3.0", "API key                       dynamodb     0         1    4.0")
        self.assertNotEqual(fresh, BENCH)
        self.assertEqual(self.compare(fresh)[0], 1)

    def test_only_dynamodb_rows_and_not_motos_column(self):
        self.assertEqual(self.compare(bench_with("POST /Users", store="embedded", wcu=9.0))[0], 0)
        self.assertEqual(self.compare(bench_with("POST /Users", moto="0.0 / 2.0"))[0], 0)

    def test_check_and_compare_together(self):
        with tempfile.TemporaryDirectory() as d:
            fresh = Path(d) / "fresh.txt"
            fresh.write_text(bench_with("POST /Users", wcu=8.0), encoding="utf-8")
            self.assertEqual(run("--check", "--compare", str(fresh))[0], 1)
            fresh.write_text(BENCH, encoding="utf-8")
            self.assertEqual(run("--check", "--compare", str(fresh))[0], 0)


if __name__ == "__main__":
    unittest.main()
