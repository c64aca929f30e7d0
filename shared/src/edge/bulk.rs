//! `POST /Bulk` (RFC 7644 §3.7): the operations of a BulkRequest, each run as the same request
//! sent alone would be — through [`App::handle_under`], so it is matched, admitted (the key's
//! permission for *that* route, the tenant's request limit), validated, audited and evented by
//! the one code path. An operation is its own transaction; a Bulk request that runs out of time
//! stops between operations and says which ran.
//!
//! `bulkId` references (`"bulkId:<id>"`, anywhere a value holds an id: members, manager, any
//! reference) are resolved to the ids the operations made; an operation waits for the ones it
//! references (dependency order, §3.7.2). Circular references (§3.7.1) are broken as the RFC
//! describes: a resource is created without its references to resources not made yet, and
//! given them with a PATCH once they exist.

use super::routes::Op;
use super::{App, HttpRequest, Request, Response};
use crate::auth::Principal;
use crate::error::{Result, ScimError};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// The `schemas` value of a BulkRequest.
pub const URN_BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
/// The `schemas` value of a BulkResponse.
pub const URN_BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
/// The most operations one BulkRequest may carry (advertised in `/ServiceProviderConfig`).
pub const MAX_OPERATIONS: usize = crate::discovery::MAX_BULK_OPERATIONS;
/// The largest BulkRequest body, bytes (advertised; the edge's payload limit).
pub const MAX_PAYLOAD_SIZE: usize = crate::discovery::MAX_PAYLOAD;
/// Time kept in hand when a request has a deadline: no operation starts closer to it than this.
pub const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_secs(3);

/// When the entry point must have answered (the Lambda invocation's deadline); a Bulk request
/// stops starting operations before it. Set in the request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub std::time::Instant);

/// One operation of a BulkRequest, as read.
#[derive(Debug, Clone)]
struct Operation {
    method: String,
    path: String,
    bulk_id: Option<String>,
    version: Option<String>,
    data: Option<Value>,
}

fn parse(doc: &Value) -> Result<(Vec<Operation>, Option<usize>)> {
    let schemas = doc["schemas"].as_array().ok_or_else(|| ScimError::invalid_syntax("a BulkRequest names its schemas"))?;
    if !schemas.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(URN_BULK_REQUEST))) {
        return Err(ScimError::invalid_syntax(format!("schemas must include {URN_BULK_REQUEST}")));
    }
    let fail_on_errors = match &doc["failOnErrors"] {
        Value::Null => None,
        v => {
            Some(v.as_u64().filter(|n| *n >= 1).ok_or_else(|| ScimError::invalid_value("failOnErrors is a whole number from 1"))? as usize)
        }
    };
    let ops = doc["Operations"].as_array().ok_or_else(|| ScimError::invalid_syntax("a BulkRequest has an Operations array"))?;
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::PayloadTooLarge(format!("{} operations: a BulkRequest carries at most {MAX_OPERATIONS}", ops.len())));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let text = |k: &str| op[k].as_str().map(str::to_string);
        let method = text("method").ok_or_else(|| ScimError::invalid_syntax(format!("operation {i} has no method")))?.to_ascii_uppercase();
        if !["POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
            return Err(ScimError::invalid_value(format!("operation {i}: method is POST, PUT, PATCH or DELETE, not {method:.16}")));
        }
        let path =
            text("path").filter(|p| p.starts_with('/')).ok_or_else(|| ScimError::invalid_syntax(format!("operation {i} has no path")))?;
        let bulk_id = text("bulkId");
        if method == "POST" && bulk_id.is_none() {
            return Err(ScimError::invalid_syntax(format!("operation {i}: a POST needs a bulkId (RFC 7644 §3.7)")));
        }
        if let Some(b) = &bulk_id
            && !seen.insert(b.clone())
        {
            return Err(ScimError::invalid_value(format!("bulkId '{b:.40}' is used twice")));
        }
        out.push(Operation { method, path, bulk_id, version: text("version"), data: op.get("data").cloned() });
    }
    Ok((out, fail_on_errors))
}

