#!/usr/bin/env python3
"""Offline check of what each Lambda function's IAM role may do on the DynamoDB table.

    python3 infra/iam_check.py              compare the template with infra/iam-expected.tsv
    python3 infra/iam_check.py --write      regenerate infra/iam-expected.tsv (review the diff!)
    python3 infra/iam_check.py --markdown   print the table as markdown (infra/README.md)
    python3 infra/iam_check.py --self-test  prove the evaluator on hand-written policies

How it works, with no AWS call and no credentials:

1. infra/template.yaml is translated with samtranslator (the transform SAM applies at deploy time;
   the package aws-sam-translator) into plain CloudFormation, with the parameter defaults, a fixed
   region, account and partition, and placeholder S3 URIs for the local code.
2. For every AWS::Lambda::Function, its role (an AWS::IAM::Role of the template) is looked up and
   its statements collected: inline Policies, ManagedPolicyArns (the AWS managed policies SAM adds
   are known here by their published documents; any other managed policy cannot be evaluated and
   fails the check), and AWS::IAM::Policy / AWS::IAM::ManagedPolicy resources attached to the role.
   Intrinsics (Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::If, ...) are resolved to concrete values.
3. Each role is evaluated the way IAM evaluates an identity policy, for every item family of the
   table layout (a sample partition key each) and every DynamoDB data action: Action / NotAction
   with IAM wildcards, Resource / NotResource against the table (or index) ARN, conditions on
   dynamodb:LeadingKeys (StringEquals/StringLike and their negations, IgnoreCase, IfExists,
   ForAllValues/ForAnyValue, Null), an explicit Deny overriding any Allow. Whatever the evaluator
   does not understand (another condition key, an unknown operator, a policy variable, an
   unresolvable intrinsic) counts as satisfied in an Allow and as not satisfied in a Deny, so the
   result can only over-report access, never under-report it.
4. The result is compared with infra/iam-expected.tsv (function, family, allowed actions). Any
   difference fails; a difference that grants more is labelled WIDENED. Independently of that
   table, a few invariants (the guarantees infra/README.md states) must hold, and no role may be
   granted a non-data DynamoDB action (DeleteTable, UpdateTable, backups, restores, TTL, streams,
   ...) on the table.
5. KMS: every KMS action (KMS_ACTIONS) is evaluated the same way for every role, on each KMS key
   of the template, on another key of the account and at account level (Resource "*"). The grants
   must be exactly KMS_EXPECTED on the token signing keys (the token function kms:Sign and
   kms:GetPublicKey, the authorizer kms:GetPublicKey) and nothing anywhere else. The key policy,
   which KMS reads first, is checked by infra/template_check.py.

Not modelled, on purpose (each can only narrow real access, so ignoring it over-reports):
permission boundaries, service control policies, session policies, the table's resource policy.
A KMS key policy can grant on its own (it is not only a narrowing): the token signing key's is
checked by infra/template_check.py, not here.
"""

from __future__ import annotations

import argparse
import copy
import functools
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "template.yaml"
EXPECTED = HERE / "iam-expected.tsv"

# Stand-ins for the deployment: only the shape of the ARNs matters.
REGION = "eu-west-1"
ACCOUNT = "123456789012"
PARTITION = "aws"
STACK = "scim-serverless"
TABLE_ID = "ScimTable"  # logical id of the table under test
INDEX_NAME = "gsi1"

# Item families of the table layout, by partition key (dynamodb:LeadingKeys sees nothing else),
# each with a concrete sample key. "membership-index" is the partition key of gsi1, queried on
# the index ARN; every other family is addressed on the table ARN.
FAMILIES: list[tuple[str, str, str]] = [
    ("tenant-data", "TENANT#acme", "table"),
    ("membership", "TENANT#acme#GROUP#g1", "table"),
    ("membership-index", "TENANT#acme#USER#u1", "index"),
    ("checkpoint", "TENANT#acme#CURSOR", "table"),
    ("rate", "TENANT#acme#RATE", "table"),
    ("audit", "TENANT#acme#AUDIT#2026-11-29", "table"),
    ("tenant-config", "CONF#acme", "table"),
    ("key", "KEY#acme.0123456789abcdef", "table"),  # layout 5: a key id names its tenant
    ("key-pointer", "KEY#0123456789abcdef", "table"),  # where a key of layout 4 went (its old id)
    ("key-use", "KEYUSE#acme.0123456789abcdef", "table"),
    ("oauth-client", "OAUTH#acme.0123456789abcdef0123", "table"),  # layout 5: a client id names its tenant
    ("oauth-pointer", "OAUTH#0123456789abcdef0123", "table"),  # where a client of layout 4 went
    ("registry", "TENANTS", "table"),
    ("server", "SERVER", "table"),
    ("layout", "LAYOUT", "table"),
]
FAMILY_NAMES = [f for f, _, _ in FAMILIES]

# Tenant-scoped credentials. A function whose SCIM_TENANT_ROLE_ARN names a role of the template
# makes every call of a request with a session of that role tagged tenant=<the request's
# tenant> (shared/src/store/sessions.rs); its rows are "<function>@tenant", evaluated with
# aws:PrincipalTag/tenant = SESSION_TENANT on that tenant's sample keys. The same session must
# reach nothing of OTHER_TENANTS (another tenant, and tenants whose ids start with the session's,
# against patterns that forget a separator). The items of a tenant are the TENANT_FAMILIES.
SESSION_TENANT = "acme"
OTHER_TENANTS = ["globex", "acme2", "acme_x"]
TENANT_FAMILIES = ["tenant-data", "membership", "membership-index", "checkpoint", "rate", "audit", "tenant-config",
                   "key", "key-use", "oauth-client"]
TENANT_TAG = "tenant"
SESSION_SUFFIX = "@tenant"


def families_of(tenant: str) -> list[tuple[str, str, str]]:
    """FAMILIES with the tenant's items keyed for `tenant` (the shared items as they are)."""
    return [(f, pk.replace(f"#{SESSION_TENANT}", f"#{tenant}", 1) if f in TENANT_FAMILIES else pk, kind)
            for f, pk, kind in FAMILIES]

