"""Tests of the PreTraffic hook and its canaries, on real boto3 clients stubbed with botocore's
Stubber (no network). Run from the repository root:

    python3 -m unittest infra/hooks/test_pretraffic.py
"""

import contextlib
import io
import json
import os
import pathlib
import re
import sys
import unittest

os.environ.update(
    {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1"}
)
os.environ.pop("AWS_PROFILE", None)
HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import boto3  # noqa: E402
from botocore.response import StreamingBody  # noqa: E402
from botocore.stub import ANY, Stubber  # noqa: E402

import pretraffic  # noqa: E402

REPO = HERE.parent.parent
STACK = "scim-test"
DEPLOYMENT, HOOK = "d-ABCDEF123", "hook-execution-1"
CANARY_TENANT = "pretraffic-canary"
NIL = "00000000-0000-0000-0000-000000000000"
NEVER = 'W/"0"'
# functions/src/bin that are command-line tools, not deployed functions
CLI_BINARIES = {"scim-admin", "scim-local"}


def canary(name):
    return json.loads((pretraffic.CANARY_DIR / f"{name}.json").read_text())


def canaries():
    return {p.stem: json.loads(p.read_text()) for p in sorted(pretraffic.CANARY_DIR.glob("*.json"))}


def appspec(function, current="3", target="4"):
    props = {"Name": f"{STACK}-{function}", "Alias": "live", "CurrentVersion": current, "TargetVersion": target}
    return json.dumps({"version": 0.0, "Resources": [{"Fn": {"Type": "AWS::Lambda::Function", "Properties": props}}]})


def deployment(content):
    return {"deploymentInfo": {"deploymentId": DEPLOYMENT, "revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": content}}}}


def proxy(status, body=None, content_type="application/scim+json"):
    return {"statusCode": status, "headers": {"content-type": content_type}, "multiValueHeaders": {"content-type": [content_type]},
            "body": json.dumps(body) if body is not None else "", "isBase64Encoded": False}


def invoked(payload, function_error=None):
    data = json.dumps(payload).encode()
    out = {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(data), len(data)), "ExecutedVersion": "4"}
    if function_error:
        out["FunctionError"] = function_error
    return out


def expected_answer(c):
    """The answer a canary's (first) expectation describes (what a good version sends)."""
    e = pretraffic._alternatives(c["expect"])[0]
    if "error_message" in e:
        return invoked({"errorType": "&str", "errorMessage": e["error_message"]}, "Unhandled")
    if "payload" in e:
        return invoked(e["payload"])
    return invoked(proxy(e["status"], e.get("body", {}), e.get("content_type", "application/json")))


