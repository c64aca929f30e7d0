//! The HTTP edge, free of any server or Lambda type: `App::handle` turns a request into a SCIM
//! response and never fails (every error becomes a SCIM Error body). It matches the route
//! ([`routes`]), admits it (the function serves it, the key's role has its permission, the
//! tenant is within its request limit), reads its body once, runs its operation through the
//! service, and records the attempt in the tenant's activity log. It reaches the store only
//! through the service.

pub mod bulk;
pub mod routes;
mod wire;

pub use routes::{BodyUse, Matched, Op, ROUTES, RouteSpec, functions, match_route, parse_query, percent_decode};
pub use wire::{HttpRequest, Request, Response, SCIM_JSON, base_url, is_json_media_type, json_request, path_under_base, rebased_uri};

use crate::activity;
use crate::auth::{self, Principal};
use crate::discovery::{self, MAX_PAYLOAD};
use crate::error::{Result, ScimError};
use crate::kind::Kind;
use crate::list_query::ListQuery;
use crate::messages::ListResponse;
use crate::projection::Projection;
use crate::service::{Configured, Ctx, Service, Written, etag};
use crate::store::layout::Stored;
use serde_json::Value;

/// What an audited request was about: the route it matched (with the id in its path), and the
/// resource a create made.
#[derive(Clone, Copy)]
struct Target<'a> {
    matched: Option<&'a Matched>,
    created: Option<&'a str>,
}

/// The application: the service, and the route table it serves.
pub struct App {
    /// The SCIM service every route runs its operation through (the edge's only way to the store).
    pub service: Service,
    routes: &'static [RouteSpec],
}

impl App {
    /// An app serving [`ROUTES`] over a service (or a table: `App::new(table)`).
    pub fn new(service: impl Into<Service>) -> App {
        App::with_routes(service, ROUTES)
    }

    /// An app serving other routes (a test fixture's table, say).
    pub fn with_routes(service: impl Into<Service>, routes: &'static [RouteSpec]) -> App {
        App { service: service.into(), routes }
    }

    /// Authenticates a request's bearer key (the authorizer's job; in process when local).
    pub async fn authenticate(&self, authorization: Option<&str>, source_ip: Option<std::net::IpAddr>) -> Result<Principal> {
        self.service.authenticate(authorization, source_ip, None).await
    }

    /// [`App::authenticate`] for a request: a refused key of a known tenant is recorded in that
    /// tenant's activity log.
    pub async fn authenticate_attempt(
        &self,
        authorization: Option<&str>,
        source_ip: Option<std::net::IpAddr>,
        attempt: auth::Attempt<'_>,
    ) -> Result<Principal> {
        self.service.authenticate(authorization, source_ip, Some(attempt)).await
    }

    /// Serves one request for an authenticated principal. `only` names the function whose
    /// routes it serves (a Lambda serves its own and answers 404 for anything else).
    pub async fn handle(&self, principal: &Principal, req: &HttpRequest, base_url: &str, only: Option<&str>) -> Response {
        self.handle_under(principal, req, req.uri().path(), base_url, only).await
    }

    /// [`App::handle`] for a request with the URI its client sent: `path` is the part of it
    /// under the base URL (the entry point cut off what precedes it); the query is the URI's.
    /// No URI is rebuilt.
    pub async fn handle_under(&self, principal: &Principal, req: &HttpRequest, path: &str, base_url: &str, only: Option<&str>) -> Response {
        // the answer waits until every write the request made (its audit entry included) is
        // durable: once, for all of them (`store::durability`)
        // every store call of the request acts for its tenant (`store::scope`: in AWS, with
        // credentials that reach only that tenant's items)
        // (boxed: the whole request's future is large, and this keeps it off the caller's stack)
        let work = Box::pin(self.service.durably(self.answer(principal, req, path, base_url, only)));
        match self.service.acting_for(&principal.tenant_id, work).await {
            (resp, Ok(())) => resp,
            (_, Err(e)) => Response::error(&e),
        }
    }

