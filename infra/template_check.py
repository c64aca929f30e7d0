#!/usr/bin/env python3
"""Offline checks of what infra/template.yaml deploys, on the translated CloudFormation.

    python3 infra/template_check.py              run every check under every parameter set
    python3 infra/template_check.py --self-test  show each check failing on a broken copy

How it works, with no AWS call and no credentials: the template is translated with samtranslator
(the SAM transform, through infra/iam_check.py's helpers) under a few parameter sets (PARAMETER_SETS:
no domain and no alarm topic; a custom domain with a hosted zone and an alarm topic; backups with a
cross-region copy and a WAF web ACL made by the stack; an existing web ACL). Conditions, Fn::If,
Fn::Sub and Ref are resolved with iam_check's resolver, so "exists when set" means: the resource is
in the translated template and its Condition holds under that parameter set.

The checks (CHECKS) look at meaning, not names where they can: an alarm is "the API 5XX rate" because
its metric math divides AWS/ApiGateway 5XXError by Count, and "a function's error alarm" because it
reads that function's Lambda Errors. The pipe's filter is evaluated like EventBridge evaluates an
event pattern (EventPattern below: exact values, prefix, suffix, anything-but with values, a prefix
or a suffix, exists with its leaf-only rule, equals-ignore-case, numeric, $or) on sample DynamoDB
stream records of every item family of the table, and it may use only the operators EventBridge
Pipes support (their documentation's operator table: anything-but with a prefix or suffix is event
bus only). The template's Rules section is evaluated for the alarm-topic requirement. The token
signing key's policy is read the way KMS reads it (which principals an action is allowed to, an
unconditioned Deny taking them away; conditions of an Allow taken as holding), and the function
roles' own policies with iam_check's evaluator.

--self-test first proves the pattern evaluator on hand-written cases, each also run against an
evaluator with the rule it tests broken (like iam_check's self-test); then, for every check, it
breaks a copy of the template the way that check exists to catch (MUTATIONS) and shows that the
check then fails. A check that cannot fail proves nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import iam_check as ic  # noqa: E402  (the translation and the intrinsic resolver live there)

TEMPLATE = HERE / "template.yaml"

TOPIC = f"arn:aws:sns:{ic.REGION}:{ic.ACCOUNT}:scim-alarms"
DOMAIN = "eu.scim.example.com"
CERTIFICATE = f"arn:aws:acm:{ic.REGION}:{ic.ACCOUNT}:certificate/0a1b2c3d-1111-2222-3333-444455556666"
ZONE = "Z0123456789ABCDEFGHIJ"
COPY_VAULT = f"arn:aws:backup:us-east-1:{ic.ACCOUNT}:backup-vault:scim-dr"
RESTORED_LABEL = "2026-12-07T10:00:00.000"
RESTORED_STREAM = f"arn:aws:dynamodb:{ic.REGION}:{ic.ACCOUNT}:table/scim-serverless/stream/{RESTORED_LABEL}"
EXTERNAL_ACL = f"arn:aws:wafv2:{ic.REGION}:{ic.ACCOUNT}:regional/webacl/shared/0a1b2c3d-4e5f"

# Parameter overrides per set (everything else: the template's defaults).
PARAMETER_SETS: dict[str, dict[str, str]] = {
    # the defaults: no domain, no topic (so the alarm-topic rule refuses it), backups without a copy, no WAF
    "plain": {},
    "domain": {"DomainName": DOMAIN, "CertificateArn": CERTIFICATE, "HostedZoneId": ZONE,
               "AlarmTopicArn": TOPIC, "Tracing": "Active", "ApiMetricsEnabled": "true",
               "DeploymentType": "Linear10PercentEvery1Minute", "ApplicationLogLevel": "DEBUG"},
    "backup": {"EnableBackup": "true", "BackupCopyDestinationVaultArn": COPY_VAULT, "AlarmsNotifyNobody": "true",
               "CreateWebAcl": "true", "WebAclRateLimit": "1200", "DeploymentType": "AllAtOnce",
               "EventArchiveRetentionDays": "30", "ApplicationLogLevel": "FATAL"},
    # a table restored by infra/restore.py served in place of the stack's own
    "restored": {"UseExistingTable": "true", "ExistingTableStreamLabel": RESTORED_LABEL, "AlarmTopicArn": TOPIC},
    # WARN: the level at which a Lambda-side filter would drop the INFO metric lines
    "external-waf": {"WebAclArn": EXTERNAL_ACL, "AlarmTopicArn": TOPIC, "ApplicationLogLevel": "WARN"},
    # an HTTP API in place of the REST API, on its execute-api host and behind a custom domain
    # (there with the authorizer's cache off: no identity source required)
    "http": {"ApiType": "HTTP", "AlarmTopicArn": TOPIC},
    "http-domain": {"ApiType": "HTTP", "DomainName": DOMAIN, "CertificateArn": CERTIFICATE, "HostedZoneId": ZONE,
                    "AlarmTopicArn": TOPIC, "AuthorizerCacheTtl": "0", "ApiMetricsEnabled": "true"},
}

ROUTE_SUFFIX = "/scim/v2"


class CheckError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Event patterns, evaluated like EventBridge
# ---------------------------------------------------------------------------------------------

MISSING = object()

# What EventBridge Pipes filters accept ("Comparison operators for use in event patterns", the
# "Pipe support" column): anything-but only with exact values; no wildcard; $or not listed.
PIPE_OPERATORS = {"exact", "prefix", "suffix", "equals-ignore-case", "anything-but", "exists", "numeric"}
BUS_OPERATORS = PIPE_OPERATORS | {"anything-but-prefix", "anything-but-suffix", "$or"}

PATTERN_MUTANTS = ["prefix-ignored", "exists-on-objects", "anything-but-ignored", "or-as-and",
                   "anything-but-matches-missing", "array-needs-all"]


class EventPattern:
    """EventBridge event pattern matching. `mutant` breaks one rule on purpose (self-test)."""

    def __init__(self, mutant: str | None = None):
        assert mutant is None or mutant in PATTERN_MUTANTS, mutant
        self.mutant = mutant

    def operators(self, pattern) -> set[str]:
        """The operators a pattern uses (names as in PIPE_OPERATORS / BUS_OPERATORS)."""
        found: set[str] = set()

        def leaf(item):
            if not isinstance(item, dict):
                found.add("exact")
                return
            for key, value in item.items():
                if key == "anything-but" and isinstance(value, dict):
                    found.update(f"anything-but-{k}" for k in value)
                elif key in ("prefix", "suffix") and isinstance(value, dict):
                    found.add(key)
                else:
                    found.add(key)

        def walk(node):
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "$or":
                        found.add("$or")
                        for sub in value:
                            walk(sub)
                    elif isinstance(value, list):
                        for item in value:
                            leaf(item)
                    else:
                        walk(value)

        walk(pattern)
        return found

    def matches(self, pattern: dict, event) -> bool:
        if not isinstance(pattern, dict):
            raise CheckError(f"a pattern must be an object: {pattern!r}")
        results = []
        for key, rule in pattern.items():
            if key == "$or":
                if not isinstance(rule, list) or not rule:
                    raise CheckError("$or takes a non-empty list of patterns")
                subs = [self.matches(sub, event) for sub in rule]
                results.append(all(subs) if self.mutant == "or-as-and" else any(subs))
                continue
            value = event.get(key, MISSING) if isinstance(event, dict) else MISSING
            if isinstance(rule, dict):
                results.append(self.matches(rule, value if isinstance(value, dict) else {}))
            elif isinstance(rule, list):
                if not rule:
                    raise CheckError(f"empty match list for {key!r}")
                results.append(self._leaf(rule, value))
            else:
                raise CheckError(f"pattern values are lists or objects, not {rule!r} (at {key!r})")
        return all(results)

    def _leaf(self, rules: list, value) -> bool:
        values = value if isinstance(value, list) else [value]
        if self.mutant == "array-needs-all" and isinstance(value, list):
            return all(any(self._one(r, v) for r in rules) for v in values)
        return any(self._one(r, v) for r in rules for v in values) or (
            not values and any(self._one(r, MISSING) for r in rules))

    def _one(self, rule, value) -> bool:
        # exists (and so "absent") looks at leaves only: an object is not a value here
        is_leaf = value is not MISSING and not isinstance(value, dict)
        if self.mutant == "exists-on-objects":
            is_leaf = value is not MISSING
        if not isinstance(rule, dict):
            return is_leaf and value == rule
        if len(rule) != 1:
            raise CheckError(f"one operator per match object: {rule!r}")
        (op, arg), = rule.items()
        if op == "exists":
            return is_leaf == bool(arg)
        if op == "anything-but" and value is MISSING and self.mutant == "anything-but-matches-missing":
            return True
        if not is_leaf:  # every other operator needs a value: anything-but does not match an absent field
            return False
        if op == "prefix":
            if self.mutant == "prefix-ignored":
                return True
            return isinstance(value, str) and self._affix(value, arg, str.startswith)
        if op == "suffix":
            return isinstance(value, str) and self._affix(value, arg, str.endswith)
        if op == "equals-ignore-case":
            return isinstance(value, str) and value.lower() == str(arg).lower()
        if op == "anything-but":
            if self.mutant == "anything-but-ignored":
                return True
            if isinstance(arg, dict):
                (sub, x), = arg.items()
                if sub == "prefix":
                    return isinstance(value, str) and not value.startswith(x)
                if sub == "suffix":
                    return isinstance(value, str) and not value.endswith(x)
                if sub == "equals-ignore-case":
                    xs = x if isinstance(x, list) else [x]
                    return isinstance(value, str) and value.lower() not in [str(i).lower() for i in xs]
                raise CheckError(f"anything-but {sub!r} is not implemented here")
            xs = arg if isinstance(arg, list) else [arg]
            return value not in xs
        if op == "numeric":
            try:
                number = float(value)
            except (TypeError, ValueError):
                return False
            ops = {"<": float.__lt__, "<=": float.__le__, "=": float.__eq__, ">": float.__gt__, ">=": float.__ge__}
            return all(ops[arg[i]](number, float(arg[i + 1])) for i in range(0, len(arg), 2))
        raise CheckError(f"operator {op!r} is not implemented by this evaluator")

    @staticmethod
    def _affix(value: str, arg, test) -> bool:
        if isinstance(arg, dict) and list(arg) == ["equals-ignore-case"]:
            return test(value.lower(), str(arg["equals-ignore-case"]).lower())
        return isinstance(arg, str) and test(value, arg)


# ---------------------------------------------------------------------------------------------
# Sample DynamoDB stream records, one or more per item family of the table layout
# ---------------------------------------------------------------------------------------------

UID = "2819c223-7f76-453a-919d-413861904646"
UID_DIGITS = "01890f4c-0000-7000-8000-000000000101"  # a UUIDv7-looking id starting with digits
GID = "e9e30dba-f08f-4109-8486-d5c6a331660a"
NOW = 1767225600


def _attrs(pk, sk, **extra):
    item = {"pk": {"S": pk}, "sk": {"S": sk}}
    for key, value in extra.items():
        item[key] = {"N": str(value)} if isinstance(value, int) else {"S": value}
    return item


def _record(event_name, pk, sk, **extra):
    item = _attrs(pk, sk, **extra)
    body = {"Keys": {"pk": {"S": pk}, "sk": {"S": sk}}, "StreamViewType": "NEW_AND_OLD_IMAGES",
            "SequenceNumber": "111", "SizeBytes": 100, "ApproximateCreationDateTime": NOW}
    if event_name in ("INSERT", "MODIFY"):
        body["NewImage"] = item
    if event_name in ("MODIFY", "REMOVE"):
        body["OldImage"] = item
    record = {"eventID": "1", "eventName": event_name, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
              "awsRegion": ic.REGION, "dynamodb": body,
              "eventSourceARN": f"arn:aws:dynamodb:{ic.REGION}:{ic.ACCOUNT}:table/scim-serverless/stream/x"}
    if event_name == "REMOVE" and "expires_at" in extra:  # a TTL deletion
        record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return record


def stream_samples() -> tuple[list[tuple[str, dict]], list[tuple[str, dict]]]:
    """(records the pipe must pass, records it must drop), each with a label."""
    doc = '{"id":"x"}'
    keep = []
    for event_name in ("INSERT", "MODIFY", "REMOVE"):
        keep.append((f"user document {event_name}", _record(event_name, "TENANT#acme", f"USER#{UID}", doc=doc, version=3)))
        keep.append((f"user document (digits first) {event_name}",
                     _record(event_name, "TENANT#acme", f"USER#{UID_DIGITS}", doc=doc, version=1)))
        keep.append((f"group document {event_name}", _record(event_name, "TENANT#acme", f"GROUP#{GID}", doc=doc, version=2,
                                                              gsi1pk="TENANT#acme#GROUPS")))
    for event_name in ("INSERT", "REMOVE"):
        keep.append((f"membership {event_name}", _record(event_name, f"TENANT#acme#GROUP#{GID}", f"MEMBER#{UID}",
                                                         doc=f'{{"value":"{UID}"}}', version=1,
                                                         gsi1pk=f"TENANT#acme#USER#{UID}", gsi1sk=f"GROUP#{GID}")))
    drop = []
    for event_name in ("INSERT", "MODIFY", "REMOVE"):
        for kind in ("USER", "GROUP"):
            drop.append((f"{kind.lower()} page checkpoint {event_name}",
                         _record(event_name, "TENANT#acme#CURSOR", f"{kind}#000000000101", doc='{"after":"x"}',
                                 version=1, deletes=0, expires_at=NOW + 3600)))
    families = [
        ("rate counter", "TENANT#acme#RATE", str(NOW), {"n_count": 3, "expires_at": NOW + 120}),
        ("audit entry", "TENANT#acme#AUDIT#2026-11-29", f"AT#{NOW}000#0190", {"doc": "{}", "expires_at": NOW + 86400}),
        ("tenant counter", "TENANT#acme", "COUNT", {"n_users": 3}),
        ("userName claim", "TENANT#acme", "USERNAME#alice@example.com", {"doc": UID}),
        ("user externalId claim", "TENANT#acme", "UEXTID#ext-1", {"doc": UID}),
        ("user externalId index", "TENANT#acme", f"UEXT#ext-1#{UID}", {"doc": UID}),
        ("extension uniqueness claim", "TENANT#acme", "XU#u#00ff#employeeNumber#42", {"doc": UID}),
        ("group displayName claim", "TENANT#acme", "GROUPNAME#admins", {"doc": GID}),
        ("group externalId claim", "TENANT#acme", "GEXTID#g-ext", {"doc": GID}),
        ("group externalId index", "TENANT#acme", f"GEXT#g-ext#{GID}", {"doc": GID}),
        ("tenant record", "CONF#acme", "TENANT", {"doc": "{}"}),
        ("key reference", "CONF#acme", "KEYREF#0123456789abcdef", {"doc": "{}"}),
        ("schema declarations", "CONF#acme", "SCHEMAS", {"doc": "{}"}),
        ("a CONF# item keyed like a user", "CONF#acme", f"USER#{UID}", {"doc": "{}"}),
        ("key record", "KEY#0123456789abcdef", "KEY", {"doc": "{}"}),
        ("key last-use stamp", "KEYUSE#0123456789abcdef", "USE", {"doc": "{}"}),
        ("OAuth client reference", "CONF#acme", "OAUTHREF#0123456789abcdef0123", {"doc": "{}"}),
        ("OAuth client record", "OAUTH#0123456789abcdef0123", "CLIENT", {"doc": "{}"}),
        ("OAuth client failure counter", "OAUTH#0123456789abcdef0123", f"FAIL#{NOW // 60}",
         {"n_count": 3, "expires_at": NOW + 120}),
        ("token signing keys (local store)", "SERVER", "TOKENKEYS", {"doc": "{}"}),
        ("tenant registry", "TENANTS", "acme", {"doc": "{}"}),
        ("cursor seal", "SERVER", "SEAL", {"doc": "{}"}),
        ("layout marker", "LAYOUT", "LAYOUT", {"doc": "{}"}),
    ]
    for label, pk, sk, extra in families:
        for event_name in ("INSERT", "REMOVE"):
            drop.append((f"{label} {event_name}", _record(event_name, pk, sk, **extra)))
    return keep, drop


# ---------------------------------------------------------------------------------------------
# The template under a parameter set
# ---------------------------------------------------------------------------------------------


class Resolver(ic.Resolver):
    """iam_check's resolver, knowing a few more physical names (Ref of a pipe is its Name, ...)
    and standing in for attributes it cannot know (a queue's name, a domain's regional host)."""

    NAME_PROPERTIES = {"AWS::Pipes::Pipe": "Name", "AWS::CloudWatch::Alarm": "AlarmName",
                       "AWS::Events::Rule": "Name", "AWS::CloudWatch::Dashboard": "DashboardName"}

    def ref(self, name: str):
        resource = self.resources.get(name)
        if resource is not None:
            prop = self.NAME_PROPERTIES.get(resource.get("Type"))
            if prop and prop in (resource.get("Properties") or {}):
                return self.resolve(resource["Properties"][prop])
        return super().ref(name)

    def getatt(self, logical_id: str, attribute):
        value = super().getatt(logical_id, attribute)
        if isinstance(value, ic.Unresolved) and logical_id in self.resources and isinstance(attribute, str):
            return f"{logical_id}.{attribute}-OFFLINE"
        return value


def _no_value(node) -> bool:
    return node == {"Ref": "AWS::NoValue"}


class Deployed:
    """The translated template under one parameter set, with its intrinsics resolvable."""

    def __init__(self, sam: dict, name: str, overrides: dict[str, str]):
        self.name = name
        self.sam = sam
        self.params = ic.parameter_values(sam)
        unknown = set(overrides) - set((sam.get("Parameters") or {}))
        if unknown:
            raise CheckError(f"parameter set {name}: unknown parameters {sorted(unknown)}")
        self.params.update(overrides)
        try:
            self.cfn = ic.translate(sam, self.params)
        except ic.Unevaluable as e:
            raise CheckError(f"parameter set {name}: {e}") from e
        self.res = self.cfn.get("Resources") or {}
        self.resolver = Resolver(self.cfn, self.params)
        # an alarm's metrics may depend on a condition (the REST or the HTTP API's metric names
        # and dimensions): its checks read the branch this parameter set deploys
        for r in self.res.values():
            if r.get("Type") == "AWS::CloudWatch::Alarm" and "Properties" in r:
                r["Properties"] = self.branch(r["Properties"])

    def branch(self, node):
        """The node with every Fn::If replaced by the branch this parameter set takes (and
        AWS::NoValue dropped); other intrinsics are left as they are."""
        if isinstance(node, list):
            return [x for x in map(self.branch, node) if not _no_value(x)]
        if not isinstance(node, dict):
            return node
        if list(node) == ["Fn::If"]:
            cond, yes, no = node["Fn::If"]
            return self.branch(yes if self.holds(cond) else no)
        return {k: v for k, v in ((k, self.branch(v)) for k, v in node.items()) if not _no_value(v)}

    def param(self, name: str) -> str:
        return str(self.params[name])

    def holds(self, condition: str, **overrides) -> bool:
        resolver = self.resolver if not overrides else Resolver(self.cfn, {**self.params, **overrides})
        value = resolver.condition(condition)
        if not isinstance(value, bool):
            raise CheckError(f"condition {condition} cannot be evaluated ({value!r})")
        return value

    def active(self, logical_id: str, **overrides) -> bool:
        condition = self.res[logical_id].get("Condition")
        return condition is None or self.holds(condition, **overrides)

    def of_type(self, rtype: str) -> list[tuple[str, dict]]:
        return [(k, r) for k, r in self.res.items() if r.get("Type") == rtype and self.active(k)]

    def props(self, logical_id: str) -> dict:
        return self.res[logical_id].get("Properties") or {}

    def value(self, node):
        return self.resolver.resolve(node)

    def only(self, rtype: str, where: str) -> tuple[str, dict]:
        found = self.of_type(rtype)
        if len(found) != 1:
            raise CheckError(f"[{self.name}] expected exactly one {rtype} ({where}), found {[k for k, _ in found]}")
        return found[0]

    def functions(self) -> list[str]:
        return [k for k, _ in self.of_type("AWS::Lambda::Function")]

    def alarms(self) -> list[tuple[str, dict]]:
        return self.of_type("AWS::CloudWatch::Alarm")


def ref_target(node) -> str | None:
    return node.get("Ref") if isinstance(node, dict) and list(node) == ["Ref"] else None


def getatt_target(node) -> tuple[str, str] | None:
    if isinstance(node, dict) and list(node) == ["Fn::GetAtt"]:
        value = node["Fn::GetAtt"]
        parts = value.split(".", 1) if isinstance(value, str) else value
        return tuple(parts)
    return None


def alarm_metrics(d: Deployed, props: dict) -> list[dict]:
    """Every metric an alarm reads: {namespace, name, dims (resolved), raw_dims, stat, id, period}."""
    out = []
    if "MetricName" in props:
        out.append({"namespace": props.get("Namespace"), "name": props.get("MetricName"),
                    "dims": {x["Name"]: d.value(x["Value"]) for x in props.get("Dimensions") or []},
                    "raw_dims": {x["Name"]: x["Value"] for x in props.get("Dimensions") or []},
                    "stat": props.get("ExtendedStatistic") or props.get("Statistic"), "id": None,
                    "period": props.get("Period")})
    for m in props.get("Metrics") or []:
        stat = m.get("MetricStat")
        if stat:
            metric = stat["Metric"]
            out.append({"namespace": metric.get("Namespace"), "name": metric.get("MetricName"),
                        "dims": {x["Name"]: d.value(x["Value"]) for x in metric.get("Dimensions") or []},
                        "raw_dims": {x["Name"]: x["Value"] for x in metric.get("Dimensions") or []},
                        "stat": stat.get("Stat"), "id": m.get("Id"), "period": stat.get("Period")})
    return out


def returned_expression(props: dict) -> str | None:
    for m in props.get("Metrics") or []:
        if m.get("ReturnData", True) and "Expression" in m:
            return m["Expression"]
    return None


def is_api_rate_alarm(d: Deployed, props: dict, error_metric: str) -> bool:
    """Metric math dividing the API's error metric by its request Count (a rate, not a count)."""
    metrics = {m["id"]: m for m in alarm_metrics(d, props) if m["id"]}
    expression = returned_expression(props) or ""
    errors = [i for i, m in metrics.items() if m["namespace"] == "AWS/ApiGateway" and m["name"] == api_metric(d, error_metric)]
    counts = [i for i, m in metrics.items() if m["namespace"] == "AWS/ApiGateway" and m["name"] == "Count"]
    if not errors or not counts:
        return False
    if not all(api_dimensions_ok(d, metrics[i]["dims"]) for i in errors + counts):
        return False
    return any(re.search(rf"\b{e}\b.*/\s*\(?\s*{c}\b", expression) for e in errors for c in counts)