/// The bulkIds a value references (`"bulkId:<id>"` strings at any depth).
fn references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix("bulkId:") {
                out.push(id.to_string());
            }
        }
        Value::Array(a) => a.iter().for_each(|x| references(x, out)),
        Value::Object(o) => o.values().for_each(|x| references(x, out)),
        _ => {}
    }
}

/// Every bulkId an operation references, in its data and its path.
fn referenced(op: &Operation) -> Vec<String> {
    let mut r = Vec::new();
    if let Some(d) = &op.data {
        references(d, &mut r);
    }
    r.extend(path_references(&op.path));
    r
}

/// Why a reference can never resolve (`None` while it still may): no operation of the request
/// declares the bulkId, or the one that does has run and made nothing. An operation holding
/// such a reference fails with 409 without running (as RFC 7644 §3.7.1 answers what it cannot
/// resolve), so nothing is written half-resolved.
fn unresolvable(bulk_id: &str, ops: &[Operation], results: &[Option<Value>]) -> Option<String> {
    match ops.iter().position(|o| o.bulk_id.as_deref() == Some(bulk_id)) {
        None => Some(format!("bulkId:{bulk_id:.40} names no operation of this Bulk request")),
        Some(j) if results[j].is_some() => Some(format!("bulkId:{bulk_id:.40} was not created: its operation failed")),
        Some(_) => None,
    }
}

/// Which pending operation runs next (its place in `pending`), and whether it must be split:
/// the first whose references are all made or can never be; else (a cycle) the first POST,
/// made without what it cannot reference yet.
fn next(pending: &[usize], ops: &[Operation], ids: &HashMap<String, String>, results: &[Option<Value>]) -> (usize, bool) {
    let ready =
        pending.iter().position(|&i| referenced(&ops[i]).iter().all(|b| ids.contains_key(b) || unresolvable(b, ops, results).is_some()));
    match ready {
        Some(p) => (p, false),
        None => pending.iter().position(|&i| ops[i].method == "POST").map_or((0, false), |p| (p, true)),
    }
}

/// The bulkIds a path references (`/Users/bulkId:<id>`: a segment).
fn path_references(path: &str) -> Vec<String> {
    path.split('/').filter_map(|s| s.strip_prefix("bulkId:")).map(str::to_string).collect()
}

/// A path with its `bulkId:<id>` segment replaced by the id made for it.
fn resolved_path(path: &str, ids: &HashMap<String, String>) -> String {
    let segments: Vec<&str> =
        path.split('/').map(|s| s.strip_prefix("bulkId:").and_then(|b| ids.get(b)).map_or(s, String::as_str)).collect();
    segments.join("/")
}

/// A value with every resolvable reference replaced by its id.
fn resolved(v: &Value, ids: &HashMap<String, String>) -> Value {
    match v {
        Value::String(s) => match s.strip_prefix("bulkId:").and_then(|b| ids.get(b)) {
            Some(id) => Value::String(id.clone()),
            None => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(|x| resolved(x, ids)).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), resolved(x, ids))).collect()),
        _ => v.clone(),
    }
}

/// Splits a resource's members into what can be written now and the members that reference
/// resources not made yet (written later by a PATCH `add`, §3.7.1).
fn without_pending(data: &Value, ids: &HashMap<String, String>) -> (Value, Map<String, Value>) {
    let pending = |v: &Value| {
        let mut r = Vec::new();
        references(v, &mut r);
        r.iter().any(|b| !ids.contains_key(b))
    };
    let (mut now, mut later) = (Map::new(), Map::new());
    for (k, v) in data.as_object().into_iter().flatten() {
        if pending(v) && k != "schemas" {
            later.insert(k.clone(), v.clone());
        } else {
            now.insert(k.clone(), v.clone());
        }
    }
    (Value::Object(now), later)
}

/// The outcome of one operation in the BulkResponse (§3.7.3).
fn outcome(op: &Operation, resp: &Response) -> Value {
    let mut o = json!({"method": op.method, "status": resp.status.to_string()});
    if let Some(b) = &op.bulk_id {
        o["bulkId"] = json!(b);
    }
    if let Some(l) = resp.header(http::header::LOCATION) {
        o["location"] = json!(l);
    }
    if let Some(v) = resp.header(http::header::ETAG) {
        o["version"] = json!(v);
    }
    if resp.status >= 400 {
        o["response"] = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
    }
    o
}