    /// [`App::handle_under`] before its writes are confirmed durable.
    async fn answer(&self, principal: &Principal, req: &HttpRequest, path: &str, base_url: &str, only: Option<&str>) -> Response {
        let req = &Request::of(req, path);
        let matched = match_route(self.routes, req.method, req.path);
        let undeclared = crate::resource::Undeclared::new(principal.unknown_extensions == crate::tenancy::UnknownExtensions::Reject);
        let outcome = match &matched {
            Ok(m) => self.dispatch(principal, req, base_url, only, m, &undeclared).await,
            Err(e) => Err(e.clone()),
        };
        let (resp, failure) = match outcome {
            Ok(r) => (r, None),
            Err(e) => (Response::error(&e), Some(e)),
        };
        // The tenant's activity log: every attempt on a mutating route whatever its outcome
        // (refusals included), anything that matched no route (an unknown method or path is an
        // attempt too), and every failed request on any route. A read that succeeded writes
        // nothing.
        let record = match &matched {
            Ok(m) => m.spec.mutating || failure.is_some(),
            Err(_) => true,
        };
        if record {
            let target = Target { matched: matched.as_ref().ok(), created: resp.created.as_deref() };
            self.audit(principal, req, target, resp.status, failure.as_ref(), undeclared.urns()).await;
        }
        resp
    }

    /// Answers a request its entry point refused before the edge could read it whole (a body
    /// over the limit, a body whose framing is broken): the SCIM error for `e`, and the attempt
    /// in the tenant's audit log like any other refusal of a recognised key. `req` carries no
    /// body.
    pub async fn refuse_under(&self, principal: &Principal, req: &HttpRequest, path: &str, e: &ScimError) -> Response {
        let req = &Request::of(req, path);
        let matched = match_route(self.routes, req.method, req.path).ok();
        let resp = Response::error(e);
        self.audit(principal, req, Target { matched: matched.as_ref(), created: None }, resp.status, Some(e), Vec::new()).await;
        resp
    }

    /// Records an attempt in the tenant's activity (audit) log: who (key id, the client's
    /// User-Agent), what (route, method, path, resource id), outcome (status, and for a failure
    /// its scimType and detail), when. Never bodies or secrets; the client's text is cut to a
    /// bounded length. Failing to record does not fail the request; it is logged.
    async fn audit(
        &self,
        principal: &Principal,
        req: &Request<'_>,
        target: Target<'_>,
        status: u16,
        failure: Option<&ScimError>,
        undeclared: Vec<String>,
    ) {
        let detail = failure.map(|e| e.client_detail());
        let entry = activity::Entry {
            key_id: &principal.key_id,
            route: target.matched.map(|m| m.spec.function),
            method: req.method,
            path: req.path,
            resource_id: target.created.or(target.matched.and_then(|m| m.id.as_deref())),
            status,
            scim_type: failure.and_then(ScimError::scim_type).map(|t| t.as_str()),
            detail: detail.as_deref(),
            user_agent: req.header(http::header::USER_AGENT),
            undeclared_extensions: &undeclared,
            unauthenticated: false,
        };
        self.service.record(&principal.tenant_id, entry).await;
    }