def alarm_actions_ok(d: Deployed, props: dict) -> str | None:
    topic = d.param("AlarmTopicArn")
    actions = d.value(props.get("AlarmActions"))
    actions = [] if actions in (None, ic.NOVALUE) or actions == {} else actions
    if topic and actions != [topic]:
        return f"notifies {actions!r}, not the alarm topic"
    if not topic and actions:
        return f"notifies {actions!r} with no AlarmTopicArn"
    return None


# ---------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------


def rest_api(d: Deployed) -> tuple[str, dict]:
    return d.only("AWS::ApiGateway::RestApi", "the SCIM API")


def api_stage(d: Deployed) -> tuple[str, dict]:
    api_id, _ = rest_api(d)
    stages = [(k, r) for k, r in d.of_type("AWS::ApiGateway::Stage") if ref_target(r["Properties"].get("RestApiId")) == api_id]
    if len(stages) != 1:
        raise CheckError(f"[{d.name}] expected one stage of {api_id}, found {[k for k, _ in stages]}")
    return stages[0]


def disable_execute_api(d: Deployed):
    """The RestApi property, or the extension SAM writes into the definition (OpenAPI 3: under
    servers; Swagger 2: at the top)."""
    api_id, api = rest_api(d)
    props = api.get("Properties") or {}
    if "DisableExecuteApiEndpoint" in props:
        return d.value(props["DisableExecuteApiEndpoint"])
    body = props.get("Body") or {}
    places = [body] + [s for s in body.get("servers") or [] if isinstance(s, dict)]
    values = [d.value(p["x-amazon-apigateway-endpoint-configuration"].get("disableExecuteApiEndpoint", False))
              for p in places if isinstance(p.get("x-amazon-apigateway-endpoint-configuration"), dict)]
    return values[0] if len(values) == 1 else (False if not values else values)


def security_schemes(api: dict) -> dict:
    body = api["Properties"].get("Body") or {}
    return {**(body.get("securityDefinitions") or {}), **((body.get("components") or {}).get("securitySchemes") or {})}


def output(d: Deployed, name: str):
    out = (d.cfn.get("Outputs") or {}).get(name)
    if out is None:
        raise CheckError(f"[{d.name}] no output {name}")
    if "Condition" in out and not d.holds(out["Condition"]):
        return None
    return d.value(out["Value"])


def check_custom_domain(ds: dict[str, Deployed]) -> list[str]:
    """With DomainName: a regional TLS 1.2 custom domain, the stage mapped at the root, a Route 53
    alias record, the execute-api endpoint disabled and TenantUrl https://<domain>/scim/v2; without
    it: none of those, and TenantUrl the execute-api URL with the stage."""
    f = []
    d = ds["domain"]
    dom_id, dom = d.only("AWS::ApiGateway::DomainName", "the custom domain")
    p = dom["Properties"]
    if d.value(p.get("DomainName")) != DOMAIN:
        f.append(f"custom domain name is {d.value(p.get('DomainName'))!r}, not the DomainName parameter")
    if d.value(p.get("RegionalCertificateArn")) != CERTIFICATE:
        f.append("custom domain does not use CertificateArn as its regional certificate")
    if (p.get("EndpointConfiguration") or {}).get("Types") != ["REGIONAL"]:
        f.append(f"custom domain endpoint is {p.get('EndpointConfiguration')!r}, not REGIONAL")
    if p.get("SecurityPolicy") != "TLS_1_2":
        f.append(f"custom domain security policy is {p.get('SecurityPolicy')!r}, not TLS_1_2")
    api_id, _ = rest_api(d)
    stage_id, _ = api_stage(d)
    mappings = [(k, r) for k, r in d.of_type("AWS::ApiGateway::BasePathMapping")
                if ref_target(r["Properties"].get("DomainName")) == dom_id]
    if len(mappings) != 1:
        f.append(f"expected one base-path mapping on the custom domain, found {[k for k, _ in mappings]}")
    else:
        mp = mappings[0][1]["Properties"]
        if ref_target(mp.get("RestApiId")) != api_id or ref_target(mp.get("Stage")) != stage_id:
            f.append(f"base-path mapping does not map {api_id} / {stage_id}: {mp!r}")
        if mp.get("BasePath") not in (None, "", "(none)"):
            f.append(f"base-path mapping has BasePath {mp.get('BasePath')!r}: the Tenant URL would need it")
    records = [(k, r) for k, r in d.of_type("AWS::Route53::RecordSet")
               if getatt_target((r["Properties"].get("AliasTarget") or {}).get("DNSName")) == (dom_id, "RegionalDomainName")]
    if len(records) != 1:
        f.append(f"expected one Route 53 alias record to the custom domain, found {[k for k, _ in records]}")
    else:
        rid, rec = records[0]
        rp = rec["Properties"]
        if d.value(rp.get("HostedZoneId")) != ZONE or d.value(rp.get("Name")) != DOMAIN or rp.get("Type") != "A":
            f.append(f"record {rid} is not an A record for DomainName in HostedZoneId: {rp!r}")
        if getatt_target(rp["AliasTarget"].get("HostedZoneId")) != (dom_id, "RegionalHostedZoneId"):
            f.append(f"record {rid} alias hosted zone is not the custom domain's regional zone")
        if d.active(rid, HostedZoneId=""):
            f.append(f"record {rid} would be created without HostedZoneId")
    if disable_execute_api(d) is not True:
        f.append(f"with a domain, DisableExecuteApiEndpoint is {disable_execute_api(d)!r}, not true")
    if output(d, "TenantUrl") != f"https://{DOMAIN}{ROUTE_SUFFIX}":
        f.append(f"with a domain, TenantUrl is {output(d, 'TenantUrl')!r}")
    p0 = ds["plain"]
    for rtype in ("AWS::ApiGateway::DomainName", "AWS::ApiGateway::BasePathMapping", "AWS::Route53::RecordSet"):
        if p0.of_type(rtype):
            f.append(f"without a domain, {rtype} {[k for k, _ in p0.of_type(rtype)]} is still created")
    if disable_execute_api(p0) not in (False, None):
        f.append(f"without a domain, DisableExecuteApiEndpoint is {disable_execute_api(p0)!r}")
    api = p0.resolver.ref(rest_api(p0)[0])
    want = f"https://{api}.execute-api.{ic.REGION}.amazonaws.com/{p0.param('StageName')}{ROUTE_SUFFIX}"
    if output(p0, "TenantUrl") != want:
        f.append(f"without a domain, TenantUrl is {output(p0, 'TenantUrl')!r}, not {want!r}")
    return f


def _alias_of(d: Deployed, function: str) -> list[tuple[str, dict]]:
    return [(k, r) for k, r in d.of_type("AWS::Lambda::Alias") if ref_target(r["Properties"].get("FunctionName")) == function]


def _error_alarm_for(d: Deployed, function: str, alarm_id: str) -> bool:
    """The alarm reads this function's Lambda Errors."""
    if alarm_id not in d.res or d.res[alarm_id].get("Type") != "AWS::CloudWatch::Alarm":
        return False
    metrics = alarm_metrics(d, d.props(alarm_id))
    return any(m["namespace"] == "AWS/Lambda" and m["name"] == "Errors"
               and ref_target(m["raw_dims"].get("FunctionName")) == function for m in metrics)


def check_aliases_and_deployments(ds: dict[str, Deployed]) -> list[str]:
    """Every function: an alias "live" shifted by a CodeDeploy deployment group (DeploymentType)
    that rolls back on an API 5XX *rate* alarm and on an alarm reading that function's errors."""
    f = []
    for name, d in ds.items():
        want_config = f"CodeDeployDefault.Lambda{d.param('DeploymentType')}"
        functions = d.functions()
        if len(functions) < 22:
            f.append(f"[{name}] only {len(functions)} functions")
        for fn in functions:
            if fn == HOOK_FUNCTION:
                continue  # CodeDeploy invokes it by name; it cannot be shifted by itself
            aliases = _alias_of(d, fn)
            if len(aliases) != 1 or aliases[0][1]["Properties"].get("Name") != "live":
                f.append(f"[{name}] {fn} has no single alias 'live' ({[k for k, _ in aliases]})")
                continue
            alias_id, alias = aliases[0]
            update = (alias.get("UpdatePolicy") or {}).get("CodeDeployLambdaAliasUpdate") or {}
            group_id = ref_target(update.get("DeploymentGroupName"))
            if not group_id or group_id not in d.res or d.res[group_id]["Type"] != "AWS::CodeDeploy::DeploymentGroup":
                f.append(f"[{name}] {alias_id} is not shifted by a CodeDeploy deployment group")
                continue
            gp = d.props(group_id)
            if d.value(gp.get("DeploymentConfigName")) != want_config:
                f.append(f"[{name}] {group_id} uses {d.value(gp.get('DeploymentConfigName'))!r}, not {want_config}")
            rollback = gp.get("AutoRollbackConfiguration") or {}
            if rollback.get("Enabled") is not True or "DEPLOYMENT_STOP_ON_ALARM" not in (rollback.get("Events") or []):
                f.append(f"[{name}] {group_id} does not roll back on alarm")
            config = gp.get("AlarmConfiguration") or {}
            named = [ref_target(a.get("Name")) for a in config.get("Alarms") or []]
            if config.get("Enabled") is not True:
                f.append(f"[{name}] {group_id} alarm configuration is not enabled")
            if not any(a in d.res and is_api_rate_alarm(d, d.props(a), "5XXError") for a in named if a):
                f.append(f"[{name}] {group_id} names no API 5XX-rate alarm (alarms: {named})")
            if fn == api_authorizer_function(d):
                if "AuthorizerFailuresAlarm" not in named:
                    f.append(f"[{name}] {group_id} (the authorizer) does not name AuthorizerFailuresAlarm")
            elif not any(a and _error_alarm_for(d, fn, a) for a in named):
                f.append(f"[{name}] {group_id} names no alarm on {fn}'s Lambda Errors (alarms: {named})")
    return f


# CodeDeploy takes at most 10 alarms per deployment group (AlarmConfiguration.Alarms), and a metric
# math alarm reads at most 10 metrics (a hard CloudWatch limit).
CODEDEPLOY_MAX_ALARMS = 10
METRIC_MATH_MAX_METRICS = 10

# What an HTTP function publishes per 5XX it answers (embedded metric format, dimension Function =
# its function name): a SCIM 500/503 is a response, not a Lambda error.
SERVER_ERRORS = ("ScimServerless", "ServerErrors")
# The pipe's stages its enrichment function can fail without a Lambda error: the invocation itself
# (throttled, refused, an answer Pipes cannot use) and the bus refusing what the function returned.
ENRICHMENT_PIPE_METRICS = ("EnrichmentStageFailed", "TargetStageFailed")


def rollback_alarms(d: Deployed, function: str) -> list[str] | None:
    """The alarms (logical ids) of the CodeDeploy group shifting the function's alias; None when no
    deployment group shifts it (that function has no DeploymentPreference)."""
    for _, alias in _alias_of(d, function):
        update = (alias.get("UpdatePolicy") or {}).get("CodeDeployLambdaAliasUpdate") or {}
        group_id = ref_target(update.get("DeploymentGroupName"))
        if group_id in d.res and d.res[group_id].get("Type") == "AWS::CodeDeploy::DeploymentGroup":
            config = d.props(group_id).get("AlarmConfiguration") or {}
            return [ref_target(a.get("Name")) or str(a.get("Name")) for a in config.get("Alarms") or []]
    return None


def _metric_function(m: dict):
    """The function a metric is of: Lambda's FunctionName, or the service's own Function dimension."""
    return m["dims"].get("FunctionName", m["dims"].get("Function"))


def server_error_alarm_problem(d: Deployed, alarm_id: str, function: str) -> str | None:
    """Why the alarm is not the function's 5XX share (None when it is): metric math dividing that
    function's ScimServerless ServerErrors (Function = its name) by its own AWS/Lambda Invocations
    (FunctionName = its name), no metric of anything else, one-minute Sum periods, 1 of 1
    datapoints, missing data not breaching, a positive threshold it fires at or above."""
    if d.res.get(alarm_id, {}).get("Type") != "AWS::CloudWatch::Alarm" or not d.active(alarm_id):
        return f"{alarm_id} is not an alarm of the stack"
    props = d.props(alarm_id)
    name = d.resolver.ref(function)
    metrics = alarm_metrics(d, props)
    errors = [m for m in metrics if (m["namespace"], m["name"]) == SERVER_ERRORS]
    calls = [m for m in metrics if (m["namespace"], m["name"]) == ("AWS/Lambda", "Invocations")]
    if not errors:
        return f"{alarm_id} reads no {'/'.join(SERVER_ERRORS)}"
    if any(m["dims"] != {"Function": name} for m in errors):
        return f"{alarm_id} reads ServerErrors of {[m['dims'] for m in errors]}, not of {function} ({name})"
    if not calls or any(m["dims"] != {"FunctionName": name} for m in calls):
        return f"{alarm_id} does not divide by {function}'s own Invocations ({[m['dims'] for m in calls]})"
    strangers = [f"{m['namespace']} {m['name']} {m['dims']}" for m in metrics if _metric_function(m) != name]
    if strangers:
        return f"{alarm_id} also reads {strangers}: not {function}'s metrics only"
    if len(metrics) > METRIC_MATH_MAX_METRICS:
        return f"{alarm_id} reads {len(metrics)} metrics, more than metric math allows ({METRIC_MATH_MAX_METRICS})"
    expression = returned_expression(props) or ""
    if not any(e["id"] and c["id"] and re.search(rf"\b{e['id']}\b.*/.*\b{c['id']}\b", expression)
               for e in errors for c in calls):
        return f"{alarm_id} is not a share of invocations (returns {expression!r})"
    if any(m["stat"] != "Sum" or m["period"] != 60 for m in errors + calls):
        return f"{alarm_id} does not read one-minute sums: {[(m['name'], m['stat'], m['period']) for m in errors + calls]}"
    threshold = d.value(props.get("Threshold"))
    shape = (props.get("EvaluationPeriods"), props.get("DatapointsToAlarm", 1), props.get("TreatMissingData"),
             props.get("ComparisonOperator"))
    if shape[:3] != (1, 1, "notBreaching") or shape[3] not in ("GreaterThanOrEqualToThreshold", "GreaterThanThreshold"):
        return f"{alarm_id} is not 1 of 1 datapoints at or above a threshold, missing data not breaching: {shape}"
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or threshold <= 0:
        return f"{alarm_id} threshold is {threshold!r}, not a positive share"
    return None


