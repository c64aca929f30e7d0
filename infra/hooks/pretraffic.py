"""CodeDeploy PreTraffic hook: before CodeDeploy shifts any traffic to a function's new
version, invoke that version with the function's canary request (canary/<function>.json) and
report Succeeded only if it answers what that request must get; otherwise Failed, and
CodeDeploy stops the deployment and leaves the alias on the old version.

The function comes from the deployment's AppSpec (`Name` is `<STACK_NAME>-<function>`); the
version invoked is the AppSpec's `TargetVersion`. A function without a canary fails: nothing
passes by default. Whatever goes wrong, the status is reported, and one JSON line says why.
Canaries never write tenant data (README.md); payloads are never logged.
"""

import base64
import datetime
import json
import os
import pathlib
import re

import boto3
from botocore.config import Config

CANARY_DIR = pathlib.Path(__file__).resolve().with_name("canary")
SUCCEEDED, FAILED = "Succeeded", "Failed"
# What an expectation may name; anything else is a mistake in the canary, and fails.
EXPECT_KEYS = {"status", "content_type", "body", "error_message", "payload"}
# A function part of a name: what canary/<function>.json can be (no path, no dots).
FUNCTION_PART = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
# Credentials that must never reach a log line, whatever text carries them.
SECRETS = re.compile(r"(?i)\b(bearer|portal|basic)\s+\S+|scim_[0-9a-f]{16}_\S+|client_secret=[^&\s]+")


def _make_clients():
    """The CodeDeploy and Lambda clients, in the region Lambda runs the hook in."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    retries = {"mode": "standard", "max_attempts": 3}
    codedeploy = boto3.client("codedeploy", region_name=region, config=Config(retries=retries))
    # the slowest function (Bulk) has 28 s; an invoke throttled by live traffic is retried
    lam = boto3.client("lambda", region_name=region, config=Config(retries=retries, connect_timeout=5, read_timeout=30))
    return codedeploy, lam


_CLIENTS = _make_clients()


def _clients():
    """The clients the handler uses (tests replace this or pass `clients=`)."""
    return _CLIENTS


class Refusal(Exception):
    """A reason to report Failed that is not a bug of the hook."""


def handler(event, context, clients=None):
    """The hook: check the deployment's new version, report the status, return it."""
    codedeploy, lam = clients or _clients()
    deployment_id = event.get("DeploymentId")
    hook_id = event.get("LifecycleEventHookExecutionId")
    target = {"function": None, "version": None}
    try:
        status, reason = _check(codedeploy, lam, deployment_id, target)
    except Refusal as e:
        status, reason = FAILED, str(e)
    except Exception as e:  # noqa: BLE001 - any failure of the check is a Failed, reported
        status, reason = FAILED, f"the check itself failed: {type(e).__name__}: {e}"
    _log(status, reason, deployment_id, **target)
    codedeploy.put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id, lifecycleEventHookExecutionId=hook_id, status=status
    )
    return {"status": status, "reason": _redact(reason)}


def _check(codedeploy, lam, deployment_id, target):
    """(status, reason) for the deployment; fills `target` as soon as it is known."""
    name, version = _target(codedeploy, deployment_id)
    target["version"] = version
    function = _function_part(name)
    target["function"] = function
    canary = _canary(function)
    resp = lam.invoke(
        FunctionName=name,
        Qualifier=version,
        InvocationType="RequestResponse",
        Payload=json.dumps(canary["event"]).encode(),
    )
    problem = judge_any(_alternatives(canary["expect"]), resp)
    if problem:
        return FAILED, f"version {version} of {name} did not answer its canary: {problem}"
    return SUCCEEDED, f"version {version} of {name} answered its canary as expected"


def _target(codedeploy, deployment_id):
    """The function name and the version to check, from the deployment's AppSpec."""
    info = codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
    revision = info.get("revision") or {}
    content = (revision.get("appSpecContent") or revision.get("string") or {}).get("content")
    if not content:
        raise Refusal(f"deployment {deployment_id} carries no AppSpec content (revision type {revision.get('revisionType')})")
    try:
        appspec = json.loads(content)
    except ValueError as e:
        raise Refusal(f"the AppSpec of deployment {deployment_id} is not JSON: {e}") from None
    resources = appspec.get("Resources") if isinstance(appspec, dict) else None
    props = [
        r.get("Properties") or {}
        for entry in (resources if isinstance(resources, list) else [])
        for r in (entry.values() if isinstance(entry, dict) else [])
        if isinstance(r, dict) and r.get("Type") == "AWS::Lambda::Function"
    ]
    if len(props) != 1:
        raise Refusal(f"the AppSpec of deployment {deployment_id} names {len(props)} Lambda functions, not one")
    name, version = props[0].get("Name"), props[0].get("TargetVersion")
    if not name or version in (None, ""):
        raise Refusal(f"the AppSpec of deployment {deployment_id} has no function Name or no TargetVersion")
    return str(name), str(version)