/// The outcome of an operation the request ran out of time for: 503, retry it alone.
fn not_run(op: &Operation) -> Value {
    let e =
        ScimError::Unavailable { detail: "not run: the Bulk request ran out of time before this operation".to_string(), retry_after: 1 };
    outcome(op, &Response::error(&e))
}

impl App {
    /// Runs one operation through the same path as a request sent alone; with `refused`, refuses
    /// it instead, audited like any refusal.
    #[allow(clippy::too_many_arguments)]
    async fn bulk_operation(
        &self,
        principal: &Principal,
        method: &str,
        path: &str,
        version: Option<&str>,
        data: Option<&Value>,
        base_url: &str,
        refused: Option<ScimError>,
    ) -> Response {
        let mut r: HttpRequest = super::json_request(method, path, data);
        if let Some(v) = version.and_then(|v| http::HeaderValue::from_str(v).ok()) {
            r.headers_mut().insert(http::header::IF_MATCH, v);
        }
        let under = r.uri().path().to_string();
        if let Some(e) = refused {
            return self.refuse_under(principal, &r, &under, &e).await;
        }
        // decided on the route the operation matched, not on how its path is spelled: only a
        // resource write runs (no Bulk inside a Bulk, no settings, no reads)
        if let Ok(m) = super::routes::match_route(self.routes, method, &under)
            && !matches!(m.spec.op, Op::Create(_) | Op::Replace(_) | Op::Patch(_) | Op::Delete(_))
        {
            let e = ScimError::invalid_value(format!(
                "a Bulk operation writes a resource (POST, PUT, PATCH or DELETE of a resource type's endpoint), not {} {}",
                m.spec.method, m.spec.path
            ));
            return self.refuse_under(principal, &r, &under, &e).await;
        }
        Box::pin(self.handle_under(principal, &r, &under, base_url, None)).await
    }