def enriched_pipes(d: Deployed, function: str) -> list[str]:
    """Names of the pipes whose enrichment step invokes the function (through its alias)."""
    out = []
    for _, pipe in d.of_type("AWS::Pipes::Pipe"):
        target = ref_target(pipe["Properties"].get("Enrichment")) or (getatt_target(pipe["Properties"].get("Enrichment")) or (None,))[0]
        if d.res.get(target, {}).get("Type") == "AWS::Lambda::Alias":
            target = ref_target(d.props(target).get("FunctionName"))
        if target == function:
            out.append(d.value(pipe["Properties"].get("Name")))
    return out


def check_rollback_beyond_lambda_errors(ds: dict[str, Deployed]) -> list[str]:
    """Every function with a DeploymentPreference rolls back on an alarm built from its own metrics
    that sees the failures Lambda does not count as errors: a function API Gateway invokes, on the
    share of its invocations it answered with a 5XX (its own ServerErrors over its own Invocations,
    server_error_alarm_problem); the pipe's enrichment function, on that pipe's EnrichmentStageFailed
    and TargetStageFailed (one-minute periods); the authorizer, which answers only through Lambda's
    result, on its own Errors less its own DeniedKeys (a refused key is a Lambda error, not a
    failure). Any other function has no such rule and fails. No group names more than CodeDeploy's
    10 alarms."""
    f = []
    for name, d in ds.items():
        http = {fn for _, _, _, fn in api_methods(d) if fn}
        authorizer = api_authorizer_function(d)
        for fn in d.functions():
            named = rollback_alarms(d, fn)
            if named is None:
                continue  # no DeploymentPreference: check_aliases_and_deployments requires one
            if len(named) > CODEDEPLOY_MAX_ALARMS:
                f.append(f"[{name}] {fn}'s deployment group names {len(named)} alarms, more than CodeDeploy's "
                         f"{CODEDEPLOY_MAX_ALARMS}")
            if fn in http:
                problems = {a: server_error_alarm_problem(d, a, fn) for a in named}
                if any(p is None for p in problems.values()):
                    continue
                elsewhere = [a for a, _ in d.alarms() if a not in named and server_error_alarm_problem(d, a, fn) is None]
                readers = [p for a, p in problems.items() if any((m["namespace"], m["name"]) == SERVER_ERRORS
                                                                 for m in alarm_metrics(d, d.props(a)))] if named else []
                if elsewhere:
                    f.append(f"[{name}] {fn} answers HTTP, and {elsewhere} ({'is' if len(elsewhere) == 1 else 'are'} its "
                             f"5XX share) {'is' if len(elsewhere) == 1 else 'are'} not among its rollback alarms {named}: "
                             "a canary answering 500s would be promoted")
                elif readers:
                    f.append(f"[{name}] {fn} answers HTTP, but no rollback alarm is its own 5XX share: {'; '.join(readers)}")
                else:
                    f.append(f"[{name}] {fn} answers HTTP, and none of its rollback alarms {named} reads its "
                             f"{'/'.join(SERVER_ERRORS)} over its Invocations")
            elif fn == authorizer:
                own = d.resolver.ref(fn)
                if not any(any(m["namespace"] == "AWS/Lambda" and m["name"] == "Errors" and m["dims"].get("FunctionName") == own for m in ms)
                           and any(m["namespace"] == "ScimServerless" and m["name"] == "DeniedKeys" and m["dims"].get("Function") == own for m in ms)
                           for ms in (alarm_metrics(d, d.props(a)) for a in named if a in d.res)):
                    f.append(f"[{name}] {fn} (the authorizer) names no rollback alarm on its own Errors less its own DeniedKeys")
            elif enriched_pipes(d, fn):
                for pipe in enriched_pipes(d, fn):
                    for metric in ENRICHMENT_PIPE_METRICS:
                        if not any(m["namespace"] == "AWS/EventBridge/Pipes" and m["name"] == metric
                                   and m["dims"].get("PipeName") == pipe and m["period"] == 60
                                   for a in named if a in d.res for m in alarm_metrics(d, d.props(a))):
                            f.append(f"[{name}] {fn} enriches the pipe {pipe!r}, and none of its rollback alarms {named} "
                                     f"reads that pipe's {metric} over one minute (a failure Lambda does not count)")
            else:
                f.append(f"[{name}] {fn} has a deployment group but neither answers HTTP, authorizes nor enriches a pipe: "
                         "nothing says which alarm sees its failures beyond Lambda Errors")
    return f


def latency_anomaly_problem(d: Deployed, alarm_id: str, function: str) -> str | None:
    """Why the alarm is not "the function slower than its own normal" (None when it is): an
    anomaly-detection alarm whose threshold is ANOMALY_DETECTION_BAND of that function's own p99
    Duration, firing above the band."""
    props = d.props(alarm_id)
    metrics = {m.get("Id"): m for m in props.get("Metrics") or []}
    band = metrics.get(props.get("ThresholdMetricId"))
    if not band:
        return f"{alarm_id} has no threshold band"
    match = re.fullmatch(r"ANOMALY_DETECTION_BAND\((\w+),\s*[\d.]+\)", str(d.value(band.get("Expression"))))
    if not match or match.group(1) not in metrics:
        return f"{alarm_id}'s threshold is not an anomaly band"
    own = d.resolver.ref(function)
    watched = [m for m in alarm_metrics(d, props) if m["id"] == match.group(1)]
    if not watched or (watched[0]["namespace"], watched[0]["name"], watched[0]["stat"]) != ("AWS/Lambda", "Duration", "p99") \
            or watched[0]["dims"].get("FunctionName") != own:
        return f"{alarm_id}'s band is not around {function}'s own p99 Duration"
    if props.get("ComparisonOperator") != "GreaterThanUpperThreshold":
        return f"{alarm_id} does not fire above the band"
    return None


def check_latency_rollback(ds: dict[str, Deployed]) -> list[str]:
    """Every function on the request path (the API's routes and its authorizer) rolls back when its
    p99 duration leaves the band learned from its own history (latency_anomaly_problem)."""
    f = []
    for name, d in ds.items():
        for fn in route_functions(d):
            named = [a for a in rollback_alarms(d, fn) or [] if a in d.res]
            if not any(latency_anomaly_problem(d, a, fn) is None for a in named):
                f.append(f"[{name}] {fn} names no rollback alarm on its own p99 duration against its own normal "
                         f"({'; '.join(latency_anomaly_problem(d, a, fn) for a in named) or 'no alarms'})")
    return f


def api_authorizer_function(d: Deployed) -> str | None:
    """The function behind the API's Lambda authorizer (through its alias)."""
    _, api = rest_api(d)
    for scheme in security_schemes(api).values():
        auth = scheme.get("x-amazon-apigateway-authorizer") or {}
        uri = auth.get("authorizerUri")
        target = _lambda_of_uri(uri)
        if target:
            alias_or_fn = target
            if d.res.get(alias_or_fn, {}).get("Type") == "AWS::Lambda::Alias":
                return ref_target(d.props(alias_or_fn).get("FunctionName"))
            return alias_or_fn
    return None


def _lambda_of_uri(uri) -> str | None:
    """Logical id of what an integration/authorizer URI invokes (alias or function)."""
    if not isinstance(uri, dict) or "Fn::Sub" not in uri:
        return None
    sub = uri["Fn::Sub"]
    text, variables = (sub[0], sub[1] or {}) if isinstance(sub, list) else (sub, {})
    m = re.search(r"/functions/\$\{([^}]+)\}/invocations", text)
    if not m:
        return None
    inner = m.group(1)
    if inner in variables:
        node = variables[inner]
        return ref_target(node) or (getatt_target(node) or (None,))[0]
    return inner.split(".")[0]


def check_api_invokes_alias(ds: dict[str, Deployed]) -> list[str]:
    """API Gateway integrations, the authorizer and the pipe's enrichment invoke the alias ARN, and
    API Gateway's invoke permissions are granted on the alias."""
    f = []
    d = ds["plain"]
    _, api = rest_api(d)
    integrations = 0
    for path, methods in ((api["Properties"].get("Body") or {}).get("paths") or {}).items():
        for method, op in methods.items():
            integration = op.get("x-amazon-apigateway-integration") if isinstance(op, dict) else None
            if not integration:
                continue
            integrations += 1
            target = _lambda_of_uri(integration.get("uri"))
            if d.res.get(target, {}).get("Type") != "AWS::Lambda::Alias":
                f.append(f"{method.upper()} {path} invokes {target!r}, not a function alias")
    if integrations < 20:
        f.append(f"only {integrations} API integrations found")
    authorizer = None
    for scheme in security_schemes(api).values():
        uri = (scheme.get("x-amazon-apigateway-authorizer") or {}).get("authorizerUri")
        if uri:
            authorizer = _lambda_of_uri(uri)
    if d.res.get(authorizer, {}).get("Type") != "AWS::Lambda::Alias":
        f.append(f"the API authorizer invokes {authorizer!r}, not a function alias")
    for pid, perm in d.of_type("AWS::Lambda::Permission"):
        pp = perm["Properties"]
        if pp.get("Principal") == "apigateway.amazonaws.com":
            target = ref_target(pp.get("FunctionName"))
            if d.res.get(target, {}).get("Type") != "AWS::Lambda::Alias":
                f.append(f"{pid} lets API Gateway invoke {pp.get('FunctionName')!r}, not an alias")
    _, pipe = d.only("AWS::Pipes::Pipe", "the events pipe")
    enrichment = ref_target(pipe["Properties"].get("Enrichment"))
    if d.res.get(enrichment, {}).get("Type") != "AWS::Lambda::Alias":
        f.append(f"the pipe's enrichment is {pipe['Properties'].get('Enrichment')!r}, not a function alias")
    return f


def check_event_archive(ds: dict[str, Deployed]) -> list[str]:
    """An archive of the pipe's target bus, kept EventArchiveRetentionDays."""
    f = []
    for name in ("plain", "backup"):
        d = ds[name]
        _, pipe = d.only("AWS::Pipes::Pipe", "the events pipe")
        bus = getatt_target(pipe["Properties"].get("Target"))
        archives = [(k, r) for k, r in d.of_type("AWS::Events::Archive")
                    if getatt_target(r["Properties"].get("SourceArn")) == (bus[0] if bus else None, "Arn")]
        if len(archives) != 1:
            f.append(f"[{name}] expected one archive of the bus {bus}, found {[k for k, _ in archives]}")
            continue
        days = d.value(archives[0][1]["Properties"].get("RetentionDays"))
        if str(days) != d.param("EventArchiveRetentionDays"):
            f.append(f"[{name}] archive keeps events {days!r} days, not EventArchiveRetentionDays")
    return f


REPLAY_DAYS = 14  # the least time a failed or past event can still be read and replayed


def check_events_survive(ds: dict[str, Deployed]) -> list[str]:
    """Events that survive a failure: a failing batch is bisected down to the record at fault; a
    batch that still fails goes to the dead-letter queue and is logged with its records
    (IncludeExecutionData) into a log group kept at least REPLAY_DAYS whatever its parameter
    says; the archive keeps events at least that long by default; the envelope's time is the
    change's (the enrichment's detail.time), not the delivery's."""
    f = []
    d = ds["plain"]
    _, pipe = d.only("AWS::Pipes::Pipe", "the events pipe")
    props = pipe["Properties"]
    stream = (props.get("SourceParameters") or {}).get("DynamoDBStreamParameters") or {}
    if stream.get("OnPartialBatchItemFailure") != "AUTOMATIC_BISECT":
        f.append("a failing batch is retried whole (no OnPartialBatchItemFailure: AUTOMATIC_BISECT)")
    if not (stream.get("DeadLetterConfig") or {}).get("Arn"):
        f.append("the pipe has no dead-letter queue")
    bus = (props.get("TargetParameters") or {}).get("EventBridgeEventBusParameters") or {}
    if bus.get("Time") != "$.detail.time":
        f.append(f"the event's time is {bus.get('Time')!r}, not the change's ($.detail.time)")
    logs = props.get("LogConfiguration") or {}
    if "ALL" not in (logs.get("IncludeExecutionData") or []) or logs.get("Level") not in ("ERROR", "INFO", "TRACE"):
        f.append("failed executions are not logged with their records (Level ERROR or finer, IncludeExecutionData ALL)")
    group = getatt_target((logs.get("CloudwatchLogsLogDestination") or {}).get("LogGroupArn"))
    retention = d.props(group[0]).get("RetentionInDays") if group and group[0] in d.res else None
    param = ref_target(retention)
    allowed = (d.sam["Parameters"].get(param) or {}).get("AllowedValues") if param else [retention]
    if not allowed or min(int(v) for v in allowed) < REPLAY_DAYS:
        f.append(f"the pipe's log group may keep failed records under {REPLAY_DAYS} days ({allowed!r})")
    archive_days = int(d.param("EventArchiveRetentionDays"))
    if 0 < archive_days < REPLAY_DAYS:
        f.append(f"the archive keeps events {archive_days} days by default, under {REPLAY_DAYS}")
    return f


PIPE_METRICS = ["ExecutionFailed", "ExecutionThrottled", "EnrichmentStageFailed", "TargetStageFailed"]


def check_pipe_monitoring(ds: dict[str, Deployed]) -> list[str]:
    """Alarms on the pipe's failure and throttling metrics, and a default-bus rule on its state
    changes that notifies the alarm topic when there is one."""
    f = []
    for name in ("plain", "domain"):
        d = ds[name]
        pipe_id, pipe = d.only("AWS::Pipes::Pipe", "the events pipe")
        pipe_name = d.value(pipe["Properties"].get("Name"))
        pipe_arn = d.resolver.getatt(pipe_id, "Arn")
        for metric in PIPE_METRICS:
            hits = [aid for aid, a in d.alarms() for m in alarm_metrics(d, a["Properties"])
                    if m["namespace"] == "AWS/EventBridge/Pipes" and m["name"] == metric and m["dims"].get("PipeName") == pipe_name]
            if not hits:
                f.append(f"[{name}] no alarm reads {metric} of the pipe {pipe_name!r}")
            for aid in hits:
                problem = alarm_actions_ok(d, d.props(aid))
                if problem:
                    f.append(f"[{name}] {aid} {problem}")
        ev = EventPattern()
        positives = [
            {"source": "aws.pipes", "detail-type": "EventBridge Pipe State Change", "resources": [pipe_arn],
             "detail": {"name": pipe_name, "currentState": "STOPPED"}},
            {"source": "aws.pipes", "detail-type": "AWS API Call via CloudTrail",
             "detail": {"eventSource": "pipes.amazonaws.com", "eventName": "StopPipe", "requestParameters": {"name": pipe_name}}},
            {"source": "aws.pipes", "detail-type": "AWS API Call via CloudTrail",
             "detail": {"eventSource": "pipes.amazonaws.com", "eventName": "UpdatePipe",
                        "requestParameters": {"name": pipe_name, "desiredState": "STOPPED"}}},
        ]
        negatives = [
            {"source": "aws.pipes", "detail-type": "EventBridge Pipe State Change",
             "resources": [pipe_arn.replace(pipe_id, "AnotherPipe")], "detail": {"name": "another"}},
            {"source": "aws.pipes", "detail-type": "AWS API Call via CloudTrail",
             "detail": {"eventSource": "pipes.amazonaws.com", "eventName": "StopPipe", "requestParameters": {"name": "another"}}},
            {"source": "aws.pipes", "detail-type": "AWS API Call via CloudTrail",
             "detail": {"eventSource": "pipes.amazonaws.com", "eventName": "DescribePipe", "requestParameters": {"name": pipe_name}}},
            {"source": "scim-serverless", "detail-type": "user.created", "resources": [pipe_arn], "detail": {}},
        ]
        rules = []
        for rid, rule in d.of_type("AWS::Events::Rule"):
            rp = rule["Properties"]
            if d.value(rp.get("EventBusName", "default")) not in ("default", None):
                continue
            pattern = d.value(rp.get("EventPattern"))
            if isinstance(pattern, str):
                pattern = json.loads(pattern)
            if not isinstance(pattern, dict):
                continue
            try:
                if all(ev.matches(pattern, e) for e in positives):
                    rules.append((rid, rp, pattern))
            except CheckError as e:
                f.append(f"[{name}] {rid}: {e}")
        if len(rules) != 1:
            f.append(f"[{name}] expected one default-bus rule matching this pipe's state changes, found {[r for r, _, _ in rules]}")
            continue
        rid, rp, pattern = rules[0]
        for e in negatives:
            if ev.matches(pattern, e):
                f.append(f"[{name}] {rid} also matches an unrelated event: {json.dumps(e)[:120]}")
        targets = d.value(rp.get("Targets"))
        arns = [t.get("Arn") for t in targets] if isinstance(targets, list) else []
        topic = d.param("AlarmTopicArn")
        if topic and arns != [topic]:
            f.append(f"[{name}] {rid} targets {arns}, not the alarm topic")
        if not topic and arns:
            f.append(f"[{name}] {rid} targets {arns} with no alarm topic")
    return f