def _function_part(name):
    """`users-create` of `<STACK_NAME>-users-create` (or of its ARN)."""
    stack = os.environ.get("STACK_NAME")
    if not stack:
        raise Refusal("STACK_NAME is not set: the hook cannot tell which function this is")
    bare = name.split(":function:", 1)[-1].split(":", 1)[0]
    part = bare[len(stack) + 1 :] if bare.startswith(stack + "-") else None
    if not part or not FUNCTION_PART.match(part):
        raise Refusal(f"{name} is not a function of stack {stack}")
    return part


def _canary(function):
    """The canary of a function; a Refusal when it has none or it is not one."""
    path = CANARY_DIR / f"{function}.json"
    if not path.is_file():
        raise Refusal(f"no canary for function '{function}' ({path.name}): add one before deploying it")
    canary = json.loads(path.read_text())
    expect = canary.get("expect") if isinstance(canary, dict) else None
    alternatives = _alternatives(expect)
    if "event" not in canary or not alternatives or any(not isinstance(e, dict) or not e or set(e) - EXPECT_KEYS for e in alternatives):
        raise Refusal(
            f"{path.name} is not a canary: it needs an event and an expect (or a list of them, any of which will do) "
            f"naming only {sorted(EXPECT_KEYS)}"
        )
    return canary


def _alternatives(expect):
    """The answers a canary accepts: its `expect`, or each of a list of them."""
    return expect if isinstance(expect, list) else [expect] if expect is not None else []


def judge_any(alternatives, resp):
    """None when the answer is what any of the alternatives says; else what is wrong with it
    against each of them."""
    raw = resp["Payload"].read()
    problems = []
    for expect in alternatives:
        problem = judge(expect, {**resp, "Payload": _Bytes(raw)})
        if problem is None:
            return None
        problems.append(problem)
    return problems[0] if len(problems) == 1 else "; or ".join(problems)


class _Bytes:
    """An invoke's payload read again (botocore's stream reads once)."""

    def __init__(self, raw):
        self.raw = raw

    def read(self):
        return self.raw


def judge(expect, resp):
    """What is wrong with an invoke's answer, or None when it is what `expect` says."""
    raw = resp["Payload"].read()
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        return f"the answer is not JSON ({len(raw)} bytes)"
    error = resp.get("FunctionError")
    if "error_message" in expect:
        if not error:
            return f"expected the function error {expect['error_message']!r}, got a success"
        got = payload.get("errorMessage") if isinstance(payload, dict) else None
        return None if got == expect["error_message"] else f"expected the error {expect['error_message']!r}, got {got!r}"
    if error:
        return f"the function failed ({error}): {_error_text(payload)}"
    if "payload" in expect and payload != expect["payload"]:
        return f"the payload differs from the expected one: {_short(payload)}"
    if {"status", "content_type", "body"} & set(expect):
        return _judge_http(expect, payload)
    return None


def _judge_http(expect, payload):
    """What is wrong with an API Gateway proxy response, or None."""
    if not isinstance(payload, dict) or "statusCode" not in payload:
        return f"not an API Gateway proxy response: {_short(payload)}"
    status = payload["statusCode"]
    body_text = payload.get("body") or ""
    if payload.get("isBase64Encoded"):
        body_text = base64.b64decode(body_text).decode("utf-8", "replace")
    if "status" in expect and status != expect["status"]:
        return f"status {status}, expected {expect['status']}: {_short(body_text)}"
    if "content_type" in expect:
        media = _header(payload, "content-type").split(";")[0].strip().lower()
        if media != expect["content_type"].lower():
            return f"Content-Type {media or 'none'}, expected {expect['content_type']}"
    if "body" in expect:
        try:
            body = json.loads(body_text)
        except ValueError:
            return f"the body is not JSON: {_short(body_text)}"
        wrong = [k for k, v in expect["body"].items() if not isinstance(body, dict) or body.get(k) != v]
        if wrong:
            return f"the body's {', '.join(wrong)} differ from {_short({k: expect['body'][k] for k in wrong})}: {_short(body)}"
    return None


def _header(payload, name):
    """A response header's value, in any case, from `headers` or `multiValueHeaders`."""
    for k, v in (payload.get("headers") or {}).items():
        if k.lower() == name:
            return str(v)
    for k, v in (payload.get("multiValueHeaders") or {}).items():
        if k.lower() == name and v:
            return str(v[0])
    return ""


def _error_text(payload):
    if isinstance(payload, dict):
        return _short(f"{payload.get('errorType')}: {payload.get('errorMessage')}")
    return _short(payload)


def _short(value, limit=300):
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _redact(text):
    return SECRETS.sub("[redacted]", text)


def _log(status, reason, deployment_id, function=None, version=None):
    """One JSON line per decision (Lambda's JSON log format reads `level` and `timestamp`)."""
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    line = {
        "timestamp": now,
        "level": "INFO" if status == SUCCEEDED else "ERROR",
        "message": "pretraffic check",
        "deployment_id": deployment_id,
        "function": function,
        "version": version,
        "status": status,
        "reason": _redact(reason),
    }
    print(json.dumps(line), flush=True)