READ_ACTIONS = ["GetItem", "BatchGetItem", "Query", "Scan", "PartiQLSelect"]
WRITE_ACTIONS = ["PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "PartiQLInsert", "PartiQLUpdate", "PartiQLDelete"]
# ConditionCheckItem reads nothing back and writes nothing, but it is an item action inside
# TransactWriteItems, so it is evaluated like the others.
DATA_ACTIONS = READ_ACTIONS + WRITE_ACTIONS + ["ConditionCheckItem"]
INDEX_ACTIONS = ["Query", "Scan", "PartiQLSelect"]  # the only data actions that address an index
BATCH_ACTIONS = {"BatchGetItem", "BatchWriteItem"}  # one request, several partition keys

# Every other DynamoDB action that can name the table, its indexes, streams, backups or exports.
# No function role may be granted any of them. Stream reads are here too: a function reading the
# stream would see every item of every family, past any LeadingKeys condition.
NON_DATA_ACTIONS = [
    "CreateTable", "DeleteTable", "UpdateTable", "DescribeTable", "DescribeTableReplicaAutoScaling",
    "UpdateTableReplicaAutoScaling", "CreateTableReplica", "DeleteTableReplica",
    "CreateGlobalTable", "UpdateGlobalTable", "UpdateGlobalTableSettings", "UpdateGlobalTableVersion",
    "CreateBackup", "DeleteBackup", "DescribeBackup", "ListBackups", "RestoreTableFromBackup",
    "RestoreTableToPointInTime", "RestoreTableFromAwsBackup", "StartAwsBackupJob",
    "UpdateContinuousBackups", "DescribeContinuousBackups", "ExportTableToPointInTime",
    "DescribeExport", "ImportTable", "DescribeImport", "UpdateTimeToLive", "DescribeTimeToLive",
    "TagResource", "UntagResource", "ListTagsOfResource", "UpdateContributorInsights",
    "DescribeContributorInsights", "EnableKinesisStreamingDestination",
    "DisableKinesisStreamingDestination", "UpdateKinesisStreamingDestination",
    "DescribeKinesisStreamingDestination", "PutResourcePolicy", "DeleteResourcePolicy",
    "GetResourcePolicy", "DescribeStream", "GetRecords", "GetShardIterator", "ListStreams",
    "GetAbacStatus", "UpdateAbacStatus",
]

# AWS managed policies a SAM function role may carry, with their published documents. Any other
# managed policy fails the check: its document is not known offline.
KNOWN_MANAGED_POLICIES: dict[str, list[dict]] = {
    "service-role/AWSLambdaBasicExecutionRole": [
        {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"},
    ],
    "AWSXrayWriteOnlyAccess": [
        {
            "Effect": "Allow",
            "Action": [
                "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                "xray:GetSamplingTargets", "xray:GetSamplingStatisticSummaries",
            ],
            "Resource": ["*"],
        },
    ],
}

# Every KMS action (the service authorization reference), for what a role may do with the stack's
# KMS keys, with any other key of the account and at account level (Resource "*": CreateKey,
# ListKeys, ...). Actions a statement names are added to these, so a new one is not missed.
KMS_ACTIONS = [
    "CancelKeyDeletion", "ConnectCustomKeyStore", "CreateAlias", "CreateCustomKeyStore", "CreateGrant",
    "CreateKey", "Decrypt", "DeleteAlias", "DeleteCustomKeyStore", "DeleteImportedKeyMaterial",
    "DeriveSharedSecret", "DescribeCustomKeyStores", "DescribeKey", "DisableKey", "DisableKeyRotation",
    "DisconnectCustomKeyStore", "EnableKey", "EnableKeyRotation", "Encrypt", "GenerateDataKey",
    "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "GenerateDataKeyWithoutPlaintext",
    "GenerateMac", "GenerateRandom", "GetKeyPolicy", "GetKeyRotationStatus", "GetParametersForImport",
    "GetPublicKey", "ImportKeyMaterial", "ListAliases", "ListGrants", "ListKeyPolicies", "ListKeyRotations",
    "ListKeys", "ListResourceTags", "ListRetirableGrants", "PutKeyPolicy", "ReEncryptFrom", "ReEncryptTo",
    "ReplicateKey", "RetireGrant", "RevokeGrant", "RotateKeyOnDemand", "ScheduleKeyDeletion", "Sign",
    "SynchronizeMultiRegionKey", "TagResource", "UntagResource", "UpdateAlias", "UpdateCustomKeyStore",
    "UpdateKeyDescription", "UpdatePrimaryRegion", "Verify", "VerifyMac",
]
OTHER_KMS_KEY = f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/0a1b2c3d-another-key-of-the-account"
# What the identity policies may grant on the stack's token signing keys (AWS::KMS::Key with
# KeyUsage SIGN_VERIFY; during a rotation there are two): the token function signs and reads the
# public half, the authorizer reads the public half. Nothing else, for no other function, on no
# other key and at no account level. (The key policy, checked by infra/template_check.py, is what
# KMS reads first: it lets only the token function's role sign.)
KMS_EXPECTED: dict[str, set[str]] = {
    "oauth-token": {"GetPublicKey", "Sign"},
    "authorizer": {"GetPublicKey"},
}

# Route functions that list or search: their only writes are checkpoints and the rate counter.
# (`resources` lists and searches the declared types too, but it also serves their write routes:
# it is one of BULK_OPERATIONS, not one of these.)
LIST_FUNCTIONS = ["users-list", "users-search", "search", "groups-list", "groups-search"]

# The declared resource types' function (GET, POST /{type}, POST /{type}/.search, GET, PUT, PATCH,
# DELETE /{type}/{id}): its items are in the tenant partition like users', and a declared type has
# no members, so it has no access to membership items or to the membership index.
RESOURCES_FUNCTION = "resources"
NO_MEMBERSHIP_FUNCTIONS = [RESOURCES_FUNCTION]

# POST /Bulk runs each operation through the code of its single route: its role may do exactly
# what the roles of these functions may do together (the union, family by family), no more.
# `resources` serves the declared types' write routes (and their reads, whose grants are the same
# item families).
BULK_FUNCTION = "bulk"
BULK_OPERATIONS = ["users-create", "users-replace", "users-patch", "users-delete",
                   "groups-create", "groups-replace", "groups-patch", "groups-delete", RESOURCES_FUNCTION]

ABBREVIATIONS = {
    "GetItem": "G", "BatchGetItem": "B", "Query": "Q", "Scan": "S", "PartiQLSelect": "pS",
    "PutItem": "P", "UpdateItem": "U", "DeleteItem": "D", "BatchWriteItem": "W",
    "ConditionCheckItem": "C", "PartiQLInsert": "pI", "PartiQLUpdate": "pU", "PartiQLDelete": "pD",
}


class Unevaluable(Exception):
    """The template holds something whose effect cannot be known offline."""


class Unresolved:
    """A value the offline resolver cannot know (an import, an unknown attribute, ...)."""

    def __init__(self, what: str):
        self.what = what

    def __repr__(self) -> str:
        return f"<unresolved {self.what}>"


NOVALUE = object()  # Ref AWS::NoValue: the property or list element disappears


# ---------------------------------------------------------------------------------------------
# Template loading and translation
# ---------------------------------------------------------------------------------------------


def load_yaml(path: Path) -> dict:
    """CloudFormation YAML: short-form intrinsics become their long form; dates stay strings."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {
        ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def intrinsic(loader, suffix, node):
        name = suffix if suffix in ("Ref", "Condition") else "Fn::" + suffix
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if suffix == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    Loader.add_multi_constructor("!", intrinsic)
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=Loader)


def parameter_values(template: dict) -> dict:
    values = {name: p["Default"] for name, p in (template.get("Parameters") or {}).items() if "Default" in p}
    values.update({"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": PARTITION,
                   "AWS::StackName": STACK, "AWS::URLSuffix": "amazonaws.com",
                   "AWS::StackId": f"arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/offline"})
    return values


def translate(template: dict, params: dict) -> dict:
    """The SAM transform, run locally by samtranslator (what CloudFormation runs at deploy time)."""
    transforms = template.get("Transform") or []
    if isinstance(transforms, str):
        transforms = [transforms]
    if not any(str(t).startswith("AWS::Serverless") for t in transforms):
        return copy.deepcopy(template)
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    sam = copy.deepcopy(template)
    # Local code paths become S3 placeholders, as `sam validate` does: the transform only checks
    # their form, and the code does not matter to IAM.
    for logical_id, resource in (sam.get("Resources") or {}).items():
        props = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = f"s3://offline-placeholder/{logical_id}/{key}"

    class OfflineRegion:  # all the transform reads from a boto3 session; no AWS call is made
        region_name = REGION

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # the transform logs feature-toggle chatter
    try:
        translator = Translator(None, Parser(), boto_session=OfflineRegion())
        # Managed policy names resolve from the map bundled with samtranslator; a name it does not
        # know stays a name (never an IAM ListPolicies call) and fails below as unknown.
        return translator.translate(sam, parameter_values=dict(params), get_managed_policy_map=lambda: {})
    except Exception as e:  # InvalidDocumentException and friends carry the useful text
        raise Unevaluable(f"SAM transform failed: {e}") from e
    finally:
        logging.disable(previous)


# ---------------------------------------------------------------------------------------------
# Intrinsic functions
# ---------------------------------------------------------------------------------------------


class _UnresolvedInSub(Exception):
    def __init__(self, value: Unresolved):
        self.value = value


class Resolver:
    """Resolves intrinsics of the translated template to concrete strings, or Unresolved."""

    def __init__(self, template: dict, params: dict):
        self.resources = template.get("Resources") or {}
        self.conditions = template.get("Conditions") or {}
        self.mappings = template.get("Mappings") or {}
        self.params = params

    def arn(self, service: str, rest: str) -> str:
        return f"arn:{PARTITION}:{service}:{REGION}:{ACCOUNT}:{rest}"

    def ref(self, name: str):
        if name == "AWS::NoValue":
            return NOVALUE
        if name in self.params:
            return self.params[name]
        resource = self.resources.get(name)
        if resource is None:
            return Unresolved(f"Ref {name}")
        rtype = resource.get("Type")
        props = resource.get("Properties") or {}
        if rtype == "AWS::IAM::ManagedPolicy":
            return f"arn:{PARTITION}:iam::{ACCOUNT}:policy/{name}"
        name_property = {
            "AWS::DynamoDB::Table": "TableName",
            "AWS::Lambda::Function": "FunctionName",
            "AWS::IAM::Role": "RoleName",
            "AWS::IAM::Policy": "PolicyName",
        }.get(rtype)
        if name_property and name_property in props:
            return self.resolve(props[name_property])
        return f"{STACK}-{name}-OFFLINE"  # the physical name CloudFormation would generate

    def getatt(self, logical_id: str, attribute):
        resource = self.resources.get(logical_id)
        if resource is None or isinstance(attribute, Unresolved):
            return Unresolved(f"GetAtt {logical_id}.{attribute}")
        if resource.get("Type") == "AWS::DynamoDB::Table":
            name = self.ref(logical_id)
            if isinstance(name, Unresolved):
                return name
            table_arn = self.arn("dynamodb", f"table/{name}")
            if attribute == "Arn":
                return table_arn
            if attribute == "StreamArn":
                return f"{table_arn}/stream/2026-01-01T00:00:00.000"
        if resource.get("Type") == "AWS::KMS::Key" and attribute in ("Arn", "KeyId"):
            key_id = f"{logical_id}-OFFLINE"
            return self.arn("kms", f"key/{key_id}") if attribute == "Arn" else key_id
        if attribute == "Arn":
            # stands for the ARN of a resource that is not the table: it matches only wildcards
            return self.arn("cloudformation", f"stack/{STACK}/resource/{logical_id}")
        return Unresolved(f"GetAtt {logical_id}.{attribute}")

    def sub(self, argument):
        if isinstance(argument, list):
            text, variables = argument[0], {k: self.resolve(v) for k, v in (argument[1] or {}).items()}
        else:
            text, variables = argument, {}
        if not isinstance(text, str):
            return Unresolved("Fn::Sub of a non-string")

        def replace(match):
            inner = match.group(1)
            if inner.startswith("!"):
                return "${" + inner[1:] + "}"
            if inner in variables:
                value = variables[inner]
            elif "." in inner:
                value = self.getatt(*inner.split(".", 1))
            else:
                value = self.ref(inner)
            if isinstance(value, Unresolved):
                raise _UnresolvedInSub(value)
            return str(value)

        try:
            return re.sub(r"\$\{([^}]*)\}", replace, text)
        except _UnresolvedInSub as e:
            return e.value

    def condition(self, name: str):
        if name not in self.conditions:
            return Unresolved(f"Condition {name}")
        return self.condition_expression(self.conditions[name])

    def condition_expression(self, expr):
        if isinstance(expr, dict) and len(expr) == 1:
            (key, value), = expr.items()
            if key == "Condition":
                return self.condition(value)
            if key == "Fn::Equals":
                a, b = self.resolve(value[0]), self.resolve(value[1])
                if isinstance(a, Unresolved) or isinstance(b, Unresolved):
                    return Unresolved("Fn::Equals")
                return str(a) == str(b)
            parts = [self.condition_expression(v) for v in value] if isinstance(value, list) else []
            if any(isinstance(p, Unresolved) for p in parts):
                return Unresolved(key)
            if key == "Fn::Not" and len(parts) == 1:
                return not parts[0]
            if key == "Fn::And":
                return all(parts)
            if key == "Fn::Or":
                return any(parts)
        return Unresolved(f"condition {expr!r}")

    def resolve(self, node):
        if isinstance(node, list):
            return [r for r in (self.resolve(x) for x in node) if r is not NOVALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, value), = node.items()
            if key == "Ref":
                return self.ref(value)
            if key == "Fn::GetAtt":
                logical_id, attribute = value.split(".", 1) if isinstance(value, str) else value
                return self.getatt(logical_id, self.resolve(attribute))
            if key == "Fn::Sub":
                return self.sub(value)
            if key == "Fn::Join":
                separator, items = value[0], self.resolve(value[1])
                if isinstance(items, Unresolved) or any(isinstance(i, Unresolved) for i in items):
                    return Unresolved("Fn::Join")
                return str(separator).join(str(i) for i in items)
            if key == "Fn::If":
                chosen = self.condition(value[0])
                if isinstance(chosen, Unresolved):
                    return chosen
                return self.resolve(value[1] if chosen else value[2])
            if key == "Fn::Select":
                index, items = self.resolve(value[0]), self.resolve(value[1])
                try:
                    return items[int(index)]
                except (TypeError, ValueError, IndexError, KeyError):
                    return Unresolved("Fn::Select")
            if key == "Fn::FindInMap":
                name, top, second = (self.resolve(v) for v in value[:3])
                try:
                    return self.resolve(self.mappings[name][top][second])
                except (KeyError, TypeError):
                    return Unresolved("Fn::FindInMap")
            if key.startswith("Fn::"):
                return Unresolved(key)
        out = {}
        for key, value in node.items():
            resolved = self.resolve(value)
            if resolved is not NOVALUE:
                out[key] = resolved
        return out


# ---------------------------------------------------------------------------------------------
# Policies and their evaluation
# ---------------------------------------------------------------------------------------------


@dataclass
class Statement:
    effect: str
    actions: list | None
    not_actions: list | None
    resources: list | None
    not_resources: list | None
    condition: dict
    origin: str


def _as_list(value):
    if value is None:
        return None
    return value if isinstance(value, list) else [value]


def statements_of(document, origin: str) -> list[Statement]:
    if isinstance(document, Unresolved) or not isinstance(document, dict):
        raise Unevaluable(f"{origin}: policy document cannot be resolved ({document!r})")
    raw = document.get("Statement")
    raw = _as_list(raw) or []
    out = []
    for i, st in enumerate(raw):
        where = f"{origin} statement {st.get('Sid', i) if isinstance(st, dict) else i}"
        if not isinstance(st, dict):
            raise Unevaluable(f"{where}: cannot be resolved ({st!r})")
        effect = st.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise Unevaluable(f"{where}: Effect {effect!r}")
        condition = st.get("Condition") or {}
        if not isinstance(condition, dict):
            raise Unevaluable(f"{where}: Condition cannot be resolved ({condition!r})")
        out.append(Statement(effect, _as_list(st.get("Action")), _as_list(st.get("NotAction")),
                             _as_list(st.get("Resource")), _as_list(st.get("NotResource")), condition, where))
    return out


@functools.lru_cache(maxsize=None)
def _glob(pattern: str, flags: int = 0) -> re.Pattern:
    """IAM wildcards: * any sequence (also empty), ? exactly one character; ${*} ${?} ${$} literal."""
    out = []
    i = 0
    while i < len(pattern):
        for escape, literal in (("${*}", "*"), ("${?}", "?"), ("${$}", "$")):
            if pattern.startswith(escape, i):
                out.append(re.escape(literal))
                i += len(escape)
                break
        else:
            c = pattern[i]
            out.append(".*" if c == "*" else "." if c == "?" else re.escape(c))
            i += 1
    return re.compile("".join(out), re.DOTALL | flags)


def _has_policy_variable(pattern: str) -> bool:
    return "${" in re.sub(r"\$\{[*?$]\}", "", pattern)


def _substitute(pattern: str, variables: dict) -> str | None:
    """The pattern with its policy variables (${aws:PrincipalTag/tenant}, ...) replaced by the
    request's values (keys case-insensitive); None when one is not known."""
    missing = []

    def value(match):
        name = match.group(1)
        if name in "*?$":
            return match.group(0)
        if name.lower() not in variables:
            missing.append(name)
            return ""
        return variables[name.lower()]

    out = re.sub(r"\$\{([^}]*)\}", value, pattern)
    return None if missing else out


STRING_OPERATORS = {  # base operator -> (comparison, negated)
    "StringEquals": ("equals", False),
    "StringNotEquals": ("equals", True),
    "StringEqualsIgnoreCase": ("equals-ignore-case", False),
    "StringNotEqualsIgnoreCase": ("equals-ignore-case", True),
    "StringLike": ("like", False),
    "StringNotLike": ("like", True),
}
KNOWN_CONDITION_KEYS = {"dynamodb:leadingkeys"}

MUTANTS = [
    "all-statements-must-hold",  # the misreading behind the original bug: a conditioned Allow restricts the others
    "ignore-deny",
    "exact-action",
    "notaction-as-action",
    "literal-resource",
    "like-as-equals",
    "forall-missing-key-false",
    "unknown-condition-unsatisfied",
    "single-key-batches",
    "unknown-managed-policy-empty",
    "policy-variables-unknown",  # ${aws:PrincipalTag/...} left unresolved (lenient in an Allow)
]


class Evaluator:
    """IAM's evaluation of identity policies, for DynamoDB item actions. `mutant` deliberately
    breaks one rule; the self-test proves each of its cases fails against its mutant."""

    def __init__(self, mutant: str | None = None):
        assert mutant is None or mutant in MUTANTS, mutant
        self.mutant = mutant

    # -- matching --------------------------------------------------------------------------

    def _action_matches(self, pattern, action: str, unresolved: bool) -> bool:
        if not isinstance(pattern, str) or _has_policy_variable(pattern):
            return unresolved
        if self.mutant == "exact-action":
            return pattern.lower() == action.lower()
        return _glob(pattern, re.IGNORECASE).fullmatch(action) is not None

    def _resource_matches(self, pattern, arn: str, unresolved: bool) -> bool:
        if not isinstance(pattern, str) or _has_policy_variable(pattern):  # ${aws:...}: known at request time only
            return unresolved
        if self.mutant == "literal-resource":
            return pattern == arn
        return _glob(pattern).fullmatch(arn) is not None

    def _string_matches(self, comparison: str, value: str, pattern: str) -> bool:
        if comparison == "like" and self.mutant == "like-as-equals":
            comparison = "equals"
        if comparison == "equals":
            return value == pattern
        if comparison == "equals-ignore-case":
            return value.lower() == pattern.lower()
        return _glob(pattern).fullmatch(value) is not None

    # -- conditions ------------------------------------------------------------------------

    def _condition_entry(self, operator: str, key: str, patterns, context: dict) -> bool | None:
        """True or False, or None when the evaluator cannot know (unknown key or operator)."""
        if not isinstance(key, str) or key.lower() not in KNOWN_CONDITION_KEYS:
            return None
        values = context.get(key.lower())  # None: the key is absent from the request
        patterns = _as_list(patterns)
        if not patterns or any(not isinstance(p, (str, bool, int)) for p in patterns):
            return None
        patterns = [str(p).lower() if isinstance(p, bool) else str(p) for p in patterns]
        qualifier, base = None, operator
        for prefix in ("ForAllValues:", "ForAnyValue:"):
            if operator.startswith(prefix):
                qualifier, base = prefix[:-1], operator[len(prefix):]
        if_exists = base.endswith("IfExists")
        if if_exists:
            base = base[: -len("IfExists")]
        absent = not values
        if base == "Null":
            if qualifier or if_exists or any(p not in ("true", "false") for p in patterns):
                return None
            return any(absent == (p == "true") for p in patterns)
        if any(_has_policy_variable(p) for p in patterns):
            if self.mutant == "policy-variables-unknown":
                return None
            substituted = [_substitute(p, context.get("variables") or {}) for p in patterns]
            if any(p is None for p in substituted):
                return None
            patterns = substituted
        if base not in STRING_OPERATORS:
            return None
        comparison, negated = STRING_OPERATORS[base]
        if absent:
            if if_exists:
                return True
            if qualifier == "ForAllValues":
                return self.mutant != "forall-missing-key-false"  # vacuously true: the trap
            if qualifier == "ForAnyValue":
                return False
            return negated  # a negated operator on a missing key is true, a positive one false

        def holds(value: str) -> bool:
            matched = any(self._string_matches(comparison, value, p) for p in patterns)
            return not matched if negated else matched

        if qualifier == "ForAllValues":
            return all(holds(v) for v in values)
        if qualifier == "ForAnyValue":
            return any(holds(v) for v in values)
        if len(values) == 1:
            return holds(values[0])
        return None  # a single-valued operator on several keys: not defined well enough to trust

    def conditions_hold(self, condition: dict, context: dict, effect: str) -> bool:
        lenient = effect == "Allow"  # unknown: satisfied in an Allow, not satisfied in a Deny
        if self.mutant == "unknown-condition-unsatisfied":
            lenient = False
        for operator, block in condition.items():
            if not isinstance(block, dict):  # malformed: as unknown
                if not lenient:
                    return False
                continue
            for key, patterns in block.items():
                result = self._condition_entry(str(operator), key, patterns, context)
                if not (lenient if result is None else result):
                    return False
        return True

    # -- statements ------------------------------------------------------------------------

    def _targets(self, st: Statement, action: str, arn: str) -> bool:
        lenient = st.effect == "Allow"  # an unresolved pattern widens an Allow, never a Deny
        if st.actions is not None:
            action_ok = any(self._action_matches(p, action, lenient) for p in st.actions)
        elif st.not_actions is not None:
            hit = any(self._action_matches(p, action, not lenient) for p in st.not_actions)
            action_ok = hit if self.mutant == "notaction-as-action" else not hit
        else:
            action_ok = lenient
        if st.resources is not None:
            resource_ok = any(self._resource_matches(p, arn, lenient) for p in st.resources)
        elif st.not_resources is not None:
            resource_ok = not any(self._resource_matches(p, arn, not lenient) for p in st.not_resources)
        else:
            resource_ok = lenient
        return action_ok and resource_ok

    def allowed(self, statements: list[Statement], action: str, arn: str, leading_keys: tuple | None,
                variables: dict | None = None) -> bool:
        """IAM's decision for one request: explicit Deny > Allow > implicit deny. `variables`: the
        values of policy variables in this request (aws:principaltag/tenant of a session)."""
        context = {} if leading_keys is None else {"dynamodb:leadingkeys": list(leading_keys)}
        context["variables"] = {k.lower(): v for k, v in (variables or {}).items()}
        allow = False
        for st in statements:
            if not self._targets(st, action, arn):
                continue
            holds = self.conditions_hold(st.condition, context, st.effect)
            if st.effect == "Deny":
                if holds and self.mutant != "ignore-deny":
                    return False
            elif holds:
                allow = True
            elif self.mutant == "all-statements-must-hold":
                return False
        return allow

    def contexts(self, action: str, pk: str, others: list[str]) -> list[tuple | None]:
        """The requests through which `action` reaches an item with partition key `pk`."""
        if action == "Scan":
            return [None]  # a scan names no partition key and reads every one
        if action == "PartiQLSelect":
            return [(pk,), None]  # a SELECT without a key condition is a scan
        if action in BATCH_ACTIONS and self.mutant != "single-key-batches":
            # one request may mix keys: ForAnyValue is satisfied by any one of them
            return [(pk,)] + [(pk, other) for other in others]
        return [(pk,)]

    def family_actions(self, statements: list[Statement], table_arn: str, index_arn: str,
                       families: list | None = None, variables: dict | None = None) -> dict[str, list[str]]:
        families = families or FAMILIES
        result = {}
        for family, pk, kind in families:
            arn = table_arn if kind == "table" else index_arn
            others = [p for _, p, k in families if k == kind and p != pk]
            actions = INDEX_ACTIONS if kind == "index" else DATA_ACTIONS
            result[family] = sorted(
                a for a in actions
                if any(self.allowed(statements, f"dynamodb:{a}", arn, ctx, variables)
                       for ctx in self.contexts(a, pk, others))
            )
        return result

    def non_data_grants(self, statements: list[Statement], table_arn: str) -> list[str]:
        named = {
            p.split(":", 1)[1]
            for st in statements for p in (st.actions or []) + (st.not_actions or [])
            if isinstance(p, str) and p.lower().startswith("dynamodb:") and not any(c in p for c in "*?")
        }
        candidates = sorted(set(NON_DATA_ACTIONS) | {n for n in named if n not in DATA_ACTIONS})
        arns = [table_arn, f"{table_arn}/index/{INDEX_NAME}", f"{table_arn}/stream/2026-01-01T00:00:00.000",
                f"{table_arn}/backup/01767225600000-0a1b2c3d", f"{table_arn}/export/01767225600000-0a1b2c3d"]
        return [a for a in candidates if any(self.allowed(statements, f"dynamodb:{a}", arn, None) for arn in arns)]

    def kms_grants(self, statements: list[Statement], targets: dict[str, str]) -> dict[str, list[str]]:
        """KMS actions allowed on each target (label -> ARN, "*" for account-level requests)."""
        named = {
            p.split(":", 1)[1]
            for st in statements for p in (st.actions or []) + (st.not_actions or [])
            if isinstance(p, str) and p.lower().startswith("kms:") and not any(c in p for c in "*?")
        }
        candidates = sorted(set(KMS_ACTIONS) | named)
        return {label: [a for a in candidates if self.allowed(statements, f"kms:{a}", arn, None)]
                for label, arn in targets.items()}


# ---------------------------------------------------------------------------------------------
# Roles of the template
# ---------------------------------------------------------------------------------------------


def managed_policy_statements(arn, resolver: Resolver, resources: dict, origin: str, mutant: str | None = None) -> list[Statement]:
    if isinstance(arn, str):
        m = re.fullmatch(r"arn:[a-z-]+:iam::aws:policy/(.+)", arn)
        if m and m.group(1) in KNOWN_MANAGED_POLICIES:
            return statements_of({"Statement": KNOWN_MANAGED_POLICIES[m.group(1)]}, f"{origin} {m.group(1)}")
        m = re.fullmatch(rf"arn:{PARTITION}:iam::{ACCOUNT}:policy/(.+)", arn)
        if m and resources.get(m.group(1), {}).get("Type") == "AWS::IAM::ManagedPolicy":
            document = resolver.resolve((resources[m.group(1)].get("Properties") or {}).get("PolicyDocument"))
            return statements_of(document, f"{origin} {m.group(1)}")
    if mutant == "unknown-managed-policy-empty":
        return []
    raise Unevaluable(f"{origin}: managed policy {arn!r} is not known offline, so what it grants cannot be "
                      f"evaluated (inline its statements, or add its published document to KNOWN_MANAGED_POLICIES)")


def role_statements(role_id: str, resolver: Resolver, mutant: str | None = None) -> list[Statement]:
    resources = resolver.resources
    role = resolver.resolve(resources[role_id].get("Properties") or {})
    out: list[Statement] = []
    for i, policy in enumerate(_as_list(role.get("Policies")) or []):
        if not isinstance(policy, dict):
            raise Unevaluable(f"{role_id} policy {i}: cannot be resolved ({policy!r})")
        out += statements_of(policy.get("PolicyDocument"), f"{role_id}/{policy.get('PolicyName', i)}")
    for arn in _as_list(role.get("ManagedPolicyArns")) or []:
        out += managed_policy_statements(arn, resolver, resources, role_id, mutant)
    role_name = resolver.ref(role_id)
    for other_id, other in resources.items():
        if other.get("Type") not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            continue
        roles = resolver.resolve((other.get("Properties") or {}).get("Roles")) or []
        if isinstance(roles, Unresolved) or any(isinstance(r, Unresolved) for r in roles):
            raise Unevaluable(f"{other_id}: cannot tell which roles it is attached to")
        if role_name in roles:
            out += statements_of(resolver.resolve(other["Properties"].get("PolicyDocument")), other_id)
    return out


def function_roles(sam: dict, cfn: dict) -> dict[str, str]:
    """Function name (its Binary build property, else its logical id) -> logical id of its role."""
    out = {}
    resources = cfn.get("Resources") or {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        source = (sam.get("Resources") or {}).get(logical_id) or resource
        binary = ((source.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary") or logical_id
        role = (resource.get("Properties") or {}).get("Role")
        target = role.get("Fn::GetAtt") if isinstance(role, dict) else None
        if isinstance(target, str):
            target = target.split(".", 1)
        if not (isinstance(target, list) and target[1:] == ["Arn"]
                and resources.get(target[0], {}).get("Type") == "AWS::IAM::Role"):
            raise Unevaluable(f"{logical_id}: its role ({role!r}) is not an AWS::IAM::Role of this template")
        if binary in out:
            raise Unevaluable(f"two functions are named {binary!r}")
        out[binary] = target[0]
    return out


def function_tenant_roles(sam: dict, cfn: dict, roles: dict[str, str]) -> dict[str, str]:
    """Function name -> logical id of the role its SCIM_TENANT_ROLE_ARN names (what the code
    assumes per tenant), for the functions that have one."""
    out = {}
    resources = cfn.get("Resources") or {}
    by_id = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") == "AWS::Lambda::Function":
            source = (sam.get("Resources") or {}).get(logical_id) or resource
            binary = ((source.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary") or logical_id
            by_id[binary] = resource
    for function, resource in by_id.items():
        env = (((resource.get("Properties") or {}).get("Environment") or {}).get("Variables") or {})
        if "SCIM_TENANT_ROLE_ARN" not in env:
            continue
        value = env["SCIM_TENANT_ROLE_ARN"]
        target = value.get("Fn::GetAtt") if isinstance(value, dict) else None
        if isinstance(target, str):
            target = target.split(".", 1)
        if not (isinstance(target, list) and target[1:] == ["Arn"]
                and resources.get(target[0], {}).get("Type") == "AWS::IAM::Role"):
            raise Unevaluable(f"{function}: SCIM_TENANT_ROLE_ARN ({value!r}) is not the ARN of an AWS::IAM::Role of this template")
        if target[0] == roles.get(function):
            raise Unevaluable(f"{function}: its tenant role is its own execution role")
        out[function] = target[0]
    return out


def trust_violations(function: str, tenant_role: str, exec_role: str, resolver: Resolver) -> list[str]:
    """The tenant role's trust policy: only its function's execution role may assume it, only
    with a tenant tag and no other tag (so a session always names exactly one tenant)."""
    doc = resolver.resolve(((resolver.resources[tenant_role].get("Properties") or {}).get("AssumeRolePolicyDocument")))
    statements = _as_list((doc or {}).get("Statement")) if isinstance(doc, dict) else []
    exec_arn = resolver.getatt(exec_role, "Arn")
    out = []
    if not statements:
        out.append(f"{tenant_role}: no trust policy")
    for st in statements:
        if not isinstance(st, dict) or st.get("Effect") != "Allow":
            continue
        principals = _as_list((st.get("Principal") or {}).get("AWS")) if isinstance(st.get("Principal"), dict) else ["*"]
        if principals != [exec_arn] or set(st.get("Principal") or {}) != {"AWS"}:
            out.append(f"{tenant_role} trusts {st.get('Principal')!r}: only {function}'s execution role may assume it")
        actions = sorted(a.lower() for a in _as_list(st.get("Action")) or [])
        if actions != ["sts:assumerole", "sts:tagsession"]:
            out.append(f"{tenant_role} trust allows {actions}: exactly sts:AssumeRole with sts:TagSession")
        cond = st.get("Condition") or {}
        tag = (cond.get("StringLike") or {}).get(f"aws:RequestTag/{TENANT_TAG}")
        keys = (cond.get("ForAllValues:StringEquals") or {}).get("aws:TagKeys")
        if tag not in ("?*", ["?*"]) or _as_list(keys) != [TENANT_TAG] or set(cond) != {"StringLike", "ForAllValues:StringEquals"}:
            out.append(f"{tenant_role} trust does not require exactly one tag, a non-empty {TENANT_TAG!r} ({cond!r})")
    return out


@dataclass
class Analysis:
    results: dict[str, dict[str, list[str]]]  # function (or function@tenant) -> family -> allowed actions
    non_data: dict[str, list[str]]  # function -> non-data actions it is granted on the table
    roles: dict[str, str]
    kms: dict[str, dict[str, list[str]]]  # function -> KMS target -> allowed KMS actions
    signing_keys: list[str]  # labels of the targets that are token signing keys
    tenant_roles: dict[str, str]  # function -> logical id of its tenant role
    # function@tenant -> another tenant -> family -> what the session may do on that tenant's items
    cross_tenant: dict[str, dict[str, dict[str, list[str]]]]
    assumable: dict[str, list[str]]  # function (or function@tenant) -> roles it may assume
    trust: list[str]  # trust policy problems


def analyse(template_path: Path, evaluator: Evaluator | None = None) -> Analysis:
    evaluator = evaluator or Evaluator()
    sam = load_yaml(template_path)
    params = parameter_values(sam)
    cfn = translate(sam, params)
    resolver = Resolver(cfn, params)
    if (resolver.resources.get(TABLE_ID) or {}).get("Type") != "AWS::DynamoDB::Table":
        raise Unevaluable(f"{TABLE_ID} is not an AWS::DynamoDB::Table of the template")
    table_arn = resolver.getatt(TABLE_ID, "Arn")
    if not isinstance(table_arn, str):
        raise Unevaluable(f"the ARN of {TABLE_ID} cannot be resolved ({table_arn!r})")
    index_arn = f"{table_arn}/index/{INDEX_NAME}"
    roles = function_roles(sam, cfn)
    targets, signing_keys = kms_targets(resolver)
    tenant_roles = function_tenant_roles(sam, cfn, roles)
    all_roles = {rid: resolver.getatt(rid, "Arn") for rid, r in resolver.resources.items() if r.get("Type") == "AWS::IAM::Role"}
    all_roles["a role of another stack"] = f"arn:{PARTITION}:iam::{ACCOUNT}:role/another-stack-role"
    results, non_data, kms, cross, assumable, trust = {}, {}, {}, {}, {}, []
    variables = {f"aws:PrincipalTag/{TENANT_TAG}": SESSION_TENANT}
    principals = [(f, roles[f], None) for f in roles] + [(f + SESSION_SUFFIX, r, variables) for f, r in tenant_roles.items()]
    for name, role_id, session in sorted(principals):
        statements = role_statements(role_id, resolver)
        results[name] = evaluator.family_actions(statements, table_arn, index_arn, FAMILIES, session)
        non_data[name] = evaluator.non_data_grants(statements, table_arn)
        kms[name] = evaluator.kms_grants(statements, targets)
        assumable[name] = sorted(rid for rid, arn in all_roles.items()
                                 if any(evaluator.allowed(statements, f"sts:{a}", arn, None, session)
                                        for a in ("AssumeRole", "TagSession")))
        if session:
            cross[name] = {t: evaluator.family_actions(statements, table_arn, index_arn, families_of(t), session)
                           for t in OTHER_TENANTS}
    for function, tenant_role in tenant_roles.items():
        trust += trust_violations(function, tenant_role, roles[function], resolver)
    return Analysis(results, non_data, roles, kms, signing_keys, tenant_roles, cross, assumable, trust)


def kms_targets(resolver: Resolver) -> tuple[dict[str, str], list[str]]:
    """Every KMS key of the template (by logical id), another key of the account, and "*"."""
    targets, signing = {}, []
    for logical_id, resource in resolver.resources.items():
        if resource.get("Type") != "AWS::KMS::Key":
            continue
        targets[logical_id] = resolver.getatt(logical_id, "Arn")
        if (resource.get("Properties") or {}).get("KeyUsage") == "SIGN_VERIFY":
            signing.append(logical_id)
    targets["another key of the account"] = OTHER_KMS_KEY
    targets["account level (Resource *)"] = "*"
    return targets, signing


def kms_violations(analysis: Analysis) -> list[str]:
    """Identity-policy KMS grants against KMS_EXPECTED: exactly those, on every token signing key."""
    out = []
    if not analysis.signing_keys:
        out.append("the template has no token signing key (AWS::KMS::Key with KeyUsage SIGN_VERIFY)")
    for function in sorted(analysis.kms):
        for target, actions in analysis.kms[function].items():
            want = KMS_EXPECTED.get(function, set()) if target in analysis.signing_keys else set()
            extra, missing = sorted(set(actions) - want), sorted(want - set(actions))
            if extra:
                out.append(f"KMS      {function} may {','.join('kms:' + a for a in extra)} on {target}: "
                           "only the token function signs (and reads the public key), the authorizer reads "
                           "the public key, and nothing else uses KMS")
            if missing:
                out.append(f"KMS      {function} lacks {','.join('kms:' + a for a in missing)} on {target}")
    return out


# ---------------------------------------------------------------------------------------------
# Expectations, invariants, reports
# ---------------------------------------------------------------------------------------------

TSV_HEADER = """\
# What each Lambda function's IAM role may do on the DynamoDB table, per item family (partition
# key; see infra/iam_check.py for the sample key of each). Checked by infra/iam_check.py, run by
# infra/check.sh: any difference between this file and the template fails the check. Rows
# "<function>@tenant" are the function's tenant session (tagged tenant=acme) on acme's items.
# After an intended change: python3 infra/iam_check.py --write, and review the diff of this file.
"""


def to_tsv(results: dict[str, dict[str, list[str]]]) -> str:
    lines = [TSV_HEADER + "function\tfamily\tactions"]
    for function in sorted(results):
        for family in FAMILY_NAMES:
            lines.append(f"{function}\t{family}\t{','.join(results[function][family]) or '-'}")
    return "\n".join(lines) + "\n"


def read_tsv(path: Path) -> dict[tuple[str, str], list[str]]:
    rows = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cells = line.split("\t")
        if cells == ["function", "family", "actions"]:
            continue
        if len(cells) != 3:
            raise Unevaluable(f"{path.name}:{number}: expected 3 tab-separated columns, got {line!r}")
        actions = [] if cells[2] == "-" else cells[2].split(",")
        if actions != sorted(actions) or any(a not in DATA_ACTIONS for a in actions):
            raise Unevaluable(f"{path.name}:{number}: actions must be a sorted list of DynamoDB data actions")
        if (cells[0], cells[1]) in rows:
            raise Unevaluable(f"{path.name}:{number}: duplicate row {cells[0]} / {cells[1]}")
        rows[(cells[0], cells[1])] = actions
    return rows


def differences(results, expected) -> list[str]:
    actual = {(f, fam): acts for f, fams in results.items() for fam, acts in fams.items()}
    out = []
    for key in sorted(set(actual) | set(expected)):
        function, family = key
        if key not in actual:
            out.append(f"REMOVED  {function} / {family}: expected {','.join(expected[key]) or '-'}, "
                       "but the template has no such function or family")
            continue
        now, was = set(actual[key]), set(expected.get(key, []))
        added, removed = sorted(now - was), sorted(was - now)
        if key not in expected and not added:
            out.append(f"NEW ROW  {function} / {family}: not in the expectations (allows nothing)")
        if not added and not removed:
            continue
        label = "WIDENED " if added else "NARROWED"
        change = " ".join([f"+{a}" for a in added] + [f"-{r}" for r in removed])
        out.append(f"{label} {function} / {family}: {change} (expected {','.join(sorted(was)) or '-'}; "
                   f"template allows {','.join(sorted(now)) or '-'})")
    return out


WRITES = set(WRITE_ACTIONS)


def merged(results: dict[str, dict[str, list[str]]]) -> dict[str, dict[str, list[str]]]:
    """What each function may reach at all: its own role and its tenant sessions together."""
    out: dict[str, dict[str, list[str]]] = {}
    for name, families in results.items():
        function = name.removesuffix(SESSION_SUFFIX)
        into = out.setdefault(function, {f: [] for f in FAMILY_NAMES})
        for family, actions in families.items():
            into[family] = sorted(set(into[family]) | set(actions))
    return out


# The functions that serve a tenant's requests after the authorizer named the tenant: each must
# reach the tenant's items only through its tenant session.
TENANT_SCOPED = ["users-create", "users-list", "users-search", "search", "users-get", "users-replace", "users-patch",
                 "users-delete", "groups-create", "groups-list", "groups-search", "groups-get", "groups-replace",
                 "groups-patch", "groups-delete", RESOURCES_FUNCTION, BULK_FUNCTION, "discovery", "settings",
                 "authorizer", "portal", "oauth-token"]
AUDIT_CHANGES = {"DeleteItem", "UpdateItem", "BatchWriteItem", "PartiQLDelete", "PartiQLUpdate"}


def tenant_violations(analysis: "Analysis") -> list[str]:
    """Tenant isolation by IAM: the guarantees of infra/README.md "Tenant-scoped credentials"."""
    out = []
    results = analysis.results
    # the variable the template sets is the one the code reads (else no function would assume)
    code = (HERE.parent / "shared" / "src" / "store" / "dynamo.rs").read_text(encoding="utf-8")
    if '"SCIM_TENANT_ROLE_ARN"' not in code:
        out.append("shared/src/store/dynamo.rs no longer reads SCIM_TENANT_ROLE_ARN, which the template sets")
    for function in TENANT_SCOPED:
        if function not in analysis.tenant_roles:
            out.append(f"{function} has no tenant role (SCIM_TENANT_ROLE_ARN): its own role would reach every tenant")
            continue
        own = [f for f in TENANT_FAMILIES if results.get(function, {}).get(f)]
        if own:
            out.append(f"{function}'s own role reaches tenant items ({', '.join(own)}): only its tenant session may")
    for name, others in analysis.cross_tenant.items():
        for tenant, families in others.items():
            reach = {f: a for f, a in families.items() if a and f in TENANT_FAMILIES}
            if reach:
                out.append(f"{name} (tagged {SESSION_TENANT}) reaches tenant {tenant}'s items: {reach}")
    for name, families in results.items():
        changes = sorted(set(families.get("audit", [])) & AUDIT_CHANGES)
        if changes:
            out.append(f"{name} may {','.join(changes)} on audit items: the activity log is append-only")
    for name, assumed in analysis.assumable.items():
        function = name.removesuffix(SESSION_SUFFIX)
        want = [analysis.tenant_roles[function]] if function in analysis.tenant_roles and name == function else []
        if assumed != want:
            out.append(f"{name} may assume {assumed or 'no role'}: only a function's own role assumes its tenant role "
                       f"({want or 'none'})")
    return out + [f"TRUST {t}" for t in analysis.trust]


def invariant_violations(results: dict[str, dict[str, list[str]]]) -> list[str]:
    """The guarantees infra/README.md states ("What IAM enforces"); they hold whatever the
    expectations file says, so --write cannot bless a violation. Checked on what each function
    may reach at all (its role and its tenant sessions together)."""
    out = []
    results = merged(results)

    def writes(function, family):
        return sorted(set(results[function][family]) & WRITES)

    for name in ["settings", "authorizer", "discovery", "events", "portal", "oauth-token", *LIST_FUNCTIONS,
                 BULK_FUNCTION, *BULK_OPERATIONS]:
        if name not in results:
            out.append(f"function {name!r} is not in the template (the invariants name it)")
    if BULK_FUNCTION in results and all(f in results for f in BULK_OPERATIONS):
        for family in FAMILY_NAMES:
            union = set().union(*(results[f][family] for f in BULK_OPERATIONS))
            got = set(results[BULK_FUNCTION][family])
            if got - union:
                out.append(f"{BULK_FUNCTION} may {','.join(sorted(got - union))} on {family} items: it runs each "
                           f"operation through the code of a single write route, so it may do what "
                           f"{', '.join(BULK_OPERATIONS)} may do together, no more")
            if union - got:
                out.append(f"{BULK_FUNCTION} may not {','.join(sorted(union - got))} on {family} items, which a single "
                           "write route may: an operation of a Bulk request would be refused (AccessDeniedException) "
                           "where the same request alone succeeds")
    for function, families in results.items():
        for family in ("registry", "server", "layout"):
            if writes(function, family):
                out.append(f"{function} may write {family} items ({','.join(writes(function, family))}): "
                           "only the admin CLI writes the tenant registry, the seal and the layout marker")
        if function != "portal" and writes(function, "key"):
            out.append(f"{function} may write key items: only the admin CLI and the portal (its tenant's "
                       "provisioner keys) write keys")
        if function not in ("settings", "portal") and writes(function, "tenant-config"):
            out.append(f"{function} may write tenant-config items: only settings (and the portal, for key "
                       "and OAuth client references) writes tenant configuration")
        if function not in ("authorizer", "portal") and (families["key"] or families["key-use"]):
            out.append(f"{function} may access key or key-use items: only the authorizer and the portal read keys")
        if function not in ("oauth-token", "settings", "portal") and families["oauth-client"]:
            out.append(f"{function} may access oauth-client items ({','.join(families['oauth-client'])}): only the "
                       "token function (reads OAuth clients, counts their failures), settings (reads and puts "
                       "its tenant's clients) and the portal (reads and puts its tenant's provisioner clients) do; "
                       "the admin CLI writes them too")
        if function == "settings" and set(families["oauth-client"]) - {"GetItem", "PutItem"}:
            extra = ",".join(sorted(set(families["oauth-client"]) - {"GetItem", "PutItem"}))
            out.append(f"settings may {extra} on oauth-client items: it reads a client record and puts one "
                       "(create, read-modify-write, revoke by rewriting it) only; failure counters (UpdateItem) are the "
                       "token function's")
        if function == "oauth-token":
            allowed = {"oauth-client": {"GetItem", "BatchGetItem", "UpdateItem"}, "tenant-config": {"GetItem"},
                       "audit": {"PutItem"}, "oauth-pointer": {"GetItem"}, "layout": {"GetItem"}}
            for family, actions in families.items():
                extra = set(actions) - allowed.get(family, set())
                if extra:
                    out.append(f"oauth-token may {','.join(sorted(extra))} on {family} items: it reads OAuth clients "
                               "and their tenant's record, and writes nothing but the clients' failure counters "
                               "(UpdateItem) and audit entries (PutItem)")
        if function == "authorizer":
            for family, actions in families.items():
                if actions and family not in ("key", "key-pointer", "tenant-config", "key-use", "layout", "audit", "rate"):
                    out.append(f"authorizer may access {family} items: it reads keys, tenant records and the layout marker only")
                if writes(function, family) and family not in ("key-use", "audit", "rate"):
                    out.append(f"authorizer may write {family} items: it writes the last-use stamp (key-use), "
                               "refusals in the activity log (audit) and the counter bounding them (rate) only")
            if set(families["audit"]) - {"PutItem"}:
                out.append("authorizer may do more with the activity log than append a refusal (PutItem)")
            if set(families["rate"]) - {"UpdateItem"}:
                out.append("authorizer may do more with rate items than count (UpdateItem)")
        if function == "portal":
            allowed = {"server": {"GetItem"}, "tenant-config": {"GetItem", "Query", "PutItem"}, "key": {"GetItem", "PutItem"},
                       "key-use": {"GetItem"}, "tenant-data": {"GetItem"}, "audit": {"Query", "PutItem"},
                       "oauth-client": {"GetItem", "PutItem"}}
            for family, actions in families.items():
                extra = set(actions) - allowed.get(family, set())
                if extra:
                    out.append(f"portal may {','.join(sorted(extra))} on {family} items: it reads the link key, its "
                               "tenant's record, keys, OAuth clients, counts and activity, and writes keys, OAuth clients, "
                               "their references and audit entries only")
        if function in LIST_FUNCTIONS:
            allowed_writes = {"checkpoint": {"PutItem"}, "rate": {"UpdateItem"}, "audit": {"PutItem"}}
            for family in FAMILY_NAMES:
                extra = set(writes(function, family)) - allowed_writes.get(family, set())
                if extra:
                    out.append(f"{function} may write {family} items ({','.join(sorted(extra))}): list and search "
                               "functions write only page checkpoints (PutItem), the rate counter (UpdateItem) and "
                               "failed requests in the activity log (PutItem)")
        unchecked = sorted({a for actions in families.values() for a in actions
                            if a in ("Scan", "BatchWriteItem") or a.startswith("PartiQL")})
        if unchecked:
            out.append(f"{function} may use {','.join(unchecked)}: no function scans, batch-writes or uses PartiQL "
                       "(a Scan carries no leading keys, so it passes every ForAllValues condition)")
        if function in NO_MEMBERSHIP_FUNCTIONS and (families["membership"] or families["membership-index"]):
            out.append(f"{function} may access membership or membership-index items "
                       f"({','.join(sorted(set(families['membership']) | set(families['membership-index'])))}): "
                       "declared resource types have no members")
        if function == "events" and any(families.values()):
            out.append("events may access the table: it needs no DynamoDB access at all")
        discovery_allowed = {("GetItem", "tenant-config"), ("PutItem", "audit")}
        if function == "discovery" and any((a, f) not in discovery_allowed for f, acts in families.items() for a in acts):
            out.append("discovery may do more than read tenant configuration (its schema declarations) and record "
                       "failed requests in the activity log")
    return out


def markdown(results: dict[str, dict[str, list[str]]]) -> str:
    order = [a for a in ABBREVIATIONS]
    def cell(actions):
        reads = "".join(ABBREVIATIONS[a] for a in order if a in actions and a not in WRITES and a != "ConditionCheckItem")
        writes = "".join(ABBREVIATIONS[a] for a in order if a in actions and (a in WRITES or a == "ConditionCheckItem"))
        return " ".join(x for x in (reads, writes) if x) or "–"
    lines = ["| function | " + " | ".join(FAMILY_NAMES) + " |", "|---|" + "---|" * len(FAMILY_NAMES)]
    for function in sorted(results):
        lines.append(f"| `{function}` | " + " | ".join(cell(results[function][f]) for f in FAMILY_NAMES) + " |")
    legend = ", ".join(f"{v} {k}" for k, v in ABBREVIATIONS.items())
    keys = ", ".join(f"{family} `{pk}`" + (" (gsi1)" if kind == "index" else "") for family, pk, kind in FAMILIES)
    return ("\n".join(lines) + "\n\n"
            f"Each cell: the reads, then the writes and condition checks; – is nothing. {legend}.\n"
            f"Sample partition keys: {keys}.\n")


# ---------------------------------------------------------------------------------------------
# Self-test
# ---------------------------------------------------------------------------------------------

TABLE = f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/scim-serverless"
OTHER_TABLE = f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/another-table"


def _policy(*statements):
    return statements_of({"Version": "2012-10-17", "Statement": list(statements)}, "self-test")


def _leading(operator, *patterns):
    return {operator: {"dynamodb:LeadingKeys": list(patterns)}}


def _check(ev: Evaluator, policy, expectations) -> list[str]:
    """expectations: (action, arn, leading keys or None, expected decision)."""
    failures = []
    for action, arn, keys, expected in expectations:
        got = ev.allowed(policy, f"dynamodb:{action}", arn, keys)
        if got != expected:
            failures.append(f"{action} on {keys} expected {'allowed' if expected else 'denied'}, "
                            f"evaluator said {'allowed' if got else 'denied'}")
    return failures


def case_unconditioned_allow(ev):
    """An Allow without a condition beside a conditioned one: the conditioned one restricts nothing."""
    conditioned = {"Sid": "AuditOnly", "Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": TABLE,
                   "Condition": _leading("ForAllValues:StringLike", "TENANT#*#AUDIT#*")}
    unconditioned = {"Sid": "CreateItems", "Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem"],
                     "Resource": TABLE}
    return (_check(ev, _policy(conditioned, unconditioned), [
                ("PutItem", TABLE, ("KEY#0123456789abcdef",), True),
                ("PutItem", TABLE, ("SERVER",), True)])
            + _check(ev, _policy(conditioned), [
                ("PutItem", TABLE, ("KEY#0123456789abcdef",), False),
                ("PutItem", TABLE, ("TENANT#acme#AUDIT#2026-11-29",), True)]))


def case_deny_overrides(ev):
    """An explicit Deny beats any Allow, including a wildcard one."""
    policy = _policy(
        {"Effect": "Allow", "Action": "dynamodb:*", "Resource": TABLE},
        {"Effect": "Deny", "Action": ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"], "Resource": "*",
         "Condition": _leading("ForAnyValue:StringLike", "KEY#*", "SERVER")})
    return _check(ev, policy, [
        ("PutItem", TABLE, ("KEY#0123456789abcdef",), False),
        ("DeleteItem", TABLE, ("SERVER",), False),
        ("PutItem", TABLE, ("TENANT#acme",), True),
        ("GetItem", TABLE, ("KEY#0123456789abcdef",), True)])


def case_wildcard_actions(ev):
    """dynamodb:*, dynamodb:Put*, * and case-insensitive action names match like IAM's."""
    failures = _check(ev, _policy({"Effect": "Allow", "Action": "dynamodb:Put*", "Resource": TABLE}), [
        ("PutItem", TABLE, ("KEY#0123456789abcdef",), True),
        ("PartiQLInsert", TABLE, ("KEY#0123456789abcdef",), False)])
    failures += _check(ev, _policy({"Effect": "Allow", "Action": "*", "Resource": TABLE}), [
        ("DeleteItem", TABLE, ("TENANTS",), True)])
    failures += _check(ev, _policy({"Effect": "Allow", "Action": "DynamoDB:getitem", "Resource": TABLE}), [
        ("GetItem", TABLE, ("SERVER",), True)])
    everything = _policy({"Effect": "Allow", "Action": "dynamodb:*", "Resource": TABLE,
                          "Condition": _leading("ForAllValues:StringLike", "TENANT#*")})
    if "DeleteTable" not in ev.non_data_grants(everything, TABLE):
        failures.append("dynamodb:* with a LeadingKeys condition must count as granting DeleteTable "
                        "(a control-plane request has no leading keys, and ForAllValues of nothing is true)")
    return failures


def case_not_action(ev):
    """NotAction grants everything it does not name."""
    policy = _policy({"Effect": "Allow", "NotAction": ["dynamodb:GetItem", "dynamodb:Query"], "Resource": TABLE})
    return _check(ev, policy, [
        ("PutItem", TABLE, ("KEY#0123456789abcdef",), True),
        ("GetItem", TABLE, ("KEY#0123456789abcdef",), False)])


def case_resource_star(ev):
    """Resource "*" (and an ARN with wildcards) covers the table; another table's ARN does not."""
    failures = _check(ev, _policy({"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": "*"}), [
        ("PutItem", TABLE, ("SERVER",), True)])
    failures += _check(ev, _policy({"Effect": "Allow", "Action": "dynamodb:PutItem",
                                    "Resource": f"arn:{PARTITION}:dynamodb:*:*:table/scim-*"}), [
        ("PutItem", TABLE, ("SERVER",), True)])
    failures += _check(ev, _policy({"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": OTHER_TABLE}), [
        ("PutItem", TABLE, ("SERVER",), False)])
    return failures


def case_pattern_too_wide(ev):
    """StringLike TENANT* also matches TENANTS (the registry); TENANT#* does not."""
    wide = _policy({"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": TABLE,
                    "Condition": _leading("ForAllValues:StringLike", "TENANT*")})
    exact = _policy({"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": TABLE,
                     "Condition": _leading("ForAllValues:StringLike", "TENANT#*")})
    return (_check(ev, wide, [("PutItem", TABLE, ("TENANTS",), True)])
            + _check(ev, exact, [("PutItem", TABLE, ("TENANTS",), False),
                                 ("PutItem", TABLE, ("TENANT#acme#CURSOR",), True)]))


def case_forall_missing_key(ev):
    """ForAllValues on a key the request does not carry is true: a Scan passes a LeadingKeys
    condition. ForAnyValue on a missing key is false."""
    forall = _policy({"Effect": "Allow", "Action": "dynamodb:Scan", "Resource": TABLE,
                      "Condition": _leading("ForAllValues:StringLike", "TENANT#*")})
    forany = _policy({"Effect": "Allow", "Action": "dynamodb:Scan", "Resource": TABLE,
                      "Condition": _leading("ForAnyValue:StringLike", "TENANT#*")})
    return _check(ev, forall, [("Scan", TABLE, None, True)]) + _check(ev, forany, [("Scan", TABLE, None, False)])


def case_unknown_condition(ev):
    """An unknown condition key or operator: satisfied in an Allow, not satisfied in a Deny."""
    allow = _policy({"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": TABLE,
                     "Condition": {"StringEquals": {"aws:PrincipalTag/tenant": "acme"}}})
    fancy = _policy({"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": TABLE,
                     "Condition": {"FancyMatch": {"dynamodb:LeadingKeys": "TENANT#*"}}})
    deny = _policy({"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": TABLE},
                   {"Effect": "Deny", "Action": "dynamodb:PutItem", "Resource": TABLE,
                    "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-1"}}})
    return (_check(ev, allow, [("PutItem", TABLE, ("KEY#0123456789abcdef",), True)])
            + _check(ev, fancy, [("PutItem", TABLE, ("KEY#0123456789abcdef",), True)])
            + _check(ev, deny, [("PutItem", TABLE, ("KEY#0123456789abcdef",), True)]))


def case_forany_batch(ev):
    """ForAnyValue lets one permitted key carry any other key through a batch request."""
    policy = _policy({"Effect": "Allow", "Action": "dynamodb:BatchWriteItem", "Resource": TABLE,
                      "Condition": _leading("ForAnyValue:StringLike", "TENANT#*")})
    got = ev.family_actions(policy, TABLE, f"{TABLE}/index/{INDEX_NAME}")
    return [] if got["key"] == ["BatchWriteItem"] else [f"key family expected BatchWriteItem, got {got['key']}"]


def case_unknown_managed_policy(ev):
    """A managed policy whose document is not known fails the check instead of counting as nothing."""
    template = {"Resources": {
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Role": {"Fn::GetAtt": ["FnRole", "Arn"]}}},
        "FnRole": {"Type": "AWS::IAM::Role", "Properties": {"ManagedPolicyArns": [
            "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
            "arn:aws:iam::aws:policy/AmazonDynamoDBFullAccess"]}}}}
    resolver = Resolver(template, parameter_values({}))
    try:
        role_statements("FnRole", resolver, ev.mutant)
    except Unevaluable:
        return []
    return ["AmazonDynamoDBFullAccess was accepted as granting nothing"]


def case_kms_wildcards(ev):
    """KMS actions match like IAM's: kms:Get* grants GetPublicKey but not Sign, a key's ARN covers that
    key only, and kms:* on "*" reaches every key and the account-level actions."""
    key = f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/token-signing"
    targets = {"key": key, "other": OTHER_KMS_KEY, "account": "*"}
    failures = []
    got = ev.kms_grants(_policy({"Effect": "Allow", "Action": "kms:Get*", "Resource": key}), targets)
    if "GetPublicKey" not in got["key"] or "Sign" in got["key"] or got["other"] or got["account"]:
        failures.append(f"kms:Get* on one key: expected GetPublicKey (not Sign) on that key only, got {got}")
    got = ev.kms_grants(_policy({"Effect": "Allow", "Action": "kms:*", "Resource": "*"}), targets)
    if "Sign" not in got["key"] or "Sign" not in got["other"] or "CreateKey" not in got["account"]:
        failures.append("kms:* on * must grant Sign on every key and CreateKey at account level")
    return failures


SELF_TESTS = [  # (case, the mutant it must catch)
    (case_unconditioned_allow, "all-statements-must-hold"),
    (case_deny_overrides, "ignore-deny"),
    (case_wildcard_actions, "exact-action"),
    (case_not_action, "notaction-as-action"),
    (case_resource_star, "literal-resource"),
    (case_pattern_too_wide, "like-as-equals"),
    (case_forall_missing_key, "forall-missing-key-false"),
    (case_unknown_condition, "unknown-condition-unsatisfied"),
    (case_forany_batch, "single-key-batches"),
    (case_unknown_managed_policy, "unknown-managed-policy-empty"),
    (case_kms_wildcards, "exact-action"),
]


def case_session_tag(ev):
    """A tenant session's patterns name its own tenant's partitions, no other's."""
    tagged = {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": TABLE,
              "Condition": _leading("ForAllValues:StringLike", "TENANT#${aws:PrincipalTag/tenant}#*")}
    policy, acme = _policy(tagged), {"aws:PrincipalTag/tenant": "acme"}
    failures = []
    for keys, expected in [(("TENANT#acme#RATE",), True), (("TENANT#globex#RATE",), False),
                           (("TENANT#acme2#RATE",), False)]:
        if ev.allowed(policy, "dynamodb:PutItem", TABLE, keys, acme) != expected:
            failures.append(f"PutItem on {keys} as tenant acme expected {'allowed' if expected else 'denied'}")
    return failures


SELF_TESTS.append((case_session_tag, "policy-variables-unknown"))

# Ways to break the template's tenant isolation; the real checks must catch each one (so a
# check that cannot fail is found here). (what, text of the template, its replacement)
TENANT_MUTATIONS = [
    ("a tenant role grants every tenant's items",
     '"TENANT#${aws:PrincipalTag/tenant}#*"', '"TENANT#*"'),
    ("a tenant pattern forgets its separator",
     '"TENANT#${aws:PrincipalTag/tenant}#*"', '"TENANT#${aws:PrincipalTag/tenant}*"'),
    ("a tenant role trusts the whole account",
     "AWS: !GetAtt UsersGetFunctionRole.Arn", 'AWS: !Sub "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"'),
    ("a tenant role needs no tenant tag",
     '              StringLike:\n                aws:RequestTag/tenant: "?*"\n', ""),
    ("a function no longer assumes its tenant role",
     "SCIM_TENANT_ROLE_ARN: !GetAtt UsersGetTenantRole.Arn", "SCIM_TENANT_ROLE: !GetAtt UsersGetTenantRole.Arn"),
    ("the activity log may be changed",
     "- Sid: ActivityLogIsAppendOnly\n                Effect: Deny", "- Sid: ActivityLogIsAppendOnly\n                Effect: Allow"),
    ("a function may assume any role",
     "Resource: !GetAtt UsersCreateTenantRole.Arn", 'Resource: "*"'),
    ("a function's own role reaches the table",
     "          - Sid: AssumeItsTenantRole\n",
     "          - Sid: ReadEverything\n            Effect: Allow\n            Action: dynamodb:GetItem\n"
     "            Resource: \"*\"\n          - Sid: AssumeItsTenantRole\n"),
]


def tenant_mutation_test(template: Path = TEMPLATE) -> list[str]:
    """Each TENANT_MUTATIONS entry, applied to a copy of the template, must be reported."""
    import tempfile
    text = template.read_text(encoding="utf-8")
    failures = []
    for what, old, new in TENANT_MUTATIONS:
        if old not in text:
            failures.append(f"mutation {what!r}: its text is no longer in the template")
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=template.parent, delete=False) as f:
            f.write(text.replace(old, new, 1))
        try:
            analysis = analyse(Path(f.name))
            if not (tenant_violations(analysis) or invariant_violations(analysis.results)):
                failures.append(f"mutation {what!r} was not reported")
        except Unevaluable:
            pass  # refused outright is reported too
        finally:
            Path(f.name).unlink()
    return failures


def self_test() -> bool:
    failed = 0
    for case, mutant in SELF_TESTS:
        failures = case(Evaluator())
        for failure in failures:
            print(f"iam self-test FAILED {case.__name__}: {failure}")
        # A case that still passes with the rule it tests broken proves nothing.
        if not case(Evaluator(mutant)):
            print(f"iam self-test FAILED {case.__name__}: it also passes against the mutant {mutant!r}, "
                  "so it cannot catch that mistake")
            failures = failures or ["vacuous"]
        failed += bool(failures)
    for failure in tenant_mutation_test():
        print(f"iam self-test FAILED: {failure}")
        failed += 1
    if failed:
        print(f"iam self-test FAILED: {failed} of {len(SELF_TESTS)} cases")
    else:
        print(f"iam self-test: {len(SELF_TESTS)} cases ok, each also shown to fail against an evaluator "
              f"with the rule it tests broken; {len(TENANT_MUTATIONS)} breaks of tenant isolation in the template "
              "each reported")
    return not failed


# ---------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="regenerate the expectations file from the template")
    mode.add_argument("--markdown", action="store_true", help="print the table as markdown")
    mode.add_argument("--self-test", action="store_true", help="run the evaluator's own tests")
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--expected", type=Path, default=EXPECTED)
    args = parser.parse_args(argv)

    if args.self_test:
        return 0 if self_test() else 1
    try:
        analysis = analyse(args.template)
    except Unevaluable as e:
        print(f"iam check FAILED: cannot evaluate: {e}")
        return 1
    results = analysis.results
    if args.markdown:
        print(markdown(results), end="")
        return 0

    problems = [f"INVARIANT {v}" for v in invariant_violations(results)]
    problems += [f"TENANT {v}" for v in tenant_violations(analysis)]
    problems += [f"CONTROL-PLANE {f} is granted {', '.join(a)} on the table" for f, a in analysis.non_data.items() if a]
    problems += kms_violations(analysis)
    if args.write:
        args.expected.write_text(to_tsv(results), encoding="utf-8")
        print(f"wrote {args.expected} ({len(results)} roles and sessions x {len(FAMILY_NAMES)} families); review its diff")
    else:
        try:
            expected = read_tsv(args.expected)
        except (OSError, Unevaluable) as e:
            print(f"iam check FAILED: {e}")
            return 1
        problems += differences(results, expected)
    for problem in problems:
        print(problem)
    rel = args.expected.name
    if problems:
        print(f"iam check FAILED: {len(problems)} problem(s); an intended change: python3 infra/iam_check.py --write, "
              f"then review the diff of infra/{rel}")
        return 1
    if not args.write:
        kms = "; ".join(f"{f} {','.join(sorted(KMS_EXPECTED[f]))}" for f in sorted(KMS_EXPECTED))
        sessions = sum(name.endswith(SESSION_SUFFIX) for name in results)
        print(f"iam check: {len(results) - sessions} function roles and {sessions} tenant sessions x {len(FAMILY_NAMES)} "
              f"item families match infra/{rel}; each session reaches its own tenant only; "
              f"invariants hold; no control-plane access; KMS only as expected ({kms} on "
              f"{', '.join(analysis.signing_keys)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