def pipe_filters(d: Deployed) -> list[dict]:
    _, pipe = d.only("AWS::Pipes::Pipe", "the events pipe")
    criteria = ((pipe["Properties"].get("SourceParameters") or {}).get("FilterCriteria") or {}).get("Filters") or []
    out = []
    for i, flt in enumerate(criteria):
        text = d.value(flt.get("Pattern"))
        if not isinstance(text, str) or len(text) > 4096:
            raise CheckError(f"filter {i}: the pattern must be a string of at most 4096 characters")
        out.append(json.loads(text))
    if not out or len(out) > 5:
        raise CheckError(f"a pipe takes 1 to 5 filters, found {len(out)}")
    return out


def check_pipe_filter(ds: dict[str, Deployed]) -> list[str]:
    """The pipe's filter passes user and group documents and memberships, and drops page
    checkpoints, counters, the rate counter, audit entries, claims, configuration, keys and the
    server items; it uses only operators EventBridge Pipes support."""
    f = []
    d = ds["plain"]
    try:
        patterns = pipe_filters(d)
    except (CheckError, json.JSONDecodeError) as e:
        return [f"pipe filter: {e}"]
    ev = EventPattern()
    for i, pattern in enumerate(patterns):
        unsupported = ev.operators(pattern) - PIPE_OPERATORS
        if unsupported:
            f.append(f"filter {i} uses {sorted(unsupported)}, which EventBridge Pipes do not support")
    keep, drop = stream_samples()
    for label, record in keep:
        if not any(ev.matches(p, record) for p in patterns):
            f.append(f"the pipe drops a {label}")
    for label, record in drop:
        if any(ev.matches(p, record) for p in patterns):
            f.append(f"the pipe passes a {label}")
    return f


def _dashboard_metrics(body: dict) -> list[tuple[str, str, dict, str]]:
    out = []
    for widget in body.get("widgets") or []:
        props = widget.get("properties") or {}
        for row in props.get("metrics") or []:
            names = [x for x in row if isinstance(x, str)]
            opts = next((x for x in row if isinstance(x, dict)), {})
            if len(names) >= 2:
                dims = dict(zip(names[2::2], names[3::2]))
                out.append((names[0], names[1], dims, opts.get("stat") or props.get("stat")))
    return out


def check_dashboard(ds: dict[str, Deployed]) -> list[str]:
    """One dashboard with the API rates and latency, every route function's p99, the table's
    throttles and system errors, concurrency, refused keys, throttled OAuth clients, the pipe, and
    every alarm."""
    return [problem if name == "plain" else f"[{name}] {problem}" for name, d in ds.items() for problem in _dashboard_problems(d)]


def _dashboard_problems(d: Deployed) -> list[str]:
    f = []
    try:
        did, dash = d.only("AWS::CloudWatch::Dashboard", "the dashboard")
    except CheckError as e:
        return [str(e)]
    text = d.value(dash["Properties"].get("DashboardBody"))
    try:
        body = json.loads(text)
    except (TypeError, json.JSONDecodeError) as e:
        return [f"{did} body is not JSON after substitution: {e}"]
    metrics = _dashboard_metrics(body)
    seen = {(ns, m) for ns, m, _, _ in metrics}
    for need in [("AWS/ApiGateway", "Count"), ("AWS/ApiGateway", api_metric(d, "5XXError")), ("AWS/ApiGateway", api_metric(d, "4XXError")),
                 ("AWS/ApiGateway", "Latency"), ("AWS/DynamoDB", "ThrottledRequests"), ("AWS/DynamoDB", "SystemErrors"),
                 ("AWS/Lambda", "ConcurrentExecutions"), ("ScimServerless", "DeniedKeys"),
                 ("ScimServerless", "ThrottledClients"),
                 ("AWS/EventBridge/Pipes", "ExecutionFailed"), ("AWS/SQS", "ApproximateNumberOfMessagesVisible")]:
        if need not in seen:
            f.append(f"{did} shows no {need[0]} {need[1]}")
    for fn in route_functions(d):
        name = d.resolver.ref(fn)
        if not any(ns == "AWS/Lambda" and m == "Duration" and dims.get("FunctionName") == name and stat == "p99"
                   for ns, m, dims, stat in metrics):
            f.append(f"{did} shows no p99 Duration of {fn}")
    shown = {a for w in body.get("widgets") or [] if w.get("type") == "alarm" for a in w["properties"].get("alarms") or []}
    for aid, _ in d.alarms():
        if d.resolver.getatt(aid, "Arn") not in shown:
            f.append(f"{did} alarm widget lacks {aid}")
    return f


def route_functions(d: Deployed) -> list[str]:
    """Functions on the request path: those with API events, and the authorizer."""
    out = set()
    for _, perm in d.of_type("AWS::Lambda::Permission"):
        pp = perm["Properties"]
        if pp.get("Principal") == "apigateway.amazonaws.com":
            target = ref_target(pp.get("FunctionName"))
            if d.res.get(target, {}).get("Type") == "AWS::Lambda::Alias":
                target = ref_target(d.props(target).get("FunctionName"))
            out.add(target)
    return sorted(x for x in out if x)


def check_logging(ds: dict[str, Deployed]) -> list[str]:
    """Every function logs JSON, platform lines at SystemLogLevel, into its own log group (the
    application level: check_application_log_filter)."""
    f = []
    for name in ("plain", "domain"):
        d = ds[name]
        for fn in d.functions():
            props = d.props(fn)
            lc = props.get("LoggingConfig") or {}
            if lc.get("LogFormat") != "JSON":
                f.append(f"[{name}] {fn} LogFormat is {lc.get('LogFormat')!r}, not JSON")
            if d.value(lc.get("SystemLogLevel")) != d.param("SystemLogLevel"):
                f.append(f"[{name}] {fn} SystemLogLevel is {d.value(lc.get('SystemLogLevel'))!r}")
            group = ref_target(lc.get("LogGroup"))
            if d.res.get(group, {}).get("Type") != "AWS::Logs::LogGroup" or "RetentionInDays" not in d.props(group):
                f.append(f"[{name}] {fn} logs to {lc.get('LogGroup')!r}, not a log group of the stack with a retention")
    return f


def check_application_log_filter(ds: dict[str, Deployed]) -> list[str]:
    """Lambda drops no application line: every function's effective ApplicationLogLevel (Globals
    merged with its own LoggingConfig by the transform; absent is Lambda's default, INFO) is TRACE,
    whatever ApplicationLogLevel says, so the INFO embedded-metric lines (DeniedKeys,
    ThrottledClients) reach CloudWatch under WARN too. The parameter filters in the functions
    instead: RUST_LOG follows it (FATAL becomes error)."""
    f = []
    for name, d in ds.items():
        level = d.param("ApplicationLogLevel")
        want = {"FATAL": "error"}.get(level, level.lower())
        for fn in d.functions():
            props = d.props(fn)
            lc = props.get("LoggingConfig") or {}
            effective = d.value(lc["ApplicationLogLevel"]) if "ApplicationLogLevel" in lc else "INFO (Lambda's default)"
            if effective != "TRACE":
                f.append(f"[{name}] {fn} ApplicationLogLevel is {effective!r}, not TRACE: Lambda drops lines below it, "
                         "metric lines among them")
            rust_log = d.value(((props.get("Environment") or {}).get("Variables") or {}).get("RUST_LOG"))
            if rust_log != want:
                f.append(f"[{name}] {fn} RUST_LOG is {rust_log!r}, not {want!r} (ApplicationLogLevel {level})")
    return f


# Timeouts sized to DynamoDB (a request makes a few single-digit-millisecond calls; the SDK gives
# an attempt 3 s): a route at most ROUTE_TIMEOUT_MAX, the authorizer at most AUTHORIZER_TIMEOUT_MAX,
# Bulk (up to 1000 operations) exactly BULK_TIMEOUT, under API Gateway's 29 s.
ROUTE_TIMEOUT_MAX = 10
AUTHORIZER_TIMEOUT_MAX = 5
BULK_FUNCTION = "BulkFunction"
BULK_TIMEOUT = 28


HOOK_FUNCTION = "PreTrafficHookFunction"
# the hook invokes a cold new version, with retries when live traffic holds the function's
# reserved concurrency; timing out, it would report nothing and CodeDeploy would wait an hour
HOOK_TIMEOUT_MIN = 60
CANARY_DIR = HERE / "hooks" / "canary"


# What the hook's role may do, each on what: the new versions of this stack's functions
# (qualified ARNs of <stack>-*), and this stack's deployment groups.
HOOK_GRANTS = {
    "lambda:InvokeFunction": re.compile(rf"arn:aws:lambda:{ic.REGION}:{ic.ACCOUNT}:function:{ic.STACK}-\*:\*"),
    "codedeploy:GetDeployment": re.compile(rf"arn:aws:codedeploy:{ic.REGION}:{ic.ACCOUNT}:deploymentgroup:[^*/]+/\*"),
    "codedeploy:PutLifecycleEventHookExecutionStatus":
        re.compile(rf"arn:aws:codedeploy:{ic.REGION}:{ic.ACCOUNT}:deploymentgroup:[^*/]+/\*"),
}


def hook_role_problems(d: Deployed) -> list[str]:
    """Every Allow of the hook's role is in HOOK_GRANTS, on the resources named there."""
    role = (d.props(HOOK_FUNCTION).get("Role") or {}).get("Fn::GetAtt", [None])[0]
    statements = [s for pol in d.props(role).get("Policies") or [] for s in d.value(pol["PolicyDocument"]).get("Statement", [])] \
        if role in d.res else []
    if not statements:
        return ["the hook's role has no policy of its own"]
    f = []
    for s in statements:
        as_list = lambda x: x if isinstance(x, list) else [x]  # noqa: E731
        for action in as_list(s.get("Action")):
            grant = HOOK_GRANTS.get(action)
            resources = as_list(s.get("Resource"))
            if s.get("Effect") == "Allow" and (grant is None or not all(isinstance(r, str) and grant.fullmatch(r) for r in resources)):
                f.append(f"the hook's role may {action} on {resources}")
    return f


def check_pretraffic_hooks(ds: dict[str, Deployed]) -> list[str]:
    """Every alias CodeDeploy shifts runs the PreTraffic hook first (BeforeAllowTrafficHook), the
    hook is named so CodeDeploy's role may invoke it (CodeDeployHook_*), it has a canary for every
    function it can be asked about (infra/hooks/canary/<function>.json), and its role may invoke
    only this stack's function versions and read only this stack's deployments."""
    f = []
    for name in ("plain", "domain"):
        d = ds[name]
        hook_name = d.value(d.props(HOOK_FUNCTION).get("FunctionName"))
        if not isinstance(hook_name, str) or not hook_name.startswith("CodeDeployHook_"):
            f.append(f"[{name}] the hook is named {hook_name!r}: CodeDeploy's role invokes only CodeDeployHook_* functions")
        for fn in d.functions():
            for alias_id, alias in _alias_of(d, fn):
                update = (alias.get("UpdatePolicy") or {}).get("CodeDeployLambdaAliasUpdate")
                if fn == HOOK_FUNCTION:
                    if update:
                        f.append(f"[{name}] the hook's own alias is shifted by CodeDeploy")
                    continue
                if not update or ref_target(update.get("BeforeAllowTrafficHook")) != HOOK_FUNCTION:
                    f.append(f"[{name}] {alias_id} takes traffic without the PreTraffic hook "
                             f"({(update or {}).get('BeforeAllowTrafficHook')!r})")
    d = ds["plain"]
    canaries = {p.stem for p in CANARY_DIR.glob("*.json")}
    for fn in d.functions():
        full = d.value(d.props(fn).get("FunctionName"))
        part = full.removeprefix(ic.STACK + "-") if isinstance(full, str) else None
        if fn != HOOK_FUNCTION and part not in canaries:
            f.append(f"{fn} ({full}) has no canary in infra/hooks/canary/, so its deployments would fail")
    f += hook_role_problems(d)
    return f


def check_timeouts(ds: dict[str, Deployed]) -> list[str]:
    """Every function times out before API Gateway's 29 s integration limit; a route within a few
    seconds, Bulk at 28 s, the authorizer well before the routes it guards."""
    f = []
    d = ds["plain"]
    timeouts = {}
    for fn in d.functions():
        t = d.value(d.props(fn).get("Timeout", 3))
        timeouts[fn] = t
        if fn == HOOK_FUNCTION:
            if not isinstance(t, int) or not HOOK_TIMEOUT_MIN <= t <= 900:
                f.append(f"the PreTraffic hook's timeout {t!r} leaves no room for a cold start and retries (at least {HOOK_TIMEOUT_MIN} s)")
            continue
        if not isinstance(t, int) or t >= 29:
            f.append(f"{fn} Timeout {t!r} is not under API Gateway's 29 s")
    authorizer = api_authorizer_function(d)
    routes = [fn for fn in route_functions(d) if fn != authorizer]
    for fn in routes:
        limit = BULK_TIMEOUT if fn == BULK_FUNCTION else ROUTE_TIMEOUT_MAX
        if isinstance(timeouts.get(fn), int) and (timeouts[fn] != limit if fn == BULK_FUNCTION else timeouts[fn] > limit):
            f.append(f"{fn} Timeout {timeouts[fn]} s is not {'' if fn == BULK_FUNCTION else 'at most '}{limit} s")
    if authorizer in timeouts and isinstance(timeouts[authorizer], int) and timeouts[authorizer] > AUTHORIZER_TIMEOUT_MAX:
        f.append(f"the authorizer's timeout ({timeouts[authorizer]} s) is above {AUTHORIZER_TIMEOUT_MAX} s")
    if authorizer in timeouts and routes and not all(isinstance(timeouts[r], int) and timeouts[authorizer] < timeouts[r] for r in routes):
        f.append(f"the authorizer's timeout ({timeouts[authorizer]}) is not below the routes'")
    return f


# Every function's reserved concurrency (its reservation and its cap) by family: the parameter
# that sets it. A new function fails check_capacity until it is placed in a family here.
CONCURRENCY_FAMILIES = {
    "AuthorizerConcurrency": ["AuthorizerFunction"],
    "ReadConcurrency": ["UsersListFunction", "UsersSearchFunction", "RootSearchFunction", "UsersGetFunction",
                        "GroupsListFunction", "GroupsSearchFunction", "GroupsGetFunction", "DiscoveryFunction"],
    "WriteConcurrency": ["UsersCreateFunction", "UsersReplaceFunction", "UsersPatchFunction", "UsersDeleteFunction",
                         "GroupsCreateFunction", "GroupsReplaceFunction", "GroupsPatchFunction", "GroupsDeleteFunction",
                         "ResourcesFunction"],
    "BulkConcurrency": [BULK_FUNCTION],
    "ControlConcurrency": ["SettingsFunction", "PortalFunction", "OauthTokenFunction"],
    "EventsConcurrency": ["EventsFunction"],
}
# Functions with no reservation, and why.
UNRESERVED_FUNCTIONS = {"PreTrafficHookFunction": "runs only during a deployment, a few invocations"}
# Lambda keeps at least this much of the account's quota unreserved; 1000 is the default quota.
UNRESERVED_MINIMUM = 100
DEFAULT_ACCOUNT_QUOTA = 1000


def _reservation(d: Deployed, fn: str, **overrides):
    node = d.props(fn).get("ReservedConcurrentExecutions")
    if node is None:
        return None
    value = (Resolver(d.cfn, {**d.params, **overrides}) if overrides else d.resolver).resolve(node)
    return None if value is ic.NOVALUE else value


def check_capacity(ds: dict[str, Deployed]) -> list[str]:
    """Reserved concurrency per family (the authorizer cannot be starved; no family can drain the
    account's pool, so the stage as a whole holds at most their sum), a parameter of 0 taking the
    reservation away; the defaults fit the default quota below the headroom alarm's threshold;
    the headroom alarm reads ClaimedAccountConcurrency; a throttled invocation is a SCIM 503."""
    f = []
    d = ds["plain"]
    family_of = {fn: param for param, fns in CONCURRENCY_FAMILIES.items() for fn in fns}
    total = 0
    for fn in d.functions():
        if fn in UNRESERVED_FUNCTIONS:
            continue
        param = family_of.get(fn)
        if param is None:
            f.append(f"{fn} is in no concurrency family (CONCURRENCY_FAMILIES)")
            continue
        want = int(d.params[param])
        got = _reservation(d, fn)
        if got != want or want <= 0:
            f.append(f"{fn} reserves {got!r}, not {param} ({want})")
            continue
        total += want
        if _reservation(d, fn, **{param: "0"}) is not None:
            f.append(f"{fn} keeps a reservation with {param}=0")
    threshold = int(d.params["ConcurrencyAlarmThreshold"])
    if total > DEFAULT_ACCOUNT_QUOTA - UNRESERVED_MINIMUM or total >= threshold:
        f.append(f"the default reservations sum to {total}: above {DEFAULT_ACCOUNT_QUOTA - UNRESERVED_MINIMUM} "
                 f"(the default quota less Lambda's unreserved minimum) or not below ConcurrencyAlarmThreshold ({threshold})")
    headroom = [aid for aid, a in d.alarms() for m in alarm_metrics(d, a["Properties"])
                if m["namespace"] == "AWS/Lambda" and m["name"] == "ClaimedAccountConcurrency" and not m["dims"]
                and m["stat"] == "Maximum" and str(d.value(a["Properties"].get("Threshold"))) == str(threshold)]
    if not headroom:
        f.append("no alarm reads the account's ClaimedAccountConcurrency (Maximum) at ConcurrencyAlarmThreshold")
    responses = gateway_responses(d)
    failure = responses.get("INTEGRATION_FAILURE")
    if not failure or failure[0] != "503" or "Retry-After" not in failure[1]:
        f.append("a throttled function is not answered 503 with Retry-After (INTEGRATION_FAILURE)")
    return f