    /// Whether this request may run at all: the route is one this function serves, the key's
    /// role has the route's permission, and the tenant is within its request limit.
    async fn admit(&self, principal: &Principal, req: &Request<'_>, spec: &RouteSpec, only: Option<&str>) -> Result<()> {
        if only.is_some_and(|f| f != spec.function) {
            return Err(ScimError::NotFound(format!("no endpoint at {}", req.path)));
        }
        if !principal.may(spec.permission) {
            return Err(ScimError::Forbidden(format!(
                "the key's role '{}' may not {} {} (it needs {})",
                principal.role,
                spec.method,
                spec.path,
                spec.permission.as_str()
            )));
        }
        // per-tenant request limit (discovery is static and exempt); the limiter fails open
        let Some(limit) = principal.rate_limit.filter(|_| spec.function != "discovery") else { return Ok(()) };
        match self.service.tick(&principal.tenant_id).await {
            Ok(n) if n > i64::from(limit) => {
                Err(ScimError::TooManyRequests { detail: format!("this tenant is limited to {limit} requests per second"), retry_after: 1 })
            }
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "rate limiter unavailable; request allowed");
                Ok(())
            }
        }
    }

    async fn dispatch(
        &self,
        principal: &Principal,
        req: &Request<'_>,
        base_url: &str,
        only: Option<&str>,
        m: &Matched,
        undeclared: &crate::resource::Undeclared,
    ) -> Result<Response> {
        self.admit(principal, req, m.spec, only).await?;
        let doc = body(req, m.spec.body)?;
        let types = self.service.tenant_types(&principal.tenant_id, principal.schemas_version).await?;
        let ctx = Ctx { principal, base_url, types: &types, undeclared };
        let op = declared_op(m, &types)?;
        self.run(ctx, req, &doc, op, m.id.as_deref().unwrap_or_default()).await
    }

    /// Runs a route's operation.
    async fn run(&self, ctx: Ctx<'_>, req: &Request<'_>, doc: &Value, op: Op, id: &str) -> Result<Response> {
        let (base_url, types, roles) = (ctx.base_url, ctx.types, ctx.roles().is_some());
        Ok(match op {
            Op::Create(kind) => self.create(ctx, req, doc, kind).await?,
            Op::Get(kind) => self.get(ctx, req, kind, id).await?,
            Op::Replace(kind) => {
                let s = self.service.replace(ctx, kind, id, doc, req.header(http::header::IF_MATCH)).await?;
                self.rendered(ctx, req, kind, s, 200, Written::Changed).await?
            }
            Op::Patch(kind) => self.patch(ctx, req, doc, kind, id).await?,
            Op::Delete(kind) => {
                self.service.delete(ctx, kind, id, req.header(http::header::IF_MATCH)).await?;
                Response::empty(204)
            }
            Op::List(kind) => Response::json(200, &self.service.list_response(ctx, kind, &ListQuery::from_params(&req.query)?).await?),
            Op::Search(kind) => Response::json(200, &self.service.list_response(ctx, kind, &ListQuery::from_search(doc)?).await?),
            Op::RootSearch => Response::json(200, &self.root_search(ctx, &ListQuery::from_search(doc)?).await?),
            Op::ServiceProviderConfig => Response::json(200, &discovery::service_provider_config(base_url)),
            Op::ResourceTypes => Response::json(200, &discovery::resource_type_list(base_url, types, roles)),
            Op::ResourceType => Response::json(200, &discovery::resource_type(base_url, types, id, roles)?),
            Op::Schemas => Response::json(200, &discovery::schema_list(base_url, types, roles)),
            Op::Schema => Response::json(200, &discovery::schema(base_url, types, id, roles)?),
            Op::Bulk => self.bulk(ctx.principal, req, doc, base_url).await?,
            Op::Settings(op) => match self.service.configure(op, ctx.principal, base_url, doc, id).await? {
                Configured::Shown(v) | Configured::Changed(v) => Response::json(200, &v),
                Configured::Made(v) => Response::json(201, &v),
                Configured::Gone => Response::empty(204),
            },
        })
    }

    /// A resource as the client asked to see it (`attributes`, `excludedAttributes`), with its
    /// ETag, and its location when it was just made.
    async fn rendered(&self, ctx: Ctx<'_>, req: &Request<'_>, kind: Kind, s: Stored, status: u16, written: Written) -> Result<Response> {
        let rt = ctx.types.of(kind);
        let projection = Projection::new(rt, query(req, "attributes"), query(req, "excludedAttributes"));
        let (version, location) = (s.version, (status == 201).then(|| format!("{}{}/{}", ctx.base_url, rt.endpoint, s.id())));
        let doc = self.service.render(ctx, kind, s, &projection, written).await?;
        let mut r = Response::json(status, &doc);
        r.set_header(http::header::ETAG, etag(version));
        if let Some(l) = location {
            r.set_header(http::header::LOCATION, l);
        }
        Ok(r)
    }

    /// `POST /Users`, `POST /Groups`: 201 with the resource and its location.
    async fn create(&self, ctx: Ctx<'_>, req: &Request<'_>, doc: &Value, kind: Kind) -> Result<Response> {
        let (stored, written) = self.service.create(ctx, kind, doc).await?;
        let id = stored.id().to_string();
        Ok(Response { created: Some(id), ..self.rendered(ctx, req, kind, stored, 201, written).await? })
    }

    /// `GET /{collection}/{id}`, written from the stored text. A group's version covers its own
    /// attributes, not its member items (adding one member must not contend on the group item),
    /// so groups never answer `If-None-Match` with 304; users and declared types do.
    async fn get(&self, ctx: Ctx<'_>, req: &Request<'_>, kind: Kind, id: &str) -> Result<Response> {
        let rt = ctx.types.of(kind);
        let s = self.service.get_text(ctx, kind, id).await?;
        let tag = etag(s.version);
        let unchanged =
            kind != Kind::Group && req.header(http::header::IF_NONE_MATCH).is_some_and(|h| h.split(',').any(|t| t.trim() == tag));
        let mut r = match unchanged {
            true => Response::empty(304),
            false => {
                let projection = Projection::new(rt, query(req, "attributes"), query(req, "excludedAttributes"));
                Response::json_body(200, self.service.read(ctx, kind, &s, &projection).await?)
            }
        };
        r.set_header(http::header::ETAG, tag);
        Ok(r)
    }

    /// `PATCH`: a user or a declared type's resource comes back whole; a group answers 204 (a
    /// large group's members are not sent back) unless the client asks for attributes.
    async fn patch(&self, ctx: Ctx<'_>, req: &Request<'_>, doc: &Value, kind: Kind, id: &str) -> Result<Response> {
        let s = self.service.patch(ctx, kind, id, doc, req.header(http::header::IF_MATCH)).await?;
        let asked = query(req, "attributes").is_some() || query(req, "excludedAttributes").is_some();
        if kind != Kind::Group || asked {
            return self.rendered(ctx, req, kind, s, 200, Written::Changed).await;
        }
        let mut r = Response::empty(204);
        r.set_header(http::header::ETAG, etag(s.version));
        Ok(r)
    }

    /// `POST /.search`: Users, Groups, then the tenant's declared types, paged together. A
    /// filter naming attributes of one type simply matches nothing of another.
    async fn root_search(&self, ctx: Ctx<'_>, q: &ListQuery) -> Result<ListResponse> {
        if q.cursor.is_some() {
            return Err(ScimError::invalid_value("cursor pagination is not offered on /.search; use /Users or /Groups"));
        }
        let mut all: Vec<Value> = Vec::new();
        let mut total = 0u64;
        for kind in ctx.types.kinds() {
            let rt = ctx.types.of(kind);
            // a sort attribute of the other type sorts nothing here
            let sort_by = q.sort_by.clone().filter(|s| crate::path::AttrPath::parse(s).ok().and_then(|p| p.resolve(rt)).is_some());
            let whole = ListQuery { start_index: 1, count: crate::list_query::MAX_COUNT, sort_by, ..q.clone() };
            let page = self.service.list_response(ctx, kind, &whole).await?;
            total += page.total_results.unwrap_or(0);
            all.extend(page.resources);
        }
        let start = q.start_index.max(1);
        let resources: Vec<Value> = all.into_iter().skip((start - 1) as usize).take(q.count as usize).collect();
        Ok(ListResponse { total_results: Some(total), start_index: Some(start), ..ListResponse::whole(resources) })
    }
}