    /// `POST /Bulk`: the BulkResponse of a BulkRequest.
    pub(super) async fn bulk(&self, principal: &Principal, req: &Request<'_>, doc: &Value, base_url: &str) -> Result<Response> {
        let (ops, fail_on_errors) = parse(doc)?;
        let deadline = req.deadline().map(|d| d.0.checked_sub(DEADLINE_MARGIN).unwrap_or(d.0));
        let mut ids: HashMap<String, String> = HashMap::new();
        let mut results: Vec<Option<Value>> = vec![None; ops.len()];
        let mut deferred: Vec<(usize, Map<String, Value>)> = Vec::new();
        let mut errors = 0usize;
        let mut pending: Vec<usize> = (0..ops.len()).collect();
        while !pending.is_empty() {
            let (at, split) = next(&pending, &ops, &ids, &results);
            let i = pending.remove(at);
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                results[i] = Some(not_run(&ops[i]));
                for &j in &pending {
                    results[j] = Some(not_run(&ops[j]));
                }
                break;
            }
            let op = &ops[i];
            if let Some(why) = referenced(op).iter().filter(|b| !ids.contains_key(*b)).find_map(|b| unresolvable(b, &ops, &results)) {
                errors += 1;
                let path = resolved_path(&op.path, &ids);
                let refused = Some(ScimError::InUse(why));
                let resp = self.bulk_operation(principal, &op.method, &path, op.version.as_deref(), None, base_url, refused).await;
                results[i] = Some(outcome(op, &resp));
                if fail_on_errors.is_some_and(|n| errors >= n) {
                    break;
                }
                continue;
            }
            let data = op.data.as_ref().map(|d| resolved(d, &ids));
            let (data, later) = match (split, &data) {
                (true, Some(d)) => {
                    let (now, later) = without_pending(d, &ids);
                    (Some(now), later)
                }
                _ => (data, Map::new()),
            };
            let path = resolved_path(&op.path, &ids);
            let resp = self.bulk_operation(principal, &op.method, &path, op.version.as_deref(), data.as_ref(), base_url, None).await;
            if let (Some(b), Some(id)) = (&op.bulk_id, resp.created.as_ref().filter(|_| resp.status == 201)) {
                ids.insert(b.clone(), id.clone());
                if !later.is_empty() {
                    deferred.push((i, later));
                }
            }
            if resp.status >= 400 {
                errors += 1;
            }
            results[i] = Some(outcome(op, &resp));
            if fail_on_errors.is_some_and(|n| errors >= n) {
                break;
            }
        }
        self.complete_deferred(principal, &ops, &ids, deferred, &mut results, base_url).await;
        let done: Vec<Value> = results.into_iter().flatten().collect();
        let body = json!({"schemas": [URN_BULK_RESPONSE], "Operations": done});
        Ok(Response::json(200, &body))
    }

    /// The references §3.7.1 left out of a create, added by PATCH once their resources exist;
    /// an operation whose PATCH fails reports that failure as its own.
    async fn complete_deferred(
        &self,
        principal: &Principal,
        ops: &[Operation],
        ids: &HashMap<String, String>,
        deferred: Vec<(usize, Map<String, Value>)>,
        results: &mut [Option<Value>],
        base_url: &str,
    ) {
        for (i, later) in deferred {
            let (Some(b), Some(result)) = (&ops[i].bulk_id, results[i].as_mut()) else { continue };
            let (Some(id), Some(location)) = (ids.get(b), result["location"].as_str().map(str::to_string)) else { continue };
            let collection = ops[i].path.trim_end_matches('/');
            let operations: Vec<Value> = later.iter().map(|(k, v)| json!({"op": "add", "path": k, "value": resolved(v, ids)})).collect();
            let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations});
            let resp = self.bulk_operation(principal, "PATCH", &format!("{collection}/{id}"), None, Some(&patch), base_url, None).await;
            if resp.status >= 400 {
                let mut o = outcome(&ops[i], &resp);
                o["location"] = json!(location);
                *result = o;
            } else if let Some(v) = resp.header(http::header::ETAG) {
                result["version"] = json!(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_strictly() {
        let ok = json!({"schemas": [URN_BULK_REQUEST], "Operations": [{"method": "post", "path": "/Users", "bulkId": "a", "data": {}}]});
        let (ops, f) = parse(&ok).unwrap();
        assert_eq!((ops[0].method.as_str(), f), ("POST", None));
        for (bad, status) in [
            (json!({"Operations": []}), 400),
            (json!({"schemas": [URN_BULK_REQUEST]}), 400),
            (json!({"schemas": [URN_BULK_REQUEST], "Operations": [{"method": "POST", "path": "/Users", "data": {}}]}), 400),
            (json!({"schemas": [URN_BULK_REQUEST], "Operations": [{"method": "GET", "path": "/Users"}]}), 400),
            (json!({"schemas": [URN_BULK_REQUEST], "failOnErrors": 0, "Operations": []}), 400),
            (
                json!({"schemas": [URN_BULK_REQUEST], "Operations": [{"method": "POST", "path": "/Users", "bulkId": "a"}, {"method": "POST", "path": "/Users", "bulkId": "a"}]}),
                400,
            ),
            (
                json!({"schemas": [URN_BULK_REQUEST], "Operations": vec![json!({"method": "DELETE", "path": "/Users/x"}); MAX_OPERATIONS + 1]}),
                413,
            ),
        ] {
            assert_eq!(parse(&bad).unwrap_err().status(), status, "{bad:.200}");
        }
    }

    #[test]
    fn references_resolve_and_split() {
        let data = json!({"displayName": "g", "members": [{"value": "bulkId:u1"}, {"value": "bulkId:u2"}], "schemas": ["x"]});
        let mut r = Vec::new();
        references(&data, &mut r);
        assert_eq!(r, ["u1", "u2"]);
        let ids: HashMap<String, String> = [("u1".to_string(), "id-1".to_string())].into();
        assert_eq!(resolved(&data, &ids)["members"][0]["value"], "id-1");
        let (now, later) = without_pending(&resolved(&data, &ids), &ids);
        assert!(now.get("members").is_none() && now.get("displayName").is_some() && now.get("schemas").is_some());
        assert!(later.contains_key("members"));
        assert_eq!(path_references("/Users/bulkId:u1"), ["u1"]);
        assert_eq!(resolved_path("/Users/bulkId:u1", &ids), "/Users/id-1");
        assert_eq!(resolved_path("/Users/bulkId:zz", &ids), "/Users/bulkId:zz");
    }
}