def gateway_responses(d: Deployed) -> dict[str, tuple[str, dict, dict]]:
    """ResponseType -> (status, headers, templates) of the API's gateway responses (SAM puts them
    in the OpenAPI body)."""
    out = {}
    _, api = rest_api(d)
    for kind, r in (d.value(api["Properties"]["Body"].get("x-amazon-apigateway-gateway-responses")) or {}).items():
        headers = {k.split(".")[-1]: v for k, v in (r.get("responseParameters") or {}).items()}
        out[kind] = (str(r.get("statusCode")), headers, r.get("responseTemplates") or {})
    return out


def check_gateway_responses(ds: dict[str, Deployed]) -> list[str]:
    """Every answer API Gateway makes itself (401, 403, 404, 413, 429, 503, 504, the defaults) is
    a SCIM Error served as application/scim+json, its status the response's status."""
    f = []
    d = ds["plain"]
    responses = gateway_responses(d)
    for needed in ("UNAUTHORIZED", "ACCESS_DENIED", "MISSING_AUTHENTICATION_TOKEN", "REQUEST_TOO_LARGE", "THROTTLED",
                   "AUTHORIZER_FAILURE", "INTEGRATION_FAILURE", "INTEGRATION_TIMEOUT", "DEFAULT_4XX", "DEFAULT_5XX"):
        if needed not in responses:
            f.append(f"no gateway response for {needed}")
    for kind, (status, headers, templates) in sorted(responses.items()):
        if headers.get("Content-Type") != "'application/scim+json'":
            f.append(f"{kind} is served as {headers.get('Content-Type')!r}")
        for media, body in templates.items():
            shaped = body.replace("$context.error.messageString", '"x"')
            try:
                doc = json.loads(shaped)
            except ValueError:
                f.append(f"{kind} ({media}) is not JSON")
                continue
            if doc.get("schemas") != ["urn:ietf:params:scim:api:messages:2.0:Error"] or doc.get("status") != status:
                f.append(f"{kind} ({media}) is not a SCIM Error with status {status}")
    return f


def evaluate_rule_expr(node, params):
    if isinstance(node, dict) and len(node) == 1:
        (key, value), = node.items()
        if key == "Ref":
            return str(params[value])
        if key == "Fn::Equals":
            return evaluate_rule_expr(value[0], params) == evaluate_rule_expr(value[1], params)
        if key == "Fn::Not":
            return not evaluate_rule_expr(value[0], params)
        if key == "Fn::And":
            return all(evaluate_rule_expr(v, params) for v in value)
        if key == "Fn::Or":
            return any(evaluate_rule_expr(v, params) for v in value)
        if key == "Fn::Contains":
            return evaluate_rule_expr(value[1], params) in [evaluate_rule_expr(v, params) for v in value[0]]
        raise CheckError(f"rule function {key} is not evaluated here")
    if isinstance(node, (str, int, float, bool)):
        return str(node).lower() if isinstance(node, bool) else str(node)
    raise CheckError(f"cannot evaluate {node!r} in a rule")


def rule_violations(sam: dict, overrides: dict) -> list[str]:
    params = {k: str(v.get("Default", "")) for k, v in (sam.get("Parameters") or {}).items()}
    params.update(overrides)
    out = []
    for name, rule in (sam.get("Rules") or {}).items():
        if "RuleCondition" in rule and not evaluate_rule_expr(rule["RuleCondition"], params):
            continue
        for assertion in rule.get("Assertions") or []:
            if not evaluate_rule_expr(assertion["Assert"], params):
                out.append(name)
    return out


def check_alarm_topic(ds: dict[str, Deployed]) -> list[str]:
    """AlarmTopicArn is required unless AlarmsNotifyNobody=true (the template's Rules); every
    alarm notifies the topic when there is one; the parameter sets used here are otherwise valid."""
    f = []
    sam = ds["plain"].sam
    if not rule_violations(sam, {}):
        f.append("the defaults (no AlarmTopicArn, no waiver) pass the template's rules")
    if rule_violations(sam, {"AlarmTopicArn": TOPIC}):
        f.append(f"a stack with AlarmTopicArn is refused: {rule_violations(sam, {'AlarmTopicArn': TOPIC})}")
    if rule_violations(sam, {"AlarmsNotifyNobody": "true"}):
        f.append(f"the explicit waiver is refused: {rule_violations(sam, {'AlarmsNotifyNobody': 'true'})}")
    if not rule_violations(sam, {"AlarmTopicArn": TOPIC, "DomainName": DOMAIN}):
        f.append("a DomainName without CertificateArn passes the template's rules")
    for name, overrides in PARAMETER_SETS.items():
        if name == "plain":
            continue
        if rule_violations(sam, overrides):
            f.append(f"parameter set {name} breaks the rules {rule_violations(sam, overrides)}")
    for name in ("plain", "domain"):
        d = ds[name]
        for aid, alarm in d.alarms():
            problem = alarm_actions_ok(d, alarm["Properties"])
            if problem:
                f.append(f"[{name}] {aid} {problem}")
    return f


def check_alarm_catalogue(ds: dict[str, Deployed]) -> list[str]:
    """The alarms the README lists, found by what they read: the table's ThrottledRequests and
    SystemErrors (every operation the store uses), API 5XX and 4XX rates, API p99 latency, p99 of
    every route function, account concurrency, refused keys, OAuth clients throttled after wrong
    secrets (Sum >= 1 in 5 minutes), and every function's Lambda throttles in exactly one alarm."""
    return [problem if name == "plain" else f"[{name}] {problem}" for name, d in ds.items() for problem in _alarm_catalogue_problems(d)]


def _alarm_catalogue_problems(d: Deployed) -> list[str]:
    f = []
    table = d.resolver.ref("ScimTable")
    everything = [(aid, a["Properties"], alarm_metrics(d, a["Properties"])) for aid, a in d.alarms()]
    used_operations = {"GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"}
    for metric in ("ThrottledRequests", "SystemErrors"):
        ops = {m["dims"].get("Operation") for _, _, ms in everything for m in ms
               if m["namespace"] == "AWS/DynamoDB" and m["name"] == metric and m["dims"].get("TableName") == table}
        if not used_operations <= ops:
            f.append(f"no alarm reads the table's {metric} for {sorted(used_operations - ops)}")
    if not any(is_api_rate_alarm(d, p, "5XXError") for _, p, _ in everything):
        f.append("no API 5XX-rate alarm (5XXError / Count)")
    if not any(is_api_rate_alarm(d, p, "4XXError") for _, p, _ in everything):
        f.append("no API 4XX-rate alarm (4XXError / Count)")
    if not any(m["namespace"] == "AWS/ApiGateway" and m["name"] == "Latency" and m["stat"] == "p99" for _, _, ms in everything for m in ms):
        f.append("no API p99 latency alarm")
    for fn in route_functions(d):
        name = d.resolver.ref(fn)
        if not any(m["namespace"] == "AWS/Lambda" and m["name"] == "Duration" and m["stat"] == "p99"
                   and m["dims"].get("FunctionName") == name for _, _, ms in everything for m in ms):
            f.append(f"no p99 latency alarm covers {fn}")
    if not any(m["namespace"] == "AWS/Lambda" and m["name"] == "ClaimedAccountConcurrency" for _, _, ms in everything for m in ms):
        f.append("no account concurrency (ClaimedAccountConcurrency) alarm")
    if not any(m["namespace"] == "ScimServerless" and m["name"] == "DeniedKeys" for _, _, ms in everything for m in ms):
        f.append("no refused-keys (401) alarm")
    token = d.resolver.ref(TOKEN_FUNCTION)
    brute_force = [(aid, p) for aid, p, ms in everything
                   if any(m["namespace"] == "ScimServerless" and m["name"] == "ThrottledClients"
                          and m["dims"].get("Function") == token for m in ms)]
    if not brute_force:
        f.append(f"no alarm reads ThrottledClients of {TOKEN_FUNCTION} (OAuth clients throttled after wrong secrets)")
    for aid, p in brute_force:
        shape = (p.get("Statistic"), p.get("Period"), d.value(p.get("Threshold")), p.get("ComparisonOperator"),
                 p.get("TreatMissingData"))
        if shape != ("Sum", 300, 1, "GreaterThanOrEqualToThreshold", "notBreaching"):
            f.append(f"{aid} is not Sum >= 1 over 5 minutes with missing data not breaching: {shape}")
    # A metric math alarm reads at most 10 metrics, so throttles are split over several alarms:
    # every function must be in exactly one of them.
    for fn in d.functions():
        name = d.resolver.ref(fn)
        readers = [aid for aid, _, ms in everything
                   if any(m["namespace"] == "AWS/Lambda" and m["name"] == "Throttles" and m["dims"].get("FunctionName") == name
                          for m in ms)]
        if len(readers) != 1:
            f.append(f"{fn}'s Lambda Throttles are read by {len(readers)} alarms ({readers}), not exactly one")
    return f


# The list and search routes (the declared resource types' GET /{type} and POST /{type}/.search
# among them), and POST /Bulk (up to 1000 operations a request): each throttled at
# ListThrottleRate/ListThrottleBurst, below the default.
LIST_ROUTES = {("/~1scim~1v2~1Users", "GET"), ("/~1scim~1v2~1Groups", "GET"), ("/~1scim~1v2~1Users~1.search", "POST"),
               ("/~1scim~1v2~1Groups~1.search", "POST"), ("/~1scim~1v2~1{type}", "GET"),
               ("/~1scim~1v2~1{type}~1.search", "POST"), ("/~1scim~1v2~1.search", "POST"), ("/~1scim~1v2~1Bulk", "POST")}


def check_throttling(ds: dict[str, Deployed]) -> list[str]:
    """A default per-method throttle, and lower ones for the list and search routes and Bulk."""
    f = []
    d = ds["plain"]
    _, stage = api_stage(d)
    settings = {(s.get("ResourcePath"), s.get("HttpMethod")): s for s in d.value(stage["Properties"].get("MethodSettings")) or []}
    default = settings.get(("/*", "*"))
    if not default or default.get("ThrottlingRateLimit") != d.params["ThrottleRate"]:
        f.append("no default method throttle (/* *) at ThrottleRate")
    for route in sorted(LIST_ROUTES):
        s = settings.get(route)
        if not s:
            f.append(f"no method throttle for {route[1]} {route[0]}")
        elif s.get("ThrottlingRateLimit") != d.params["ListThrottleRate"] or s.get("ThrottlingBurstLimit") != d.params["ListThrottleBurst"]:
            f.append(f"{route[1]} {route[0]} is not throttled at ListThrottleRate/ListThrottleBurst")
    if not d.params["ListThrottleRate"] < d.params["ThrottleRate"]:
        f.append("the list throttle default is not lower than the default method throttle")
    return f


TOKEN_FUNCTION = "OauthTokenFunction"
AUTHORIZER_FUNCTION = "AuthorizerFunction"
SIGNING_KEYS_VAR = "SCIM_TOKEN_SIGNING_KEYS"

# Functions reachable without a key (no authorizer on their methods): each checks its caller itself.
# Their methods under the prefix (the portal's API; every route of the token endpoint) are
# throttled by parameters of their own, lower than the default. The portal's static page, script
# and styles are at the default.
KEYLESS_FUNCTIONS = {
    "PortalFunction": ("PortalThrottleRate", "PortalThrottleBurst", "/portal/api/"),
    TOKEN_FUNCTION: ("TokenThrottleRate", "TokenThrottleBurst", "/"),
}


def api_methods(d: Deployed) -> list[tuple[str, str, dict, str | None]]:
    """(path, METHOD, operation, the function it invokes) of every method of the API."""
    _, api = rest_api(d)
    out = []
    for path, methods in ((api["Properties"].get("Body") or {}).get("paths") or {}).items():
        for method, op in methods.items():
            integration = op.get("x-amazon-apigateway-integration") if isinstance(op, dict) else None
            if not integration:
                continue
            target = _lambda_of_uri(integration.get("uri"))
            if d.res.get(target, {}).get("Type") == "AWS::Lambda::Alias":
                target = ref_target(d.props(target).get("FunctionName"))
            out.append((path, method.upper(), op, target))
    return out


def check_keyless_routes(ds: dict[str, Deployed]) -> list[str]:
    """Only the setup portal and the OAuth token endpoint are reachable without a key: every other
    method names the key authorizer. The keyless methods that do work (the portal's API, the token
    endpoint and its discovery documents) are throttled by parameters of their own, lower than the
    default method throttle."""
    f = []
    d = ds["plain"]
    _, api = rest_api(d)
    key_schemes = {n for n, scheme in security_schemes(api).items() if scheme.get("x-amazon-apigateway-authorizer")}
    if not key_schemes:
        return ["the API has no Lambda authorizer"]
    _, stage = api_stage(d)
    settings = {(x.get("ResourcePath"), x.get("HttpMethod")): x for x in d.value(stage["Properties"].get("MethodSettings")) or []}
    keyless: dict[str, list[tuple[str, str]]] = {}
    for path, method, op, fn in api_methods(d):
        schemes = {n for requirement in op.get("security") or [] for n in requirement}
        if not schemes & key_schemes:
            keyless.setdefault(fn, []).append((path, method))
    for fn, routes in sorted(keyless.items(), key=lambda kv: str(kv[0])):
        if fn not in KEYLESS_FUNCTIONS:
            f.append(f"{fn} is reachable without a key ({', '.join(f'{m} {p}' for p, m in routes)}): only the "
                     "portal and the token endpoint check their callers themselves")
    for fn, (rate, burst, prefix) in KEYLESS_FUNCTIONS.items():
        if fn not in keyless:
            f.append(f"{fn} has no method without the authorizer (its callers have no key)")
            continue
        if not d.params[rate] < d.params["ThrottleRate"]:
            f.append(f"the default of {rate} ({d.params[rate]}) is not below ThrottleRate ({d.params['ThrottleRate']})")
        for path, method in keyless[fn]:
            if not path.startswith(prefix):
                continue
            x = settings.get(("/" + path.replace("/", "~1"), method))  # MethodSettings: "/" then the path, "/" as "~1"
            if not x or x.get("ThrottlingRateLimit") != d.params[rate] or x.get("ThrottlingBurstLimit") != d.params[burst]:
                f.append(f"{method} {path} ({fn}, no authorizer) is not throttled at {rate}/{burst}")
    return f


# The HTTP API's metric names for the REST API's (AWS/ApiGateway; dimension ApiId, not ApiName).
HTTP_API_METRICS = {"5XXError": "5xx", "4XXError": "4xx", "Count": "Count", "Latency": "Latency",
                    "IntegrationLatency": "IntegrationLatency"}


def is_http_api(d: Deployed) -> bool:
    return d.param("ApiType") == "HTTP"


def api_metric(d: Deployed, rest_name: str) -> str:
    """The name under which the API serving this parameter set publishes a REST API metric."""
    return HTTP_API_METRICS[rest_name] if is_http_api(d) else rest_name


def api_dimensions_ok(d: Deployed, dims: dict) -> bool:
    """The metric's dimensions name the API serving this parameter set."""
    if is_http_api(d):
        return dims.get("ApiId") == d.resolver.ref("ScimHttpApi")
    return dims.get("ApiName") == d.value({"Fn::Sub": "${AWS::StackName}-scim"})


def http_api_routes(d: Deployed) -> dict[str, tuple[str | None, bool]]:
    """Every route of the HTTP API's body: "METHOD /path" (or "$default") → (the function its
    integration invokes, whether the key authorizer guards it)."""
    _, api = d.only("AWS::ApiGatewayV2::Api", "the HTTP API")
    body = api["Properties"].get("Body") or {}
    schemes = {n for n, x in ((body.get("components") or {}).get("securitySchemes") or {}).items()
               if x.get("x-amazon-apigateway-authorizer")}
    out = {}
    for path, methods in (body.get("paths") or {}).items():
        for method, op in methods.items():
            integration = op.get("x-amazon-apigateway-integration") or {}
            target = aliased_function(d, integration.get("uri"))
            if integration.get("type") != "aws_proxy" or integration.get("payloadFormatVersion") != "2.0":
                target = None
            authorized = bool({n for requirement in op.get("security") or [] for n in requirement} & schemes)
            key = path if path == "$default" else f"{'ANY' if method == 'x-amazon-apigateway-any-method' else method.upper()} {path}"
            out[key] = (target, authorized)
    return out


def aliased_function(d: Deployed, uri) -> str | None:
    """The function whose alias an invocation URI names by ARN
    (`…/functions/arn:…:function:<name>:<alias>/invocations`), when a function of that name has
    that alias; None for anything else (a function ARN without an alias: deployments would not
    shift it)."""
    text = d.value(uri) if isinstance(uri, dict) and "Fn::Sub" in uri else None
    prefix = f"arn:aws:apigateway:{ic.REGION}:lambda:path/2015-03-31/functions/arn:aws:lambda:{ic.REGION}:{ic.ACCOUNT}:function:"
    m = re.fullmatch(re.escape(prefix) + r"([^:/]+):(\w+)/invocations", text) if isinstance(text, str) else None
    if not m:
        return None
    name, alias = m.groups()
    for fn in d.functions():
        if d.value(d.props(fn).get("FunctionName")) == name and any(
                ref_target(r["Properties"].get("FunctionName")) == fn and r["Properties"].get("Name") == alias
                for _, r in d.of_type("AWS::Lambda::Alias")):
            return fn
    return None


def _arn_matches(pattern: str, arn: str) -> bool:
    """An execute-api source ARN pattern (`*` any run of characters, as Lambda matches it)."""
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), arn) is not None