/// The row's operation, on the tenant's declared type its path names when the row stands for
/// any (`/{type}`): 404 when the tenant declares none there.
fn declared_op(m: &Matched, types: &crate::tenant_types::TenantSchemas) -> Result<Op> {
    let Some(segment) = m.collection.as_deref() else { return Ok(m.spec.op) };
    let kind = types.declared_at(segment).ok_or_else(|| ScimError::NotFound(format!("no endpoint at /{segment}")))?;
    Ok(match m.spec.op {
        Op::Create(_) => Op::Create(kind),
        Op::List(_) => Op::List(kind),
        Op::Search(_) => Op::Search(kind),
        Op::Get(_) => Op::Get(kind),
        Op::Replace(_) => Op::Replace(kind),
        Op::Patch(_) => Op::Patch(kind),
        Op::Delete(_) => Op::Delete(kind),
        other => other,
    })
}

fn query<'a>(req: &'a Request<'_>, name: &str) -> Option<&'a str> {
    crate::names::pair(&req.query, name)
}

/// The request body as the route reads it (`Null` when it reads none, or an optional one is
/// absent): size, media type and syntax checked, each with its own error. A body naming one
/// member twice is refused ([`crate::json`]).
fn body(req: &Request<'_>, reads: BodyUse) -> Result<Value> {
    if reads == BodyUse::Ignored {
        return Ok(Value::Null);
    }
    let blank = req.body.iter().all(u8::is_ascii_whitespace);
    if reads == BodyUse::OptionalJson && blank {
        return Ok(Value::Null);
    }
    if req.body.len() > MAX_PAYLOAD {
        return Err(ScimError::PayloadTooLarge(format!("request body over {MAX_PAYLOAD} bytes")));
    }
    if let Some(ct) = req.header(http::header::CONTENT_TYPE)
        && !is_json_media_type(ct)
    {
        let media = ct.split(';').next().unwrap_or_default().trim();
        return Err(ScimError::UnsupportedMediaType(format!(
            "send Content-Type: application/scim+json (or application/json), not {media}"
        )));
    }
    if blank {
        return Err(ScimError::invalid_syntax("the request body is empty"));
    }
    crate::json::parse(req.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roles::Permission;

    #[test]
    fn one_base_url_and_one_path_under_it_for_every_entry_point() {
        assert_eq!(base_url("https://h.example", "/v1"), "https://h.example/v1/scim/v2");
        assert_eq!(base_url("http://127.0.0.1:8787/", ""), "http://127.0.0.1:8787/scim/v2");
        for (path, under) in [
            ("/scim/v2/Users", Some("/Users")),
            ("/v1/scim/v2/Users/1", Some("/Users/1")),
            ("/scim/v2", Some("")),
            ("/scim/v2Users", None),
            ("/scim/v2x/scim/v2/Users", Some("/Users")),
            ("/Users", None),
        ] {
            assert_eq!(path_under_base(path), under, "{path}");
        }
    }

    #[test]
    fn only_json_media_types_are_bodies() {
        for ok in ["application/scim+json", "application/json", "Application/SCIM+JSON; charset=utf-8", " application/json ;x=y"] {
            assert!(is_json_media_type(ok), "{ok}");
        }
        for no in
            ["text/plain", "*/*", "application/x-amz-json-1.0", "application/jsonx", "text/json", "", "application/x-www-form-urlencoded"]
        {
            assert!(!is_json_media_type(no), "{no}");
        }
    }

    /// A route is one row: a fixture that adds a row (here `GET /Me/{id}`, reading a user) is
    /// served with nothing else changed — no enum, no match arm.
    #[tokio::test]
    async fn a_route_is_one_row() {
        let mut rows = ROUTES.to_vec();
        rows.push(routes::read(Op::Get(Kind::User), "GET", "/Me/{id}", "users-get", Permission::ScimRead));
        let app = App::with_routes(
            std::sync::Arc::new(crate::store::embedded::EmbeddedTable::in_memory()) as std::sync::Arc<dyn crate::store::Table>,
            rows.leak(),
        );
        crate::tenancy::create_tenant(app.service.layout(), "t", "T").await.unwrap();
        let key = crate::tenancy::create_key(app.service.layout(), "t", "admin", None).await.unwrap();
        let p = app.authenticate(Some(&format!("Bearer {}", key.token)), None).await.unwrap();
        let body = serde_json::json!({"schemas": [crate::schema::URN_USER], "userName": "me@example.com"});
        let made = app.handle(&p, &json_request("POST", "/Users", Some(&body)), "http://x/scim/v2", None).await;
        let id = serde_json::from_slice::<Value>(&made.body).unwrap()["id"].as_str().unwrap().to_string();
        let got = app.handle(&p, &json_request("GET", &format!("/Me/{id}"), None), "http://x/scim/v2", None).await;
        assert_eq!(got.status, 200);
        assert_eq!(serde_json::from_slice::<Value>(&got.body).unwrap()["userName"], "me@example.com");
        let plain =
            App::new(std::sync::Arc::new(crate::store::embedded::EmbeddedTable::in_memory()) as std::sync::Arc<dyn crate::store::Table>);
        assert_eq!(match_route(plain.routes, "GET", "/Me/x").unwrap_err().status(), 404, "the standard table has no such row");
    }
}
