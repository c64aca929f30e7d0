#!/usr/bin/env python3
"""Summarises checkov's JSON report (checkov -o json) of infra/template.yaml in a few lines.

    python3 infra/checkov_summary.py REPORT.json

Prints the counts, every failed check in full (id, name, resource, lines, guideline), and the
skipped checks grouped by check id: how many resources skip it and why (the first clause of the
suppression comment in infra/template.yaml; resources whose comment differs are named apart).
Exits 1 when a check failed or the report cannot be read. Standard library only (run by
infra/check.sh with the system python3).
"""
import collections
import json
import re
import sys


def reason(comment, width=96):
    """The first clause of a suppression comment, at most `width` characters."""
    text = " ".join((comment or "no reason given").split())
    first = re.split(r"(?<=[.;:])\s", text, maxsplit=1)[0].rstrip(".;:")
    return first if len(first) <= width else first[: width - 1].rstrip() + "…"


def reports(data):
    """checkov writes one object per framework, or a list of them."""
    items = data if isinstance(data, list) else [data]
    for item in items:
        if isinstance(item, dict) and "results" in item:
            yield item


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().split("\n\n")[1].strip())
        return 2
    try:
        with open(argv[1], encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        print(f"checkov: could not read its report ({e})")
        return 1
    passed, failed, skipped = [], [], []
    for item in reports(data):
        results = item["results"]
        passed += results.get("passed_checks", [])
        failed += results.get("failed_checks", [])
        skipped += results.get("skipped_checks", [])
    if not (passed or failed or skipped):
        print("checkov: the report holds no results (was the template scanned?)")
        return 1
    print(f"checkov: {len(passed)} passed, {len(failed)} failed, {len(skipped)} skipped")
    for c in failed:
        lines = "-".join(str(n) for n in c.get("file_line_range") or [])
        print(f"  FAILED {c['check_id']} {c.get('check_name', '')}")
        print(f"    {c.get('resource', '?')} ({c.get('file_path', '').lstrip('/')}:{lines})")
        if c.get("guideline"):
            print(f"    {c['guideline']}")
    by_check = collections.OrderedDict()
    for c in sorted(skipped, key=lambda c: c["check_id"]):
        by_check.setdefault(c["check_id"], []).append(c)
    if by_check:
        print("  skipped, by check (each with its reason in infra/template.yaml; infra/README.md lists them):")
    for check_id, checks in sorted(by_check.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        comments = collections.Counter(c["check_result"].get("suppress_comment", "") for c in checks)
        main_comment = comments.most_common(1)[0][0]
        kinds = sorted({c["resource"].split(".")[0].split("::")[-1] for c in checks})
        print(f"  {len(checks):3} × {check_id:<12} {'/'.join(kinds)}: {reason(main_comment)}")
        for c in checks:
            comment = c["check_result"].get("suppress_comment", "")
            if reason(comment) != reason(main_comment):
                name = c["resource"].split(".", 1)[-1]
                print(f"{'':21}{name}: {reason(comment, 80)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