def check_http_api(ds: dict[str, Deployed]) -> list[str]:
    """ApiType=HTTP serves every route of the REST API (same method, path, function alias and
    authorizer; anything else reaches a keyed SCIM 404), through an authorizer that answers
    simple responses on payload 2.0, cached per Authorization header and source address for
    AuthorizerCacheTtl; each function may be invoked by this API for its routes; the stage
    throttles and logs as the REST stage does; the REST API is switched off, a custom domain maps
    the HTTP stage, and the outputs name it; the Rules refuse WAF with it. ApiType=REST creates
    none of it."""
    f = []
    for name in ("plain", "domain"):
        extra = [k for k, r in ds[name].res.items() if r.get("Type", "").startswith("AWS::ApiGatewayV2::") and ds[name].active(k)]
        if extra:
            f.append(f"[{name}] ApiType=REST still creates {extra}")
    for name in ("http", "http-domain"):
        d = ds[name]
        rest = {f"{m} {path}": (fn, bool(op.get("security")) and "NONE" not in {n for r in op["security"] for n in r})
                for path, m, op, fn in api_methods(d)}
        http = http_api_routes(d)
        for key, want in rest.items():
            if http.get(key) != want:
                f.append(f"[{name}] {key}: the HTTP API has {http.get(key)!r}, the REST API {want!r}")
        for key in set(http) - set(rest) - {"$default"}:
            f.append(f"[{name}] {key} is on the HTTP API only")
        if http.get("$default") != ("DiscoveryFunction", True):
            f.append(f"[{name}] $default is {http.get('$default')!r}, not the discovery function behind the authorizer")
        f += _http_authorizer_problems(d, name)
        f += _http_permission_problems(d, name, http)
        f += _http_stage_problems(d, name)
        if disable_execute_api(d) is not True:
            f.append(f"[{name}] the REST API's execute-api endpoint is on, though it serves nothing")
        for rtype in ("AWS::ApiGateway::BasePathMapping", "AWS::WAFv2::WebACLAssociation"):
            if d.of_type(rtype):
                f.append(f"[{name}] {rtype} {[k for k, _ in d.of_type(rtype)]} is created for the unused REST API")
    f += _http_domain_problems(ds)
    sam = ds["plain"].sam
    for waf in ({"WebAclArn": EXTERNAL_ACL}, {"CreateWebAcl": "true"}):
        if not rule_violations(sam, {"AlarmTopicArn": TOPIC, "ApiType": "HTTP", **waf}):
            f.append(f"ApiType=HTTP with {waf} passes the template's rules (WAF attaches to REST API stages only)")
    if refused := rule_violations(sam, {"AlarmTopicArn": TOPIC, "ApiType": "HTTP"}):
        f.append(f"ApiType=HTTP is refused: {refused}")
    return f


def _http_authorizer_problems(d: Deployed, name: str) -> list[str]:
    f = []
    _, api = d.only("AWS::ApiGatewayV2::Api", "the HTTP API")
    schemes = ((api["Properties"].get("Body") or {}).get("components") or {}).get("securitySchemes") or {}
    found = [x["x-amazon-apigateway-authorizer"] for x in schemes.values() if x.get("x-amazon-apigateway-authorizer")]
    if len(found) != 1:
        return [f"[{name}] the HTTP API has {len(found)} Lambda authorizers, not one"]
    a = found[0]
    if aliased_function(d, a.get("authorizerUri")) != AUTHORIZER_FUNCTION:
        f.append(f"[{name}] the HTTP API's authorizer invokes {a.get('authorizerUri')!r}, not the authorizer's alias")
    shape = (a.get("type"), a.get("authorizerPayloadFormatVersion"), a.get("enableSimpleResponses"))
    if shape != ("request", "2.0", True):
        f.append(f"[{name}] the HTTP API's authorizer is {shape!r}, not a request authorizer with simple 2.0 responses")
    ttl = d.value(a.get("authorizerResultTtlInSeconds"))
    if ttl != d.params["AuthorizerCacheTtl"]:
        f.append(f"[{name}] the HTTP API caches the authorizer's answer {ttl!r} s, not AuthorizerCacheTtl")
    sources = d.value(a.get("identitySource"))
    sources = [] if sources in (None, ic.NOVALUE) else [x.strip() for x in str(sources).split(",")]
    if int(d.params["AuthorizerCacheTtl"]) > 0 and set(sources) != {"$request.header.Authorization", "$context.identity.sourceIp"}:
        f.append(f"[{name}] the authorizer's answer is cached per {sources!r}, not per Authorization header and source address")
    return f


def _http_permission_problems(d: Deployed, name: str, http: dict) -> list[str]:
    """Every route (and the authorizer) can invoke its function's alias: a permission for this API
    whose source ARN matches the route's."""
    f = []
    api = d.resolver.ref("ScimHttpApi")
    prefix = f"arn:aws:execute-api:{ic.REGION}:{ic.ACCOUNT}:{api}/"
    grants = []
    for pid, perm in d.of_type("AWS::Lambda::Permission"):
        pp = perm["Properties"]
        source = d.value(pp.get("SourceArn"))
        if pp.get("Principal") != "apigateway.amazonaws.com" or not str(source).startswith(prefix):
            continue
        target = ref_target(pp.get("FunctionName"))
        if d.res.get(target, {}).get("Type") == "AWS::Lambda::Alias":
            target = ref_target(d.props(target).get("FunctionName"))
        grants.append((target, str(source)))
    for key, (fn, _) in http.items():
        arn = prefix + d.param("StageName") + ("/$default" if key == "$default" else "/" + key.replace(" ", "", 1))
        arn = re.sub(r"{[^}]+}", "x", arn)
        if not any(t == fn and _arn_matches(src, arn) for t, src in grants):
            f.append(f"[{name}] nothing lets {key} invoke {fn}")
    if not any(t == AUTHORIZER_FUNCTION and _arn_matches(src, prefix + "authorizers/a1b2c3") for t, src in grants):
        f.append(f"[{name}] nothing lets the HTTP API invoke the authorizer")
    return f


def _http_stage_problems(d: Deployed, name: str) -> list[str]:
    f = []
    stages = [(k, r) for k, r in d.of_type("AWS::ApiGatewayV2::Stage") if ref_target(r["Properties"].get("ApiId")) == "ScimHttpApi"]
    if len(stages) != 1:
        return [f"[{name}] expected one stage of the HTTP API, found {[k for k, _ in stages]}"]
    sp = stages[0][1]["Properties"]
    if d.value(sp.get("StageName")) != d.param("StageName") or sp.get("AutoDeploy") is not True:
        f.append(f"[{name}] the HTTP stage is {d.value(sp.get('StageName'))!r} (AutoDeploy {sp.get('AutoDeploy')!r}), not StageName, deployed")
    logs = sp.get("AccessLogSettings") or {}
    if getatt_target(logs.get("DestinationArn")) != ("ApiAccessLogGroup", "Arn"):
        f.append(f"[{name}] the HTTP stage does not log to ApiAccessLogGroup")
    for field in ("$context.authorizer.tenant_id", "$context.authorizer.key_id", "$context.authorizer.refusal", "$context.status"):
        if field not in str(logs.get("Format")):
            f.append(f"[{name}] the HTTP stage's access log lacks {field}")
    default = d.value(sp.get("DefaultRouteSettings")) or {}
    if (default.get("ThrottlingRateLimit"), default.get("ThrottlingBurstLimit")) != (d.params["ThrottleRate"], d.params["ThrottleBurst"]):
        f.append(f"[{name}] the HTTP stage's default throttle is not ThrottleRate/ThrottleBurst: {default!r}")
    routes = d.value(sp.get("RouteSettings")) or {}
    _, rest_stage = api_stage(d)
    for ms in d.value(rest_stage["Properties"].get("MethodSettings")) or []:
        if ms.get("ResourcePath") == "/*":
            continue
        key = f"{ms['HttpMethod']} {ms['ResourcePath'][1:].replace('~1', '/')}"
        got = routes.get(key) or {}
        want = (ms.get("ThrottlingRateLimit"), ms.get("ThrottlingBurstLimit"))
        if (got.get("ThrottlingRateLimit"), got.get("ThrottlingBurstLimit")) != want:
            f.append(f"[{name}] {key} is throttled at {got!r} on the HTTP stage, {want!r} on the REST stage")
    return f


def _http_endpoint_off(d: Deployed) -> list:
    """disableExecuteApiEndpoint of each server object of the HTTP API's body (OpenAPI 3 reads the
    extension there; at the body's root it would be ignored)."""
    body = d.res["ScimHttpApi"]["Properties"].get("Body") or {}
    return [d.value((x.get("x-amazon-apigateway-endpoint-configuration") or {}).get("disableExecuteApiEndpoint"))
            for x in body.get("servers") or []]


def _http_domain_problems(ds: dict[str, Deployed]) -> list[str]:
    """The custom domain maps the HTTP stage (and not the REST one); the outputs name the API
    that serves."""
    f = []
    d = ds["http-domain"]
    dom_id, _ = d.only("AWS::ApiGateway::DomainName", "the custom domain")
    maps = [r["Properties"] for _, r in d.of_type("AWS::ApiGatewayV2::ApiMapping") if ref_target(r["Properties"].get("DomainName")) == dom_id]
    stage = next((k for k, r in d.of_type("AWS::ApiGatewayV2::Stage")), None)
    if len(maps) != 1 or ref_target(maps[0].get("ApiId")) != "ScimHttpApi" or ref_target(maps[0].get("Stage")) != stage:
        f.append(f"[http-domain] the custom domain maps {maps!r}, not the HTTP API's stage")
    elif maps[0].get("ApiMappingKey") not in (None, ""):
        f.append("[http-domain] the API mapping has a key: the Tenant URL would need it")
    if output(d, "TenantUrl") != f"https://{DOMAIN}{ROUTE_SUFFIX}":
        f.append(f"[http-domain] TenantUrl is {output(d, 'TenantUrl')!r}")
    _, api = d.only("AWS::ApiGatewayV2::Api", "the HTTP API")
    # OpenAPI 3: the extension belongs to a server object (at the root it would be ignored)
    if _http_endpoint_off(d) != [True]:
        f.append(f"[http-domain] the HTTP API's execute-api endpoint stays on behind the custom domain ({_http_endpoint_off(d)!r})")
    if _http_endpoint_off(ds["http"]) != [False]:
        f.append(f"[http] without a domain the HTTP API's execute-api endpoint is not simply on ({_http_endpoint_off(ds['http'])!r})")
    h = ds["http"]
    api = h.resolver.ref("ScimHttpApi")
    for out, suffix in (("TenantUrl", ROUTE_SUFFIX), ("TokenUrl", "/oauth2/token")):
        want = f"https://{api}.execute-api.{ic.REGION}.amazonaws.com/{h.param('StageName')}{suffix}"
        if output(h, out) != want:
            f.append(f"[http] {out} is {output(h, out)!r}, not {want!r}")
    if output(h, "ApiId") != api:
        f.append(f"[http] ApiId is {output(h, 'ApiId')!r}, not the HTTP API's")
    return f


ROOT_PRINCIPALS = {f"arn:aws:iam::{ic.ACCOUNT}:root", ic.ACCOUNT, "*"}


def _policy_principals(d: Deployed, statement: dict) -> set[str]:
    principal = d.value(statement.get("Principal"))
    if principal == "*":
        return {"*"}
    out = set()
    for kind, values in (principal or {}).items() if isinstance(principal, dict) else []:
        for v in values if isinstance(values, list) else [values]:
            out.add(str(v) if kind == "AWS" else f"{kind}:{v}")
    if statement.get("NotPrincipal") is not None:
        out.add("*")  # everyone but someone: as good as everyone here
    return out


def _statement_matches(statement: dict, action: str) -> bool:
    def hits(patterns):
        patterns = patterns if isinstance(patterns, list) else [patterns]
        return any(isinstance(p, str) and ic._glob(p, re.IGNORECASE).fullmatch(action) for p in patterns)
    if "NotAction" in statement:
        return not hits(statement["NotAction"])
    return hits(statement.get("Action") or [])


def key_policy_principals(d: Deployed, policy: dict, action: str) -> set[str]:
    """Who the key policy lets do `action`: the principals of the Allow statements that match it
    (their conditions taken as holding), less those an unconditioned Deny names."""
    allowed, denied = set(), set()
    for st in (policy or {}).get("Statement") or []:
        if not _statement_matches(st, action):
            continue
        if st.get("Effect") == "Allow":
            allowed |= _policy_principals(d, st)
        elif st.get("Effect") == "Deny" and not st.get("Condition"):
            denied |= _policy_principals(d, st)
    return set() if "*" in denied else allowed - denied


def check_token_signing_key(ds: dict[str, Deployed]) -> list[str]:
    """The token signing keys (ECC_NIST_P256, SIGN_VERIFY, retained): in the key policy only the token
    function's role may kms:Sign, the root principal is granted no kms:Sign and no kms:* (it
    administers the key), nobody may create a grant (a grant could hand out kms:Sign), and the token
    function and the authorizer may read the public key; among the function roles' own policies too,
    only the token function's may kms:Sign; both functions name the same keys in
    SCIM_TOKEN_SIGNING_KEYS, the first of which the alias names."""
    f = []
    d = ds["plain"]
    keys = {k: r for k, r in d.of_type("AWS::KMS::Key") if (r.get("Properties") or {}).get("KeyUsage") == "SIGN_VERIFY"}
    if not keys:
        return ["no token signing key (AWS::KMS::Key with KeyUsage SIGN_VERIFY)"]
    role_of = {}
    for fn in (TOKEN_FUNCTION, AUTHORIZER_FUNCTION):
        target = getatt_target(d.props(fn).get("Role"))
        if not target:
            return [f"{fn} has no role of this template"]
        role_of[fn] = target[0]
    role_arn = {fn: d.resolver.getatt(role, "Arn") for fn, role in role_of.items()}
    arns = {}
    for kid, key in keys.items():
        p = key["Properties"]
        arns[kid] = d.resolver.getatt(kid, "Arn")
        if p.get("KeySpec") != "ECC_NIST_P256":
            f.append(f"{kid} KeySpec is {p.get('KeySpec')!r}, not ECC_NIST_P256 (ES256)")
        if key.get("DeletionPolicy") != "Retain" or key.get("UpdateReplacePolicy") != "Retain":
            f.append(f"{kid} is not retained on deletion and replacement: tokens it signed would stop verifying")
        policy = d.value(p.get("KeyPolicy"))
        signers = key_policy_principals(d, policy, "kms:Sign")
        if signers != {role_arn[TOKEN_FUNCTION]}:
            f.append(f"{kid}: the key policy lets {sorted(signers)} kms:Sign, not only the token function's role")
        for st in (policy or {}).get("Statement") or []:
            principals = _policy_principals(d, st)
            if st.get("Effect") != "Allow" or not principals & ROOT_PRINCIPALS:
                continue
            actions = st.get("Action") if isinstance(st.get("Action"), list) else [st.get("Action")]
            wide = [a for a in actions if isinstance(a, str) and ic._glob(a, re.IGNORECASE).fullmatch("kms:Sign")]
            if "NotAction" in st or wide or any(a in ("*", "kms:*") for a in actions):
                f.append(f"{kid}: statement {st.get('Sid')!r} grants {principals & ROOT_PRINCIPALS} "
                         f"{wide or actions or st.get('NotAction')}: the root principal administers the key, it must "
                         "not be granted kms:Sign or kms:*")
        granters = key_policy_principals(d, policy, "kms:CreateGrant")
        if granters:
            f.append(f"{kid}: the key policy lets {sorted(granters)} kms:CreateGrant, and a grant can hand out kms:Sign")
        readers = key_policy_principals(d, policy, "kms:GetPublicKey")
        for fn in (TOKEN_FUNCTION, AUTHORIZER_FUNCTION):
            if role_arn[fn] not in readers:
                f.append(f"{kid}: the key policy does not let {fn}'s role kms:GetPublicKey")
        ev = ic.Evaluator()
        may_sign = sorted(fn for fn in d.functions()
                          if ev.allowed(ic.role_statements(getatt_target(d.props(fn).get("Role"))[0], d.resolver),
                                        "kms:Sign", arns[kid], None))
        if may_sign != [TOKEN_FUNCTION]:
            f.append(f"{kid}: the identity policies let {may_sign} kms:Sign, not only {TOKEN_FUNCTION}")
    by_arn = {arn: kid for kid, arn in arns.items()}
    lists = {}
    for fn in (TOKEN_FUNCTION, AUTHORIZER_FUNCTION):
        value = d.value(((d.props(fn).get("Environment") or {}).get("Variables") or {}).get(SIGNING_KEYS_VAR))
        lists[fn] = [by_arn.get(x.strip(), x.strip()) for x in value.split(",")] if isinstance(value, str) else None
        if not lists[fn] or any(k not in keys for k in lists[fn]):
            f.append(f"{fn} {SIGNING_KEYS_VAR} is {value!r}: it must list signing keys of this stack")
    if lists[TOKEN_FUNCTION] != lists[AUTHORIZER_FUNCTION]:
        f.append(f"the token function and the authorizer name different keys: {lists}")
    aliases = [ref_target(r["Properties"].get("TargetKeyId")) for _, r in d.of_type("AWS::KMS::Alias")]
    if lists[TOKEN_FUNCTION] and lists[TOKEN_FUNCTION][0] not in aliases:
        f.append(f"no alias names the signing key {lists[TOKEN_FUNCTION][0]} (aliases target {aliases})")
    return f


def check_cost_defaults(ds: dict[str, Deployed]) -> list[str]:
    """Detailed API metrics and X-Ray are off by default and follow their parameters."""
    f = []
    for name, on in (("plain", False), ("domain", True)):
        d = ds[name]
        _, stage = api_stage(d)
        sp = stage["Properties"]
        if d.value(sp.get("TracingEnabled", False)) is not on:
            f.append(f"[{name}] stage TracingEnabled is {d.value(sp.get('TracingEnabled'))!r}")
        for s in d.value(sp.get("MethodSettings")) or []:
            if s.get("MetricsEnabled", False) is not on:
                f.append(f"[{name}] MethodSettings {s.get('HttpMethod')} {s.get('ResourcePath')} MetricsEnabled is {s.get('MetricsEnabled')!r}")
        for fn in d.functions():
            mode = d.value((d.props(fn).get("TracingConfig") or {}).get("Mode", "PassThrough"))
            if mode != ("Active" if on else "PassThrough"):
                f.append(f"[{name}] {fn} tracing is {mode!r}")
    return f


