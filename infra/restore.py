#!/usr/bin/env python3
"""Restore the scim-serverless table into a new table and check it, ready for the stack to serve.

    python3 infra/restore.py --region eu-west-1 --source scim-serverless \\
        --target scim-serverless-r20261207 (--latest | --time 2026-12-07T09:55:00Z | --backup-arn ARN)

What it does, in order, printing a line per step:
1. restores: from point-in-time recovery (the latest restorable time, or --time) or from an AWS
   Backup / on-demand backup (--backup-arn), into the new table --target (never over an existing
   one: a restore never overwrites);
2. gives the new table what the stack's own table has and a restore does not carry over: the
   stream (NEW_AND_OLD_IMAGES, which the events pipe reads), TTL on expires_at, point-in-time
   recovery and deletion protection;
3. checks it: items per family (the first segment of the partition key: TENANT, CONF, KEY, ...)
   in the new table beside the source's (when the source is still readable), and the layout
   marker against the layout this checkout's code expects (shared/src/store/layout/mod.rs). A
   restored table with no layout marker, a newer layout than the code's, or no tenant is refused
   (exit 1); an older layout is fine: run `scim-admin migrate` on it before switching;
4. prints the parameters that switch the stack to it (UseExistingTable=true, TableName,
   ExistingTableStreamLabel). Switching leaves the old table in place: nothing is deleted.

--endpoint points the client at a local DynamoDB (moto) for rehearsals: the test suite restores
a table the product wrote and serves it again (tests/e2e/upgrade.rs). Credentials and region
come from the usual AWS environment. infra/README.md "Restoring the table" is the runbook.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import re
import sys
import time
from pathlib import Path

import boto3

LAYOUT_SOURCE = Path(__file__).resolve().parent.parent / "shared" / "src" / "store" / "layout" / "mod.rs"


def say(text: str) -> None:
    print(f"restore: {text}", flush=True)


def expected_layout() -> int:
    """The layout version the code of this checkout serves."""
    found = re.search(r"pub const LAYOUT_VERSION: u64 = (\d+);", LAYOUT_SOURCE.read_text())
    if not found:
        raise SystemExit(f"restore: no LAYOUT_VERSION in {LAYOUT_SOURCE}")
    return int(found.group(1))


def wait_active(ddb, table: str, what: str, timeout: float) -> dict:
    """Waits until the table (and its indexes) are ACTIVE; returns its description."""
    deadline = time.monotonic() + timeout
    while True:
        t = ddb.describe_table(TableName=table)["Table"]
        busy = t["TableStatus"] != "ACTIVE" or any(i.get("IndexStatus", "ACTIVE") != "ACTIVE" for i in t.get("GlobalSecondaryIndexes", []))
        if not busy:
            return t
        if time.monotonic() > deadline:
            raise SystemExit(f"restore: {table} is still {t['TableStatus']} after {timeout:.0f} s ({what})")
        time.sleep(2)


def restore(ddb, args) -> None:
    # asked by name: ListTables answers 100 names a page, so an account with more would hide it
    try:
        ddb.describe_table(TableName=args.target)
        exists = True
    except ddb.exceptions.ResourceNotFoundException:
        exists = False
    if exists:
        raise SystemExit(f"restore: {args.target} exists already; a restore goes into a new table (choose another --target)")
    if args.backup_arn:
        say(f"restoring backup {args.backup_arn} into {args.target}")
        ddb.restore_table_from_backup(TargetTableName=args.target, BackupArn=args.backup_arn)
    elif args.time:
        at = datetime.datetime.fromisoformat(args.time.replace("Z", "+00:00"))
        say(f"restoring {args.source} as of {at.isoformat()} into {args.target}")
        ddb.restore_table_to_point_in_time(SourceTableName=args.source, TargetTableName=args.target, RestoreDateTime=at)
    else:
        say(f"restoring {args.source} at its latest restorable time into {args.target}")
        ddb.restore_table_to_point_in_time(SourceTableName=args.source, TargetTableName=args.target, UseLatestRestorableTime=True)
    wait_active(ddb, args.target, "restoring", args.timeout)
    say(f"{args.target} is active")


def configure(ddb, table: str, timeout: float) -> str:
    """The stream, TTL, recovery and deletion protection of the stack's own table; the stream's label."""
    t = wait_active(ddb, table, "before configuring", timeout)
    if not (t.get("StreamSpecification") or {}).get("StreamEnabled"):
        ddb.update_table(TableName=table, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        t = wait_active(ddb, table, "enabling the stream", timeout)
    say(f"stream on ({t['StreamSpecification']['StreamViewType']})")
    ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})
    say("TTL on expires_at")
    ddb.update_continuous_backups(TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    say("point-in-time recovery on")
    ddb.update_table(TableName=table, DeletionProtectionEnabled=True)
    t = wait_active(ddb, table, "turning deletion protection on", timeout)
    say("deletion protection on")
    return t["LatestStreamLabel"]


def families(ddb, table: str) -> collections.Counter:
    """Items per family (the partition key up to its first '#'), by a scan of the keys only."""
    counts: collections.Counter = collections.Counter()
    start = None
    while True:
        page = ddb.scan(TableName=table, ProjectionExpression="pk", **({"ExclusiveStartKey": start} if start else {}))
        for item in page.get("Items", []):
            counts[item["pk"]["S"].split("#", 1)[0]] += 1
        start = page.get("LastEvaluatedKey")
        if not start:
            return counts
        if sum(counts.values()) % 100_000 < len(page.get("Items", [])):
            say(f"counted {sum(counts.values())} items of {table}")


def layout_of(ddb, table: str) -> int | None:
    item = ddb.get_item(TableName=table, Key={"pk": {"S": "LAYOUT"}, "sk": {"S": "LAYOUT"}}, ConsistentRead=True).get("Item")
    if not item:
        return None
    found = re.search(r'"version"\s*:\s*(\d+)', item.get("doc", {}).get("S", ""))
    return int(found.group(1)) if found else None


def check(ddb, args) -> list[str]:
    """What makes the restored table unfit to serve (empty when it is fit); prints what it found."""
    restored = families(ddb, args.target)
    try:
        source = families(ddb, args.source)
    except ddb.exceptions.ResourceNotFoundException:
        source = None
    for family in sorted(set(restored) | set(source or {})):
        beside = "" if source is None else f" (source now: {source.get(family, 0)})"
        say(f"  {family:<8} {restored.get(family, 0):>9} items{beside}")
    problems = []
    if not restored.get("TENANTS") and not restored.get("TENANT"):
        problems.append("the restored table holds no tenant")
    want, got = expected_layout(), layout_of(ddb, args.target)
    if got is None:
        problems.append("the restored table has no layout marker (pk LAYOUT): is it a scim-serverless table?")
    elif got > want:
        problems.append(f"the restored table is at layout {got}, newer than this checkout's {want}: use the code that wrote it")
    elif got < want:
        say(f"layout {got}, this code serves {want}: run `scim-admin --table {args.target} migrate` before switching")
    else:
        say(f"layout {got}, the one this code serves")
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--region", required=True)
    parser.add_argument("--source", required=True, help="the table to restore (the stack's TableName)")
    parser.add_argument("--target", required=True, help="the new table's name")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--latest", action="store_true", help="point-in-time recovery at the latest restorable time")
    how.add_argument("--time", help="point-in-time recovery at this UTC time (RFC 3339)")
    how.add_argument("--backup-arn", help="an AWS Backup recovery point or on-demand backup of the table")
    parser.add_argument("--endpoint", help="a local DynamoDB endpoint (moto) for rehearsals")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for each table change")
    args = parser.parse_args(argv)
    ddb = boto3.client("dynamodb", region_name=args.region, endpoint_url=args.endpoint)
    restore(ddb, args)
    stream = configure(ddb, args.target, args.timeout)
    problems = check(ddb, args)
    for p in problems:
        say(f"REFUSED: {p}")
    if problems:
        say(f"{args.target} is kept for inspection; the stack still serves {args.source}")
        return 1
    say(f"{args.target} is ready. To switch the stack to it (the old table {args.source} stays, untouched),")
    say("add these to the region's parameter_overrides in infra/samconfig.toml and run sam deploy with it:")
    for line in ("UseExistingTable=true", f"TableName={args.target}", f"ExistingTableStreamLabel={stream}"):
        print(f'  "{line}",')
    print(f"STREAM_LABEL={stream}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