class Hook(unittest.TestCase):
    def setUp(self):
        os.environ["STACK_NAME"] = STACK
        self.codedeploy = boto3.client("codedeploy", region_name="eu-west-1")
        self.lam = boto3.client("lambda", region_name="eu-west-1")
        self.cd_stub, self.lam_stub = Stubber(self.codedeploy), Stubber(self.lam)
        self.cd_stub.activate()
        self.lam_stub.activate()

    def tearDown(self):
        self.cd_stub.deactivate()
        self.lam_stub.deactivate()

    def run_hook(self, content, status, *, invoke=None, function=None, target="4"):
        """Runs the hook on a deployment whose AppSpec is `content`; asserts `status` is what
        it reports to CodeDeploy; returns (result, log lines)."""
        self.cd_stub.add_response("get_deployment", deployment(content), {"deploymentId": DEPLOYMENT})
        if invoke is not None:
            params = {"FunctionName": f"{STACK}-{function}", "Qualifier": target, "InvocationType": "RequestResponse", "Payload": ANY}
            if isinstance(invoke, Exception):
                self.lam_stub.add_client_error("invoke", service_error_code="ServiceException", http_status_code=500,
                                               service_message=str(invoke), expected_params=params)
            else:
                self.lam_stub.add_response("invoke", invoke, params)
        self.cd_stub.add_response(
            "put_lifecycle_event_hook_execution_status",
            {"lifecycleEventHookExecutionId": HOOK},
            {"deploymentId": DEPLOYMENT, "lifecycleEventHookExecutionId": HOOK, "status": status},
        )
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            result = pretraffic.handler({"DeploymentId": DEPLOYMENT, "LifecycleEventHookExecutionId": HOOK}, None,
                                        clients=(self.codedeploy, self.lam))
        self.cd_stub.assert_no_pending_responses()
        self.lam_stub.assert_no_pending_responses()
        self.assertEqual(result["status"], status, result["reason"])
        return result, [json.loads(line) for line in out.getvalue().splitlines()]

    def test_succeeded_when_the_version_answers_the_expected_status(self):
        answer = invoked(proxy(404, {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "404", "detail": "no user"}))
        self.run_hook(appspec("users-get"), "Succeeded", invoke=answer, function="users-get")

    def test_failed_when_the_version_answers_500(self):
        answer = invoked(proxy(500, {"status": "500", "detail": "internal server error"}))
        result, _ = self.run_hook(appspec("users-get"), "Failed", invoke=answer, function="users-get")
        self.assertIn("status 500, expected 404", result["reason"])

    def test_failed_when_another_status_or_media_type_or_body(self):
        for answer, why in (
            (proxy(200, {"totalResults": 0}), "status 200"),
            (proxy(404, {"status": "404"}, "text/html"), "Content-Type text/html"),
            (proxy(404, {"status": "410"}), "the body's status"),
        ):
            with self.subTest(why=why):
                self.setUp()
                result, _ = self.run_hook(appspec("users-get"), "Failed", invoke=invoked(answer), function="users-get")
                self.assertIn(why, result["reason"])

    def test_failed_on_a_function_error(self):
        answer = invoked({"errorType": "Runtime.ExitError", "errorMessage": "process exited"}, "Unhandled")
        result, _ = self.run_hook(appspec("users-get"), "Failed", invoke=answer, function="users-get")
        self.assertIn("the function failed (Unhandled)", result["reason"])

    def test_the_authorizer_canary_passes_on_unauthorized_only(self):
        refused = invoked({"errorType": "&str", "errorMessage": "Unauthorized"}, "Unhandled")
        self.run_hook(appspec("authorizer"), "Succeeded", invoke=refused, function="authorizer")
        for answer, why in (
            (invoked({"principalId": "k", "policyDocument": {"Statement": []}, "context": {}}), "got a success"),
            (invoked({"errorType": "&str", "errorMessage": "authorizer failed: 503"}, "Unhandled"), "'authorizer failed: 503'"),
        ):
            with self.subTest(why=why):
                self.setUp()
                result, _ = self.run_hook(appspec("authorizer"), "Failed", invoke=answer, function="authorizer")
                self.assertIn(why, result["reason"])

    def test_the_events_canary_needs_its_exact_payload(self):
        c = canary("events")
        self.run_hook(appspec("events"), "Succeeded", invoke=invoked(c["expect"]["payload"]), function="events")
        self.setUp()
        result, _ = self.run_hook(appspec("events"), "Failed", invoke=invoked([]), function="events")
        self.assertIn("payload differs", result["reason"])

    def test_failed_for_a_function_without_a_canary(self):
        # no invoke is stubbed: an invoke would be an unexpected call, and the reason would say so
        result, lines = self.run_hook(appspec("users-frobnicate"), "Failed")
        self.assertIn("no canary for function 'users-frobnicate'", result["reason"])
        self.assertEqual(lines[0]["function"], "users-frobnicate")

    def test_failed_for_a_function_of_another_stack(self):
        os.environ["STACK_NAME"] = "other-stack"
        result, _ = self.run_hook(appspec("users-get"), "Failed")
        self.assertIn("is not a function of stack other-stack", result["reason"])

    def test_failed_when_the_appspec_is_not_json(self):
        result, _ = self.run_hook("version: 0.0\nResources: []\n", "Failed")
        self.assertIn("is not JSON", result["reason"])

    def test_failed_when_the_appspec_has_no_target_version(self):
        content = json.loads(appspec("users-get"))
        del content["Resources"][0]["Fn"]["Properties"]["TargetVersion"]
        result, _ = self.run_hook(json.dumps(content), "Failed")
        self.assertIn("no TargetVersion", result["reason"])

    def test_the_status_is_reported_when_invoke_raises(self):
        result, lines = self.run_hook(appspec("users-get"), "Failed", invoke=RuntimeError("Lambda is down"), function="users-get")
        self.assertIn("ServiceException", result["reason"])
        self.assertEqual((lines[0]["status"], lines[0]["level"]), ("Failed", "ERROR"))

    def test_the_status_is_reported_when_get_deployment_raises(self):
        self.cd_stub.add_client_error("get_deployment", service_error_code="DeploymentDoesNotExistException")
        self.cd_stub.add_response("put_lifecycle_event_hook_execution_status", {"lifecycleEventHookExecutionId": HOOK},
                                  {"deploymentId": DEPLOYMENT, "lifecycleEventHookExecutionId": HOOK, "status": "Failed"})
        with contextlib.redirect_stdout(io.StringIO()):
            result = pretraffic.handler({"DeploymentId": DEPLOYMENT, "LifecycleEventHookExecutionId": HOOK}, None,
                                        clients=(self.codedeploy, self.lam))
        self.cd_stub.assert_no_pending_responses()
        self.assertEqual(result["status"], "Failed")

    def test_the_target_version_is_the_qualifier(self):
        answer = invoked(proxy(404, {"status": "404"}))
        # the stub expects Qualifier "7" exactly: invoking CurrentVersion "6" would be an
        # unexpected call, and the hook would report Failed
        self.run_hook(appspec("users-get", current="6", target="7"), "Succeeded", invoke=answer, function="users-get", target="7")

    def test_the_invoke_sends_the_canary_event(self):
        c = canary("users-delete")
        self.cd_stub.add_response("get_deployment", deployment(appspec("users-delete")), {"deploymentId": DEPLOYMENT})
        self.lam_stub.add_response("invoke", expected_answer(c), {"FunctionName": f"{STACK}-users-delete", "Qualifier": "4",
                                                                  "InvocationType": "RequestResponse",
                                                                  "Payload": json.dumps(c["event"]).encode()})
        self.cd_stub.add_response("put_lifecycle_event_hook_execution_status", {"lifecycleEventHookExecutionId": HOOK},
                                  {"deploymentId": DEPLOYMENT, "lifecycleEventHookExecutionId": HOOK, "status": "Succeeded"})
        with contextlib.redirect_stdout(io.StringIO()):
            result = pretraffic.handler({"DeploymentId": DEPLOYMENT, "LifecycleEventHookExecutionId": HOOK}, None,
                                        clients=(self.codedeploy, self.lam))
        self.assertEqual(result["status"], "Succeeded", result["reason"])

    def test_every_canary_passes_on_its_expected_answer_and_fails_on_a_500(self):
        for name, c in canaries().items():
            with self.subTest(function=name):
                self.setUp()
                self.run_hook(appspec(name), "Succeeded", invoke=expected_answer(c), function=name)
                self.setUp()
                self.run_hook(appspec(name), "Failed", invoke=invoked(proxy(500, {"status": "500"})), function=name)

    def test_one_json_line_per_decision_without_credentials(self):
        refused = invoked({"errorType": "&str", "errorMessage": "Unauthorized Bearer scim_0123456789abcdef_secretsecret"}, "Unhandled")
        result, lines = self.run_hook(appspec("authorizer"), "Failed", invoke=refused, function="authorizer")
        self.assertEqual(len(lines), 1)
        line = lines[0]
        for field in ("timestamp", "level", "function", "version", "status", "reason"):
            self.assertIn(field, line)
        self.assertRegex(line["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual((line["function"], line["version"], line["status"]), ("authorizer", "4", "Failed"))
        token = canary("authorizer")["event"]["headers"]["Authorization"]
        for text in (json.dumps(line), result["reason"]):
            self.assertNotIn("scim_0123456789abcdef_secretsecret", text)
            self.assertNotIn(token.split()[1], text)


def is_write(event):
    return event["httpMethod"] in {"POST", "PUT", "PATCH", "DELETE"} and not event["path"].endswith(".search")


class Canaries(unittest.TestCase):
    def test_every_function_has_a_canary_and_every_canary_a_function(self):
        samples = {p.stem for p in (REPO / "functions/events").glob("*.json")}
        binaries = {p.stem for p in (REPO / "functions/src/bin").glob("*.rs")} - CLI_BINARIES
        self.assertIn("portal", binaries, "the portal binary exists and has no sample event")
        functions = samples | binaries
        self.assertEqual(set(canaries()), functions)

    def test_a_canary_with_alternatives_passes_on_either_and_fails_on_neither(self):
        either = [{"status": 401}, {"status": 503, "body": {"detail": "not set up"}}]
        proxy = lambda status, body: invoked({"statusCode": status, "headers": {}, "body": json.dumps(body)})  # noqa: E731
        self.assertIsNone(pretraffic.judge_any(either, proxy(401, {})))
        self.assertIsNone(pretraffic.judge_any(either, proxy(503, {"detail": "not set up"})))
        problem = pretraffic.judge_any(either, proxy(503, {"detail": "the store is unavailable"}))
        self.assertIn("; or ", problem)
        self.assertIsNotNone(pretraffic.judge_any(either, proxy(500, {})))

    def test_every_canary_parses_with_an_event_an_expectation_and_a_reason(self):
        for name, c in canaries().items():
            with self.subTest(function=name):
                self.assertTrue({"event", "expect", "why"} <= set(c), sorted(c))
                alternatives = pretraffic._alternatives(c["expect"])
                self.assertTrue(alternatives and all(e and set(e) <= pretraffic.EXPECT_KEYS for e in alternatives), c["expect"])
                self.assertTrue(c["why"].strip())
                pretraffic._canary(name)

    def test_no_canary_is_a_write_that_could_succeed(self):
        for name, c in canaries().items():
            event, expect = c["event"], c["expect"]
            if not isinstance(event, dict) or "httpMethod" not in event:
                continue
            with self.subTest(function=name):
                if is_write(event):
                    for e in pretraffic._alternatives(expect):
                        self.assertTrue(400 <= e["status"] < 500, f"{name}: a write canary must be refused, not {e['status']}")
                if event["httpMethod"] in {"PUT", "PATCH", "DELETE"}:
                    # never an id that exists, and a version no resource has even if it did
                    self.assertIn(NIL, event["path"])
                    self.assertEqual(event["headers"].get("If-Match"), NEVER)
                    self.assertEqual(event["multiValueHeaders"].get("If-Match"), [NEVER])

    def test_api_canaries_act_for_the_canary_tenant_with_the_least_permissions(self):
        shape = json.loads(json.loads((REPO / "functions/events/users-create.json").read_text())["requestContext"]["authorizer"]["principal"])
        self.assertRegex(CANARY_TENANT, r"^[A-Za-z0-9_-]{1,64}$", "tenancy::valid_tenant_id")
        for name, c in canaries().items():
            auth = c["event"].get("requestContext", {}).get("authorizer") if isinstance(c["event"], dict) else None
            if name in {"authorizer", "oauth-token", "portal"}:
                self.assertIsNone(auth, f"{name} is behind no authorizer")
                continue
            if name == "events":
                continue
            with self.subTest(function=name):
                p = json.loads(auth["principal"])
                self.assertEqual(list(p), list(shape), "the sample principal's exact shape")
                self.assertEqual((p["tenant_id"], auth["tenant_id"], auth["key_id"], auth["principalId"]),
                                 (CANARY_TENANT, CANARY_TENANT, p["key_id"], p["key_id"]))
                self.assertEqual(auth["role"], p["role"])
                want = {"settings": ["scim:configure"]}.get(name, ["scim:read", "scim:write"] if is_write(c["event"]) else ["scim:read"])
                self.assertEqual(p["permissions"], want)

    def test_events_canary_is_about_the_canary_tenant_only(self):
        for record in canary("events")["event"]:
            keys = record["dynamodb"]["Keys"]
            self.assertTrue(keys["pk"]["S"].startswith(f"TENANT#{CANARY_TENANT}"), keys)

    def test_credentials_in_canaries_are_never_real(self):
        auth = canary("authorizer")["event"]["headers"]["Authorization"]
        self.assertRegex(auth, r"^Bearer scim_pretraffic-canary\.0{16}_[A-Za-z0-9_-]{32,128}$",
                         "well formed, of the canary tenant, so the authorizer reads the store acting for it")
        body = canary("oauth-token")["event"]["body"]
        self.assertRegex(body, r"client_id=pretraffic-canary\.0{20}&",
                         "well formed (the canary tenant, 20 hex), so the function reads the store acting for it")
        portal = canary("portal")["event"]["headers"]["Authorization"]
        self.assertTrue(portal.endswith(".AAAAAAAAAAAAAAAAAAAAAA"), "a zero tag: the HMAC check must refuse it")
        for name, c in canaries().items():
            self.assertIsNone(re.search(r"REDACTED|scim_k1_", json.dumps(c)), name)


if __name__ == "__main__":
    unittest.main()