def check_backup(ds: dict[str, Deployed]) -> list[str]:
    """Point-in-time recovery always; by default (EnableBackup) a daily backup of the table, copied
    to the other region's vault when one is named; no backup resources with EnableBackup=false."""
    f = []
    for name in ("plain", "backup"):
        d = ds[name]
        table = d.props("ScimTable")
        if (table.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled") is not True:
            f.append(f"[{name}] point-in-time recovery is off")
    p0 = ds["plain"]
    if not p0.of_type("AWS::Backup::BackupPlan"):
        f.append("backups are off by default (EnableBackup)")
    for rtype in ("AWS::Backup::BackupPlan", "AWS::Backup::BackupSelection", "AWS::Backup::BackupVault"):
        if any(p0.active(k, EnableBackup="false") for k, _ in p0.of_type(rtype)):
            f.append(f"with EnableBackup=false, {rtype} is created")
    d = ds["backup"]
    plans = d.of_type("AWS::Backup::BackupPlan")
    if len(plans) != 1:
        return f + [f"[backup] expected one backup plan, found {[k for k, _ in plans]}"]
    plan_id, plan = plans[0]
    rules = d.value(plan["Properties"]["BackupPlan"].get("BackupPlanRule")) or []
    copies = [c for r in rules for c in (r.get("CopyActions") or [])]
    if not any(c.get("DestinationBackupVaultArn") == COPY_VAULT for c in copies):
        f.append(f"[backup] no rule copies to BackupCopyDestinationVaultArn ({copies!r})")
    if not rules or not all(r.get("ScheduleExpression") for r in rules):
        f.append("[backup] the plan has no scheduled rule")
    selections = [r for _, r in d.of_type("AWS::Backup::BackupSelection") if ref_target(r["Properties"].get("BackupPlanId")) == plan_id]
    table_arn = d.resolver.getatt("ScimTable", "Arn")
    if not any(d.value(x) == table_arn for s in selections for x in s["Properties"]["BackupSelection"].get("Resources") or []):
        f.append("[backup] no backup selection of the table in the plan")
    no_copy = Resolver(d.cfn, {**d.params, "BackupCopyDestinationVaultArn": ""})
    rules = no_copy.resolve(plan["Properties"]["BackupPlan"].get("BackupPlanRule")) or []
    if any(r.get("CopyActions") for r in rules):
        f.append("[backup] a copy action remains without BackupCopyDestinationVaultArn")
    return f


def _policies_by_role(d: Deployed) -> dict[str, list]:
    return {rid: [d.value(p["PolicyDocument"]) for p in r["Properties"].get("Policies") or []]
            for rid, r in d.of_type("AWS::IAM::Role")}


def unguarded_table_references(node, where="") -> list[str]:
    """Where the template refers to the table resource itself (Ref, GetAtt, ${ScimTable...}) other
    than in the CreateTable branch of an Fn::If: each would break the stack with UseExistingTable."""
    out = []
    if isinstance(node, dict):
        if node.get("Ref") == "ScimTable" or (isinstance(node.get("Fn::GetAtt"), list) and node["Fn::GetAtt"][0] == "ScimTable") \
                or (isinstance(node.get("Fn::GetAtt"), str) and node["Fn::GetAtt"].startswith("ScimTable.")):
            return [where]
        sub = node.get("Fn::Sub")
        text = sub[0] if isinstance(sub, list) else sub
        if isinstance(text, str) and "${ScimTable" in text:
            return [where]
        cond = node.get("Fn::If")
        if isinstance(cond, list) and len(cond) == 3 and cond[0] == "CreateTable":
            return unguarded_table_references(cond[2], where)
        for k, v in node.items():
            out += unguarded_table_references(v, f"{where}.{k}" if where else k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += unguarded_table_references(v, f"{where}[{i}]")
    return out


def check_existing_table(ds: dict[str, Deployed]) -> list[str]:
    """UseExistingTable=true (a restored table): the stack creates no table, so switching keeps
    its earlier one (which CloudFormation retains when a resource leaves the stack); every role,
    alarm and the backup plan name the same table as before (everything refers to it by
    TableName); the pipe reads ExistingTableStreamLabel; the template's rule refuses the switch
    without it."""
    f = []
    plain, restored = ds["plain"], ds["restored"]
    sam = {k: v for k, v in plain.sam.items() if k != "Resources"}
    sam["Resources"] = {k: v for k, v in plain.sam["Resources"].items() if k != "ScimTable"}
    for where in unguarded_table_references(sam):
        f.append(f"{where} refers to the table resource, absent with UseExistingTable: refer to it by TableName")
    if restored.of_type("AWS::DynamoDB::Table"):
        f.append("[restored] the stack still creates a table")
    policy = plain.res["ScimTable"].get("DeletionPolicy")
    if policy not in ("Retain", "RetainExceptOnCreate"):
        f.append(f"the table's DeletionPolicy is {policy!r}: leaving the stack would delete it")
    # the same grants, the stream's ARN aside (the pipe's role reads the restored table's stream)
    own_stream = plain.resolver.getatt("ScimTable", "StreamArn")
    before = json.loads(json.dumps(_policies_by_role(plain)).replace(own_stream, RESTORED_STREAM))
    after = _policies_by_role(restored)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if changed:
        f.append(f"[restored] the roles' policies differ from the stack's own table's: {changed}")
    _, pipe = restored.only("AWS::Pipes::Pipe", "the events pipe")
    if restored.value(pipe["Properties"].get("Source")) != RESTORED_STREAM:
        f.append(f"[restored] the pipe reads {restored.value(pipe['Properties'].get('Source'))!r}, not ExistingTableStreamLabel")
    table = plain.resolver.ref("ScimTable")
    for aid, a in restored.alarms():
        for m in alarm_metrics(restored, a["Properties"]):
            if m["namespace"] == "AWS/DynamoDB" and m["dims"].get("TableName") != table:
                f.append(f"[restored] {aid} reads table {m['dims'].get('TableName')!r}")
    without = set(rule_violations(restored.sam, {**restored.params, "ExistingTableStreamLabel": ""}))
    if not without - set(rule_violations(restored.sam, restored.params)):
        f.append("the template lets UseExistingTable=true deploy without ExistingTableStreamLabel")
    return f


def check_waf(ds: dict[str, Deployed]) -> list[str]:
    """CreateWebAcl: a web ACL with a per-IP rate rule associated with the stage; WebAclArn: that
    ACL associated; neither: no association."""
    f = []
    if ds["plain"].of_type("AWS::WAFv2::WebACLAssociation"):
        f.append("without WAF parameters a web ACL is associated")
    d = ds["backup"]
    api_id, _ = rest_api(d)
    acls = d.of_type("AWS::WAFv2::WebACL")
    if len(acls) != 1:
        return f + [f"[backup] CreateWebAcl made {len(acls)} web ACLs"]
    acl_id, acl = acls[0]
    rate = [r for r in d.value(acl["Properties"].get("Rules")) or []
            if (r.get("Statement") or {}).get("RateBasedStatement", {}).get("AggregateKeyType") == "IP"]
    if not rate or str(rate[0]["Statement"]["RateBasedStatement"].get("Limit")) != d.param("WebAclRateLimit") or "Block" not in (rate[0].get("Action") or {}):
        f.append("[backup] the web ACL has no blocking per-IP rate rule at WebAclRateLimit")
    for name, want in (("backup", ("getatt", acl_id)), ("external-waf", ("value", EXTERNAL_ACL))):
        dd = ds[name]
        assoc = dd.of_type("AWS::WAFv2::WebACLAssociation")
        if len(assoc) != 1:
            f.append(f"[{name}] expected one web ACL association, found {[k for k, _ in assoc]}")
            continue
        ap = assoc[0][1]["Properties"]
        got = getatt_target(ap.get("WebACLArn")) if want[0] == "getatt" else dd.value(ap.get("WebACLArn"))
        if (got[0] if want[0] == "getatt" and got else got) != want[1]:
            f.append(f"[{name}] the association uses {ap.get('WebACLArn')!r}")
        arn = dd.value(ap.get("ResourceArn"))
        stage_id, _ = api_stage(dd)
        if not isinstance(arn, str) or f"/restapis/{dd.resolver.ref(api_id)}/stages/{dd.resolver.ref(stage_id)}" not in arn:
            f.append(f"[{name}] the association is on {arn!r}, not the API stage")
    return f


CHECKS = [  # (check, the parameter sets it reads)
    (check_custom_domain, ("plain", "domain")),
    (check_aliases_and_deployments, ("plain", "domain", "backup", "http")),
    (check_rollback_beyond_lambda_errors, tuple(PARAMETER_SETS)),
    (check_latency_rollback, ("plain", "domain")),
    (check_api_invokes_alias, ("plain",)),
    (check_event_archive, ("plain", "backup")),
    (check_events_survive, ("plain",)),
    (check_pipe_monitoring, ("plain", "domain")),
    (check_pipe_filter, ("plain",)),
    (check_dashboard, ("plain", "http")),
    (check_logging, ("plain", "domain")),
    (check_application_log_filter, tuple(PARAMETER_SETS)),
    (check_timeouts, ("plain",)),
    (check_pretraffic_hooks, ("plain", "domain")),
    (check_capacity, ("plain",)),
    (check_gateway_responses, ("plain",)),
    (check_alarm_topic, ("plain", "domain")),
    (check_alarm_catalogue, ("plain", "http")),
    (check_throttling, ("plain",)),
    (check_keyless_routes, ("plain",)),
    (check_token_signing_key, ("plain",)),
    (check_cost_defaults, ("plain", "domain")),
    (check_backup, ("plain", "backup")),
    (check_waf, ("plain", "backup", "external-waf")),
    (check_existing_table, ("plain", "restored")),
    (check_http_api, ("plain", "domain", "http", "http-domain")),
]


def deploy_sets(sam: dict, names) -> dict[str, Deployed]:
    return {name: Deployed(sam, name, PARAMETER_SETS[name]) for name in names}


def run_check(check, ds) -> list[str]:
    try:
        return check(ds)
    except CheckError as e:
        return [str(e)]
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        return [f"the template is not shaped as expected ({type(e).__name__}: {e})"]


# ---------------------------------------------------------------------------------------------
# Self-test: the evaluator, then every check against a broken copy of the template
# ---------------------------------------------------------------------------------------------


def _ev_cases(ev: EventPattern) -> dict[str, list[str]]:
    def expect(label, pattern, event, want):
        got = ev.matches(pattern, event)
        return [] if got == want else [f"{label}: expected {'match' if want else 'no match'}"]

    record = {"dynamodb": {"Keys": {"sk": {"S": "USERNAME#alice"}}, "NewImage": {"ttl": {"N": "5"}}}}
    return {
        "prefix-ignored": expect("prefix USER# vs USERNAME#", {"dynamodb": {"Keys": {"sk": {"S": [{"prefix": "USER#"}]}}}}, record, False)
        + expect("prefix USERN", {"dynamodb": {"Keys": {"sk": {"S": [{"prefix": "USERN"}]}}}}, record, True),
        "exists-on-objects": expect("exists false on an object value matches (leaf-only)", {"dynamodb": {"NewImage": {"ttl": [{"exists": False}]}}}, record, True)
        + expect("exists false on the leaf", {"dynamodb": {"NewImage": {"ttl": {"N": [{"exists": False}]}}}}, record, False)
        + expect("exists false, parent absent", {"dynamodb": {"OldImage": {"ttl": {"N": [{"exists": False}]}}}}, record, True),
        "anything-but-ignored": expect("anything-but value", {"a": [{"anything-but": ["x", "y"]}]}, {"a": "x"}, False)
        + expect("anything-but prefix", {"a": [{"anything-but": {"prefix": "TENANT#"}}]}, {"a": "TENANT#1"}, False)
        + expect("anything-but other", {"a": [{"anything-but": "x"}]}, {"a": "z"}, True),
        "or-as-and": expect("$or", {"s": ["a"], "$or": [{"x": ["1"]}, {"y": ["2"]}]}, {"s": "a", "x": "1"}, True),
        "anything-but-matches-missing": expect("anything-but on an absent field", {"a": [{"anything-but": "x"}]}, {"b": "z"}, False),
        "array-needs-all": expect("array value: any element", {"resources": ["arn:1"]}, {"resources": ["arn:0", "arn:1"]}, True),
    }


def self_test_evaluator() -> list[str]:
    failures = []
    cases = _ev_cases(EventPattern())
    for mutant in PATTERN_MUTANTS:
        for failure in cases[mutant]:
            failures.append(f"evaluator case {mutant}: {failure}")
        if not _ev_cases(EventPattern(mutant))[mutant]:
            failures.append(f"evaluator case for {mutant!r} also passes against that mutant, so it cannot catch it")
    return failures


def _res(sam, logical_id):
    return sam["Resources"][logical_id]


def _mutate_rule_source(sam):
    _res(sam, "EventsPipeStateRule")["Properties"]["EventPattern"]["source"] = ["aws.events"]


def _filter(sam, patterns):
    _res(sam, "EventsPipe")["Properties"]["SourceParameters"]["FilterCriteria"]["Filters"] = [{"Pattern": json.dumps(p)} for p in patterns]


OLD_FILTER = [{"dynamodb": {"Keys": {"sk": {"S": [{"prefix": "USER#"}, {"prefix": "GROUP#"}, {"prefix": "MEMBER#"}]}}}}]
SUFFIX_FILTER = [{"dynamodb": {"Keys": {"pk": {"S": [{"anything-but": {"suffix": "#CURSOR"}}]}, "sk": {"S": [{"prefix": "USER#"}, {"prefix": "GROUP#"}]}}}},
                 {"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "TENANT#"}]}, "sk": {"S": [{"prefix": "MEMBER#"}]}}}}]
OBJECT_EXISTS_FILTER = [{"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "TENANT#"}]}, "sk": {"S": [{"prefix": "USER#"}, {"prefix": "GROUP#"}]}},
                                      "NewImage": {"expires_at": [{"exists": False}]}, "OldImage": {"expires_at": [{"exists": False}]}}},
                        {"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "TENANT#"}]}, "sk": {"S": [{"prefix": "MEMBER#"}]}}}}]


def _drop_list_throttles(sam):
    settings = _res(sam, "ScimApi")["Properties"]["MethodSettings"]
    _res(sam, "ScimApi")["Properties"]["MethodSettings"] = [s for s in settings if s["ResourcePath"] != "/~1scim~1v2~1Groups"]


def _drop_bulk_throttle(sam):
    settings = _res(sam, "ScimApi")["Properties"]["MethodSettings"]
    _res(sam, "ScimApi")["Properties"]["MethodSettings"] = [s for s in settings if s["ResourcePath"] != "/~1scim~1v2~1Bulk"]


def _drop_token_throttle(sam):
    settings = _res(sam, "ScimApi")["Properties"]["MethodSettings"]
    _res(sam, "ScimApi")["Properties"]["MethodSettings"] = [s for s in settings if s["ResourcePath"] != "/~1oauth2~1token"]


def _drop_portal_oauth_throttle(sam):
    settings = _res(sam, "ScimApi")["Properties"]["MethodSettings"]
    _res(sam, "ScimApi")["Properties"]["MethodSettings"] = [
        s for s in settings if (s["ResourcePath"], s["HttpMethod"]) != ("/~1portal~1api~1oauth~1{id}", "DELETE")]


def _signing_key_policy(sam):
    """The policy of the (first) token signing key, whatever its logical id after rotations."""
    key = next(r for r in sam["Resources"].values()
               if r.get("Type") == "AWS::KMS::Key" and r["Properties"].get("KeyUsage") == "SIGN_VERIFY")
    return key["Properties"]["KeyPolicy"]


def _key_statement(sam, sid):
    return next(st for st in _signing_key_policy(sam)["Statement"] if st.get("Sid") == sid)


def _key_policy_without(sam, sid):
    policy = _signing_key_policy(sam)
    policy["Statement"] = [st for st in policy["Statement"] if st.get("Sid") != sid]


def _drop_copy(sam):
    del _res(sam, "BackupPlan")["Properties"]["BackupPlan"]["BackupPlanRule"][0]["CopyActions"]


def _constant_rate(sam):
    _res(sam, "ScimWebAcl")["Properties"]["Rules"][0]["Statement"]["RateBasedStatement"]["AggregateKeyType"] = "CONSTANT"


def _drop_dashboard_widget(sam):
    node = _res(sam, "Dashboard")["Properties"]["DashboardBody"]
    text = node["Fn::Sub"][0] if isinstance(node["Fn::Sub"], list) else node["Fn::Sub"]
    body = json.loads(text)
    body["widgets"] = [w for w in body["widgets"] if "p99 duration" not in (w.get("properties") or {}).get("title", "")]
    if isinstance(node["Fn::Sub"], list):
        node["Fn::Sub"][0] = json.dumps(body)
    else:
        node["Fn::Sub"] = json.dumps(body)


MUTATIONS = [  # (check, what is broken, how)
    (check_custom_domain, "no Route 53 record", lambda s: s["Resources"].pop("ApiDomainRecord")),
    (check_custom_domain, "TenantUrl always the execute-api URL",
     lambda s: s["Outputs"]["TenantUrl"].update(Value={"Fn::Sub": "https://${ScimApi}.execute-api.${AWS::Region}.amazonaws.com/${StageName}/scim/v2"})),
    (check_custom_domain, "execute-api endpoint left on", lambda s: _res(s, "ScimApi")["Properties"].update(DisableExecuteApiEndpoint=False)),
    (check_aliases_and_deployments, "a function without its error alarm", lambda s: _res(s, "UsersCreateFunction")["Properties"].pop("DeploymentPreference")),
    (check_aliases_and_deployments, "a 5XX count instead of a rate",
     lambda s: _res(s, "Api5xxRateAlarm")["Properties"]["Metrics"][0].update(Expression="errors")),
    (check_rollback_beyond_lambda_errors, "users-create's 5XX share not among its rollback alarms",
     lambda s: _res(s, "UsersCreateFunction")["Properties"]["DeploymentPreference"]["Alarms"].remove({"Ref": "UsersCreateFunctionServerErrorsAlarm"})),
    (check_rollback_beyond_lambda_errors, "users-create's 5XX share read from users-get's ServerErrors",
     lambda s: _res(s, "UsersCreateFunctionServerErrorsAlarm")["Properties"]["Metrics"][1]["MetricStat"]["Metric"]["Dimensions"][0].update(
         Value={"Ref": "UsersGetFunction"})),
    (check_rollback_beyond_lambda_errors, "a 5XX count, not a share of invocations",
     lambda s: _res(s, "UsersGetFunctionServerErrorsAlarm")["Properties"]["Metrics"][0].update(Expression="errors")),
    (check_rollback_beyond_lambda_errors, "events not rolled back on the pipe's enrichment failures",
     lambda s: _res(s, "EventsFunction")["Properties"]["DeploymentPreference"]["Alarms"].remove({"Ref": "EventsPipeEnrichmentFailedAlarm"})),
    (check_latency_rollback, "users-get's latency alarm not among its rollback alarms",
     lambda s: _res(s, "UsersGetFunction")["Properties"]["DeploymentPreference"]["Alarms"].remove({"Ref": "UsersGetFunctionLatencyAnomalyAlarm"})),
    (check_latency_rollback, "the authorizer's band drawn around users-get",
     lambda s: _res(s, "AuthorizerFunctionLatencyAnomalyAlarm")["Properties"]["Metrics"][0]["MetricStat"]["Metric"]["Dimensions"][0].update(
         Value={"Ref": "UsersGetFunction"})),
    (check_latency_rollback, "a fixed threshold instead of a band",
     lambda s: _res(s, "BulkFunctionLatencyAnomalyAlarm")["Properties"]["Metrics"][1].update(Expression="p99 * 0 + 1000")),
    (check_latency_rollback, "firing below the band",
     lambda s: _res(s, "DiscoveryFunctionLatencyAnomalyAlarm")["Properties"].update(ComparisonOperator="LessThanLowerThreshold")),
    (check_api_invokes_alias, "authorizer invoked by function ARN",
     lambda s: _res(s, "ScimApi")["Properties"]["Auth"]["Authorizers"]["ScimKeyAuthorizer"].update(FunctionArn={"Fn::GetAtt": ["AuthorizerFunction", "Arn"]})),
    (check_api_invokes_alias, "pipe enrichment by function ARN",
     lambda s: _res(s, "EventsPipe")["Properties"].update(Enrichment={"Fn::GetAtt": ["EventsFunction", "Arn"]})),
    (check_event_archive, "no archive", lambda s: s["Resources"].pop("EventArchive")),
    (check_events_survive, "no bisecting", lambda s: _res(s, "EventsPipe")["Properties"]["SourceParameters"]["DynamoDBStreamParameters"].pop(
        "OnPartialBatchItemFailure")),
    (check_events_survive, "the delivery time as the event's time",
     lambda s: _res(s, "EventsPipe")["Properties"]["TargetParameters"]["EventBridgeEventBusParameters"].pop("Time")),
    (check_events_survive, "failures logged without their records",
     lambda s: _res(s, "EventsPipe")["Properties"]["LogConfiguration"].pop("IncludeExecutionData")),
    (check_events_survive, "the pipe's log kept LogRetentionDays (1 allowed)",
     lambda s: _res(s, "EventsPipeLogGroup")["Properties"].update(RetentionInDays={"Ref": "LogRetentionDays"})),
    (check_events_survive, "an archive of 7 days", lambda s: s["Parameters"]["EventArchiveRetentionDays"].update(Default=7)),
    (check_pipe_monitoring, "no TargetStageFailed alarm", lambda s: s["Resources"].pop("EventsPipeTargetFailedAlarm")),
    (check_pipe_monitoring, "state rule on the wrong source", _mutate_rule_source),
    (check_pipe_filter, "the old USER#/GROUP#/MEMBER# filter", lambda s: _filter(s, OLD_FILTER)),
    (check_pipe_filter, "anything-but suffix (event bus only)", lambda s: _filter(s, SUFFIX_FILTER)),
    (check_pipe_filter, "exists on a DynamoDB JSON object", lambda s: _filter(s, OBJECT_EXISTS_FILTER)),
    (check_dashboard, "no per-route p99 widget", _drop_dashboard_widget),
    (check_logging, "text logs", lambda s: s["Globals"]["Function"]["LoggingConfig"].update(LogFormat="Text")),
    (check_application_log_filter, "Lambda's application filter at the ApplicationLogLevel parameter",
     lambda s: s["Globals"]["Function"]["LoggingConfig"].update(ApplicationLogLevel={"Ref": "ApplicationLogLevel"})),
    (check_application_log_filter, "the authorizer's own LoggingConfig at WARN",
     lambda s: _res(s, "AuthorizerFunction")["Properties"]["LoggingConfig"].update(ApplicationLogLevel="WARN")),
    (check_application_log_filter, "RUST_LOG fixed at info",
     lambda s: s["Globals"]["Function"]["Environment"]["Variables"].update(RUST_LOG="info")),
    (check_timeouts, "a 30 s timeout", lambda s: s["Globals"]["Function"].update(Timeout=30)),
    (check_timeouts, "routes at 25 s", lambda s: s["Globals"]["Function"].update(Timeout=25)),
    (check_timeouts, "Bulk at the routes' timeout", lambda s: _res(s, "BulkFunction")["Properties"].pop("Timeout")),
    (check_pretraffic_hooks, "users-patch deployed without the hook",
     lambda s: _res(s, "UsersPatchFunction")["Properties"]["DeploymentPreference"].pop("Hooks")),
    (check_pretraffic_hooks, "the hook not named CodeDeployHook_*",
     lambda s: _res(s, "PreTrafficHookFunction")["Properties"].update(FunctionName={"Fn::Sub": "${AWS::StackName}-pretraffic"})),
    (check_pretraffic_hooks, "the hook may invoke any function",
     lambda s: _res(s, "PreTrafficHookFunction")["Properties"]["Policies"][0]["Statement"][1].update(Resource="*")),
    (check_pretraffic_hooks, "a function without a canary",
     lambda s: _res(s, "DiscoveryFunction")["Properties"].update(FunctionName={"Fn::Sub": "${AWS::StackName}-discovery2"})),
    (check_capacity, "the authorizer without a reservation",
     lambda s: _res(s, "AuthorizerFunction")["Properties"].pop("ReservedConcurrentExecutions")),
    (check_capacity, "a read function at the write family's parameter",
     lambda s: _res(s, "UsersGetFunction")["Properties"].update(ReservedConcurrentExecutions={"Ref": "WriteConcurrency"})),
    (check_capacity, "a reservation 0 cannot take away",
     lambda s: _res(s, "BulkFunction")["Properties"].update(ReservedConcurrentExecutions=4)),
    (check_capacity, "defaults above the headroom threshold", lambda s: s["Parameters"]["ReadConcurrency"].update(Default=80)),
    (check_capacity, "headroom read from ConcurrentExecutions",
     lambda s: _res(s, "ConcurrencyAlarm")["Properties"].update(MetricName="ConcurrentExecutions")),
    (check_capacity, "a throttled function answered API Gateway's bare 500",
     lambda s: _res(s, "ScimApi")["Properties"]["GatewayResponses"].pop("INTEGRATION_FAILURE")),
    (check_gateway_responses, "a 429 served as application/json",
     lambda s: _res(s, "ScimApi")["Properties"]["GatewayResponses"]["THROTTLED"]["ResponseParameters"]["Headers"].update(
         {"Content-Type": "'application/json'"})),
    (check_gateway_responses, "a 504 whose body says 500",
     lambda s: _res(s, "ScimApi")["Properties"]["GatewayResponses"]["INTEGRATION_TIMEOUT"]["ResponseTemplates"].update(
         {"application/json": '{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"500"}'})),
    (check_alarm_topic, "no alarm-topic rule", lambda s: s["Rules"].pop("AlarmTopicRequired")),
    (check_alarm_catalogue, "no SystemErrors alarm", lambda s: s["Resources"].pop("TableSystemErrorsAlarm")),
    (check_alarm_catalogue, "no brute-force (ThrottledClients) alarm", lambda s: s["Resources"].pop("ThrottledClientsAlarm")),
    (check_alarm_catalogue, "the token function in no throttle alarm", lambda s: s["Resources"].pop("TokenThrottlesAlarm")),
    (check_throttling, "GET /Groups at the default throttle", _drop_list_throttles),
    (check_throttling, "POST /Bulk at the default throttle", _drop_bulk_throttle),
    (check_keyless_routes, "discovery without the authorizer",
     lambda s: _res(s, "DiscoveryFunction")["Properties"]["Events"]["ServiceProviderConfig"]["Properties"].update(Auth={"Authorizer": "NONE"})),
    (check_keyless_routes, "POST /oauth2/token at the default throttle", _drop_token_throttle),
    (check_keyless_routes, "DELETE /portal/api/oauth/{id} at the default throttle", _drop_portal_oauth_throttle),
    (check_token_signing_key, "the root principal may kms:Sign",
     lambda s: _key_statement(s, "AccountAdministersTheKey")["Action"].append("kms:Sign")),
    (check_token_signing_key, "the root principal granted kms:*",
     lambda s: _key_statement(s, "AccountAdministersTheKey").update(Action=["kms:*"])),
    (check_token_signing_key, "the authorizer's role may kms:Sign in the key policy",
     lambda s: _key_statement(s, "OnlyTheTokenFunctionSigns").update(
         Principal={"AWS": [{"Fn::GetAtt": ["OauthTokenFunctionRole", "Arn"]}, {"Fn::GetAtt": ["AuthorizerFunctionRole", "Arn"]}]})),
    (check_token_signing_key, "grants allowed (kms:Create* includes CreateGrant)", lambda s: _key_policy_without(s, "NoGrants")),
    (check_token_signing_key, "a route function's role may kms:Sign",
     lambda s: _res(s, "DiscoveryFunction")["Properties"].setdefault("Policies", []).append(
         {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Sign", "Resource": "*"}]})),
    (check_cost_defaults, "X-Ray on by default", lambda s: s["Parameters"]["Tracing"].update(Default="Active")),
    (check_backup, "no cross-region copy", _drop_copy),
    (check_backup, "backups off by default", lambda s: s["Parameters"]["EnableBackup"].update(Default="false")),
    (check_waf, "a stage-wide instead of a per-IP rate rule", _constant_rate),
    (check_existing_table, "a role naming the created table by its resource",
     lambda s: _res(s, "UsersGetTenantRole")["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0].update(
         Resource={"Fn::GetAtt": ["ScimTable", "Arn"]})),
    (check_existing_table, "the table created whatever UseExistingTable says", lambda s: _res(s, "ScimTable").pop("Condition")),
    (check_existing_table, "the table deleted when it leaves the stack", lambda s: _res(s, "ScimTable").update(DeletionPolicy="Delete")),
    (check_existing_table, "no rule for the stream ARN", lambda s: s["Rules"].pop("ExistingTableNeedsItsStream")),
    (check_http_api, "a route missing from the HTTP API", lambda s: _http_paths(s)["/scim/v2/Users/{id}"].pop("delete")),
    (check_http_api, "a route invoking another function",
     lambda s: _http_paths(s)["/scim/v2/Users/{id}"]["get"]["x-amazon-apigateway-integration"].update(uri=_invocation("users-delete:live"))),
    (check_http_api, "a route invoking the function, not its alias",
     lambda s: _http_paths(s)["/scim/v2/Users"]["get"]["x-amazon-apigateway-integration"].update(uri=_invocation("users-list"))),
    (check_http_api, "a route invoking an alias that does not exist",
     lambda s: _http_paths(s)["/scim/v2/Users"]["post"]["x-amazon-apigateway-integration"].update(uri=_invocation("users-create:old"))),
    (check_http_api, "the authorizer invoked without its alias", lambda s: _http_authorizer(s).update(authorizerUri=_invocation("authorizer"))),
    (check_http_api, "a keyed route without the authorizer", lambda s: _http_paths(s)["/scim/v2/Groups/{id}"]["patch"].update(security=[])),
    (check_http_api, "no keyed $default route", lambda s: _http_paths(s).pop("$default")),
    (check_http_api, "payload format 1.0",
     lambda s: _http_paths(s)["/scim/v2/Bulk"]["post"]["x-amazon-apigateway-integration"].update(payloadFormatVersion="1.0")),
    (check_http_api, "the authorizer's answer cached 300 s whatever AuthorizerCacheTtl says",
     lambda s: _http_authorizer(s).update(authorizerResultTtlInSeconds=300)),
    (check_http_api, "the authorizer cached per header only (an allowlist answer reused across addresses)",
     lambda s: _http_authorizer(s).update(identitySource="$request.header.Authorization")),
    (check_http_api, "the authorizer answering IAM policies", lambda s: _http_authorizer(s).update(enableSimpleResponses=False)),
    (check_http_api, "users-get not invokable by the HTTP API", lambda s: s["Resources"].pop("UsersGetHttpPermission")),
    (check_http_api, "settings invokable for its first route only",
     lambda s: _res(s, "SettingsHttpPermission")["Properties"].update(
         SourceArn={"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${ScimHttpApi}/*/GET/scim/v2/Settings"})),
    (check_http_api, "GET /Users at the default throttle on the HTTP stage",
     lambda s: _res(s, "ScimHttpStage")["Properties"]["RouteSettings"].pop("GET /scim/v2/Users")),
    (check_http_api, "no refusal in the HTTP access log",
     lambda s: _res(s, "ScimHttpStage")["Properties"]["AccessLogSettings"].update(Format='{"status":"$context.status"}')),
    (check_http_api, "the unused REST API left reachable",
     lambda s: _res(s, "ScimApi")["Properties"].update(DisableExecuteApiEndpoint={"Fn::If": ["HasDomain", True, False]})),
    (check_http_api, "the custom domain mapped to the REST API under HTTP", lambda s: _res(s, "ApiBasePathMapping").update(Condition="HasDomain")),
    (check_http_api, "TenantUrl the REST API's under HTTP",
     lambda s: s["Outputs"]["TenantUrl"]["Value"].update({"Fn::If": ["HasDomain", {"Fn::Sub": "https://${DomainName}/scim/v2"},
                                                                      {"Fn::Sub": "https://${ScimApi}.execute-api.${AWS::Region}.amazonaws.com/${StageName}/scim/v2"}]})),
    (check_http_api, "the HTTP API made under ApiType=REST too", lambda s: _res(s, "ScimHttpApi").pop("Condition")),
    (check_http_api, "WAF accepted with an HTTP API", lambda s: s["Rules"].pop("WafNeedsRestApi")),
    (check_http_api, "the HTTP API's endpoint switch at the body's root, where OpenAPI 3 ignores it",
     lambda s: _res(s, "ScimHttpApi")["Properties"]["Body"].update(
         {"x-amazon-apigateway-endpoint-configuration": _res(s, "ScimHttpApi")["Properties"]["Body"].pop("servers")[0]["x-amazon-apigateway-endpoint-configuration"]})),
    (check_alarm_catalogue, "the API 5XX rate read from the REST API's metric under HTTP",
     lambda s: _res(s, "Api5xxRateAlarm")["Properties"]["Metrics"][1]["MetricStat"]["Metric"].update(MetricName="5XXError")),
]


def _invocation(target: str) -> dict:
    """An invocation URI of the function named `<bin>` or `<bin>:alias` (its name after the stack's)
    by ARN, as the HTTP API's body names them."""
    fn, _, alias = target.partition(":")
    suffix = f":{alias}" if alias else ""
    return {"Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
                       f"arn:${{AWS::Partition}}:lambda:${{AWS::Region}}:${{AWS::AccountId}}:function:${{AWS::StackName}}-{fn}{suffix}/invocations"}


def _http_paths(sam) -> dict:
    return _res(sam, "ScimHttpApi")["Properties"]["Body"]["paths"]


def _http_authorizer(sam) -> dict:
    return _res(sam, "ScimHttpApi")["Properties"]["Body"]["components"]["securitySchemes"]["ScimKeyAuthorizer"]["x-amazon-apigateway-authorizer"]


def self_test(sam: dict) -> bool:
    failures = self_test_evaluator()
    for failure in failures:
        print(f"template self-test FAILED {failure}")
    covered = set()
    for check, what, mutate in MUTATIONS:
        broken = copy.deepcopy(sam)
        mutate(broken)
        sets = dict(CHECKS)[check]
        try:
            ds = deploy_sets(broken, sets)
            found = run_check(check, ds)
        except CheckError as e:
            found = []
            print(f"template self-test FAILED {check.__name__} / {what}: the broken copy does not translate ({e})")
            failures.append(what)
            continue
        if not found:
            print(f"template self-test FAILED {check.__name__} still passes with {what}, so it cannot catch that")
            failures.append(what)
        else:
            covered.add(check)
    for check, _ in CHECKS:
        if check not in covered and not any(c is check for c, _, _ in MUTATIONS):
            print(f"template self-test FAILED {check.__name__} has no mutation showing it can fail")
            failures.append(check.__name__)
    if failures:
        print(f"template self-test FAILED: {len(failures)} problem(s)")
        return False
    print(f"template self-test: {len(PATTERN_MUTANTS)} evaluator cases ok (each also fails against its mutant); "
          f"{len(MUTATIONS)} broken copies of the template, each caught by the check it targets "
          f"(every one of the {len(CHECKS)} checks)")
    return True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--self-test", action="store_true", help="show each check failing on a broken copy")
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    args = parser.parse_args(argv)
    sam = ic.load_yaml(args.template)
    if args.self_test:
        return 0 if self_test(sam) else 1
    try:
        ds = deploy_sets(sam, PARAMETER_SETS)
    except CheckError as e:
        print(f"template check FAILED: {e}")
        return 1
    problems = []
    for check, sets in CHECKS:
        for problem in run_check(check, {k: ds[k] for k in sets}):
            problems.append(f"{check.__name__}: {problem}")
    for problem in problems:
        print(problem)
    if problems:
        print(f"template check FAILED: {len(problems)} problem(s)")
        return 1
    print(f"template check: {len(CHECKS)} checks hold under {len(PARAMETER_SETS)} parameter sets "
          f"({', '.join(PARAMETER_SETS)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
