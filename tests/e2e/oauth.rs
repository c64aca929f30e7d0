//! OAuth 2.0 client credentials through the HTTP edge, on both stores: the token endpoint
//! (RFC 6749 §4.4, errors of §5.2), discovery (RFC 8414, JWKS), access tokens on the SCIM
//! routes, and everything that must be refused: forged, confused, expired, foreign, revoked.

use super::*;
use base64::Engine;
use hmac::{Hmac, Mac};
use scim_core::crypto::{b64, b64_decode};
use scim_core::jwt::Signer;
use scim_core::oauth::{self, Claims, KeyRing, NewSecret};
use scim_tests::{Client, Resp, Server, both_stores};

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

fn root(srv: &Server) -> String {
    srv.base.strip_suffix("/scim/v2").expect("a base URL ends in /scim/v2").to_string()
}

/// A token request with a form body and extra headers.
async fn token_request(srv: &Server, body: &str, headers: &[(&str, &str)]) -> Resp {
    let mut all = vec![FORM];
    all.extend_from_slice(headers);
    Client::new(&root(srv), "").send("POST", "/oauth2/token", Some(body), &all).await
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
}

/// A client of the local tenant with a role.
async fn client(srv: &Server, role: &str) -> NewSecret {
    oauth::create_client(srv.app.service.layout(), "local", role, None).await.expect("an OAuth client")
}

/// An access token for a client secret (client_secret_basic).
async fn token_of(srv: &Server, c: &NewSecret) -> String {
    let r = token_request(srv, "grant_type=client_credentials", &[("authorization", &basic(&c.client_id, &c.secret))]).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    r.body["access_token"].as_str().expect("a token").to_string()
}

/// The server's current signing key, to forge tokens the server would sign itself.
async fn server_signer(srv: &Server) -> Signer {
    let (ring, _) = srv.app.service.layout().token_keys::<KeyRing>().await.unwrap().expect("a signing key");
    let k = ring.keys.last().unwrap();
    Signer::from_pkcs8(&k.kid, &b64_decode(&k.pkcs8).unwrap()).unwrap()
}

fn claims_of(token: &str) -> Claims {
    serde_json::from_slice(&b64_decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

both_stores!(client_credentials_tokens_work_on_the_scim_routes, |srv| {
    let c = client(&srv, "provisioner").await;
    // client_secret_basic
    let r = token_request(&srv, "grant_type=client_credentials&scope=scim", &[("authorization", &basic(&c.client_id, &c.secret))]).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        (r.body["token_type"].as_str(), r.body["expires_in"].as_i64(), r.body["scope"].as_str()),
        (Some("Bearer"), Some(3600), Some("scim"))
    );
    let token = r.body["access_token"].as_str().unwrap().to_string();
    let claims = claims_of(&token);
    assert_eq!(
        (claims.sub.as_str(), claims.aud.as_str(), claims.tenant.as_str(), claims.role.as_str()),
        (c.client_id.as_str(), srv.base.as_str(), "local", "provisioner")
    );
    assert_eq!(claims.iss, root(&srv));
    // client_secret_post, and an Entra-style scope the server answers with its own
    let body = format!("grant_type=client_credentials&client_id={}&client_secret={}&scope=api%3A%2F%2Fx%2F.default", c.client_id, c.secret);
    let r = token_request(&srv, &body, &[]).await;
    assert_eq!((r.status, r.body["scope"].as_str()), (200, Some("scim")), "{}", r.raw);

    let api = Client::new(&srv.base, &token);
    let made = api.post("/Users", &user("oauth.user@example.com")).await;
    assert_eq!(made.status, 201, "{}", made.raw);
    let id = id_of(&made.body);
    assert_eq!(api.get(&format!("/Users/{id}")).await.status, 200);
    assert_eq!(
        api.patch(&format!("/Users/{id}"), &patch_op(json!([{"op": "replace", "path": "active", "value": false}]))).await.status,
        200
    );
    // the role holds: a provisioner may not configure
    api.get("/Settings").await.assert_error(403, None);
    let reader = Client::new(&srv.base, &token_of(&srv, &client(&srv, "reader").await).await);
    assert_eq!(reader.get(&format!("/Users/{id}")).await.status, 200);
    reader.post("/Users", &user("nope@example.com")).await.assert_error(403, None);

    // the activity log names the client for the issuance and the writes, never a secret or token
    let day = scim_core::time::now()[..10].to_string();
    let audit = srv.app.service.layout().audit_entries("local", &day).await.unwrap();
    let text = serde_json::to_string(&audit).unwrap();
    assert!(audit.iter().any(|e| e["key_id"] == json!(c.client_id) && e["detail"] == "token request: access token issued"), "{text}");
    assert!(audit.iter().any(|e| e["key_id"] == json!(c.client_id) && e["method"] == "POST" && e["status"] == 201), "{text}");
    assert!(!text.contains(&c.secret) && !text.contains(&token) && !text.contains(token.split('.').nth(2).unwrap()));
});

both_stores!(token_endpoint_errors_are_rfc6749s, |srv| {
    let c = client(&srv, "provisioner").await;
    let auth = basic(&c.client_id, &c.secret);
    let a = [("authorization", auth.as_str())];
    let expect = |r: &Resp, status: u16, error: &str| {
        assert_eq!((r.status, r.body["error"].as_str()), (status, Some(error)), "{}", r.raw);
        assert_eq!(r.header("cache-control"), Some("no-store"), "{}", r.raw);
        assert!(r.body["error_description"].is_string(), "{}", r.raw);
    };
    expect(&token_request(&srv, "", &a).await, 400, "invalid_request");
    expect(&token_request(&srv, "grant_type=password&username=a&password=b", &a).await, 400, "unsupported_grant_type");
    expect(&token_request(&srv, "grant_type=client_credentials&grant_type=client_credentials", &a).await, 400, "invalid_request");
    expect(&token_request(&srv, "grant_type=client_credentials&scope=%22bad%22", &a).await, 400, "invalid_scope");
    let both = format!("grant_type=client_credentials&client_id={}&client_secret={}", c.client_id, c.secret);
    expect(&token_request(&srv, &both, &a).await, 400, "invalid_request");
    let none = token_request(&srv, "grant_type=client_credentials", &[]).await;
    expect(&none, 401, "invalid_client");
    assert!(none.header("www-authenticate").is_some_and(|h| h.starts_with("Basic")), "{:?}", none.headers);
    expect(
        &token_request(&srv, "grant_type=client_credentials", &[("authorization", &basic("0123456789abcdef0123", "x"))]).await,
        401,
        "invalid_client",
    );
    expect(
        &token_request(&srv, "grant_type=client_credentials", &[("authorization", &basic("not-a-client", "x"))]).await,
        401,
        "invalid_client",
    );
    let json_body = Client::new(&root(&srv), "")
        .send("POST", "/oauth2/token", Some("{}"), &[("content-type", "application/json"), ("authorization", &auth)])
        .await;
    expect(&json_body, 400, "invalid_request");
    let get = Client::new(&root(&srv), "").get("/oauth2/token").await;
    assert_eq!(get.status, 405, "{}", get.raw);
    // a client assertion needs the client's id, and nothing else beside it (tests/e2e/federation.rs has the rest)
    let wif = "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=x";
    let r = token_request(&srv, wif, &[]).await;
    expect(&r, 400, "invalid_request");
    assert!(r.raw.contains("client_id is required"), "{}", r.raw);
    expect(&token_request(&srv, &format!("{wif}&client_id={}", c.client_id), &a).await, 400, "invalid_request");
    // a client with a secret does not take assertions
    expect(&token_request(&srv, &format!("{wif}&client_id={}", c.client_id), &[]).await, 401, "invalid_client");
});

both_stores!(forged_confused_expired_and_foreign_tokens_are_refused, |srv| {
    let c = client(&srv, "reader").await;
    let good = token_of(&srv, &c).await;
    let base = claims_of(&good);
    let signer = server_signer(&srv).await;
    let now = scim_core::time::unix_now();
    let refused = |t: String| {
        let base = srv.base.clone();
        async move {
            let r = Client::new(&base, &t).get("/Users").await;
            r.assert_error(401, None);
            r
        }
    };
    let parts: Vec<&str> = good.split('.').collect();
    // alg none, with and without a signature part
    let none = b64(br#"{"alg":"none","typ":"at+jwt"}"#);
    refused(format!("{none}.{}.", parts[1])).await;
    refused(format!("{none}.{}.{}", parts[1], parts[2])).await;
    // HS256 keyed with the public JWK (algorithm confusion)
    let jwk = serde_json::to_string(&signer.public_jwk()).unwrap();
    let hs = b64(format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{}"}}"#, signer.kid()).as_bytes());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(jwk.as_bytes()).unwrap();
    mac.update(format!("{hs}.{}", parts[1]).as_bytes());
    refused(format!("{hs}.{}.{}", parts[1], b64(&mac.finalize().into_bytes()))).await;
    // the claims changed under the signature (reader → admin)
    let admin = Claims { role: "admin".into(), ..base.clone() };
    refused(format!("{}.{}.{}", parts[0], b64(serde_json::to_string(&admin).unwrap().as_bytes()), parts[2])).await;
    // signed by another key under the server's key id
    let stranger = Signer::from_pkcs8(signer.kid(), &scim_core::jwt::generate_pkcs8()).unwrap();
    refused(stranger.sign("at+jwt", &admin)).await;
    // properly signed, but expired, not yet valid, for another audience, or not an access token
    refused(signer.sign("at+jwt", &Claims { exp: now - 1, ..base.clone() })).await;
    refused(signer.sign("at+jwt", &Claims { iat: now + 3600, exp: now + 7200, ..base.clone() })).await;
    refused(signer.sign("at+jwt", &Claims { aud: "https://other.example/scim/v2".into(), ..base.clone() })).await;
    refused(signer.sign("at+jwt", &Claims { iss: "https://other.example".into(), ..base.clone() })).await;
    refused(signer.sign("JWT+id", &base)).await;
    refused("eyJhbGciOiJFUzI1NiJ9.e30.AAAA".into()).await;
    // still good after all that
    assert_eq!(Client::new(&srv.base, &good).get("/Users").await.status, 200);

    // tenant A's token on tenant B's data: nothing seen, nothing changed
    let b = srv.tenant_key("tenant-b", "admin").await;
    let theirs = id_of(&b.post("/Users", &user("b.user@example.com")).await.body);
    let writer = Client::new(&srv.base, &token_of(&srv, &client(&srv, "provisioner").await).await);
    writer.get(&format!("/Users/{theirs}")).await.assert_error(404, None);
    writer.delete(&format!("/Users/{theirs}")).await.assert_error(404, None);
    assert_eq!(writer.filter("/Users", r#"userName eq "b.user@example.com""#, "").await.body["totalResults"], 0);
    assert_eq!(b.get(&format!("/Users/{theirs}")).await.status, 200);
});

both_stores!(revoked_and_expired_secrets_and_clients_stop, |srv| {
    let layout = srv.app.service.layout();
    let c = client(&srv, "provisioner").await;
    let token = token_of(&srv, &c).await;
    let second = oauth::add_secret(layout, &c.client_id, Some(30)).await.unwrap();
    assert_eq!(second.client_id, c.client_id);
    let token2 = token_of(&srv, &second).await;
    // revoking the first secret: no new token from it, its token stops, the second works
    oauth::revoke(layout, &c.client_id, Some(&c.secret_id)).await.unwrap();
    let r = token_request(&srv, "grant_type=client_credentials", &[("authorization", &basic(&c.client_id, &c.secret))]).await;
    assert_eq!((r.status, r.body["error"].as_str()), (401, Some("invalid_client")), "{}", r.raw);
    Client::new(&srv.base, &token).get("/Users").await.assert_error(401, None);
    assert_eq!(Client::new(&srv.base, &token2).get("/Users").await.status, 200);
    // at most five active secrets
    for _ in 0..4 {
        oauth::add_secret(layout, &c.client_id, None).await.unwrap();
    }
    assert_eq!(oauth::add_secret(layout, &c.client_id, None).await.unwrap_err().status(), 409);
    assert_eq!(oauth::add_secret(layout, &c.client_id, Some(1096)).await.unwrap_err().status(), 400);
    // an expired secret
    layout
        .modify_oauth_client::<oauth::ClientRecord>(&c.client_id, |rec| {
            rec.secrets.iter_mut().find(|s| s.id == second.secret_id).unwrap().expires_at = 1;
            true
        })
        .await
        .unwrap();
    let r = token_request(&srv, "grant_type=client_credentials", &[("authorization", &basic(&c.client_id, &second.secret))]).await;
    assert_eq!((r.status, r.body["error_description"].as_str()), (401, Some("the client secret has expired")), "{}", r.raw);
    // revoking the client: every token of it stops
    oauth::revoke(layout, &c.client_id, None).await.unwrap();
    Client::new(&srv.base, &token2).get("/Users").await.assert_error(401, None);
    assert_eq!(oauth::add_secret(layout, &c.client_id, None).await.unwrap_err().status(), 409);
    let listed = oauth::list_clients(layout, "local").await.unwrap();
    let text = serde_json::to_string(&listed).unwrap();
    assert!(text.contains(&c.client_id) && !text.contains("hash") && !text.contains(&c.secret), "{text}");
    // the refusals are in the tenant's log
    let day = scim_core::time::now()[..10].to_string();
    let audit = srv.app.service.layout().audit_entries("local", &day).await.unwrap();
    assert!(audit.iter().any(|e| e["key_id"] == json!(c.client_id) && e["status"] == 401 && e["path"] == "/Users"), "{audit:?}");
});

both_stores!(many_wrong_secrets_slow_the_client_down, |srv| {
    let c = client(&srv, "provisioner").await;
    let wrong = basic(&c.client_id, "not-the-secret");
    for i in 0..oauth::FAILURES_PER_MINUTE {
        let r = token_request(&srv, "grant_type=client_credentials", &[("authorization", &wrong)]).await;
        assert_eq!(r.status, 401, "attempt {i}: {}", r.raw);
    }
    // past the limit, ten more wrong secrets and even the right one wait
    for _ in 0..10 {
        let r = token_request(&srv, "grant_type=client_credentials", &[("authorization", &wrong)]).await;
        assert_eq!((r.status, r.body["error"].as_str()), (429, Some("slow_down")), "{}", r.raw);
    }
    let r = token_request(&srv, "grant_type=client_credentials", &[("authorization", &basic(&c.client_id, &c.secret))]).await;
    assert_eq!((r.status, r.body["error"].as_str()), (429, Some("slow_down")), "{}", r.raw);
    assert_eq!(r.header("retry-after"), Some("60"));
    // every one of the 21 attempts is in the tenant's log, attributed to nobody
    let day = scim_core::time::now()[..10].to_string();
    let audit = srv.app.service.layout().audit_entries("local", &day).await.unwrap();
    let mine = |status: u16| {
        audit.iter().filter(|e| e["key_id"] == json!(c.client_id) && e["status"] == status && e["unauthenticated"] == true).count()
    };
    assert_eq!((mine(401) as i64, mine(429)), (oauth::FAILURES_PER_MINUTE, 11), "{audit:?}");
    // another client is not slowed
    let other = client(&srv, "provisioner").await;
    token_of(&srv, &other).await;
});

both_stores!(discovery_and_signing_key_rotation, |srv| {
    let meta = Client::new(&root(&srv), "").get("/.well-known/oauth-authorization-server").await;
    assert_eq!(meta.status, 200, "{}", meta.raw);
    assert_eq!(meta.body["issuer"], json!(root(&srv)));
    assert_eq!(meta.body["token_endpoint"], json!(format!("{}/oauth2/token", root(&srv))));
    assert_eq!(meta.body["token_endpoint_auth_methods_supported"], json!(["client_secret_basic", "client_secret_post"]));
    let jwks = |srv: &Server| {
        let r = root(srv);
        async move { Client::new(&r, "").get("/.well-known/jwks.json").await.body["keys"].as_array().cloned().unwrap() }
    };
    let before = jwks(&srv).await;
    assert_eq!(before.len(), 1);
    assert!(before[0].get("d").is_none(), "no private part: {before:?}");
    let c = client(&srv, "reader").await;
    let old = token_of(&srv, &c).await;
    assert_eq!(Client::new(&srv.base, &old).get("/Users").await.status, 200);
    let kid = oauth::rotate_signing_key(srv.app.service.layout()).await.unwrap();
    assert_eq!(jwks(&srv).await.len(), 2);
    // the new key signs; a token of each verifies (the verifier learns the new key at once)
    let new = token_of(&srv, &c).await;
    assert_eq!(scim_core::jwt::header(&new).unwrap().kid.as_deref(), Some(kid.as_str()));
    assert_eq!(Client::new(&srv.base, &new).get("/Users").await.status, 200);
    assert_eq!(Client::new(&srv.base, &old).get("/Users").await.status, 200);
});

both_stores!(a_token_costs_no_more_store_reads_than_a_key, |srv| {
    let id = id_of(&srv.client.post("/Users", &user("cost@example.com")).await.body);
    let path = format!("/Users/{id}");
    let token = Client::new(&srv.base, &token_of(&srv, &client(&srv, "reader").await).await);
    // warm both (the key's tenant and the token's signing key are learnt once per process)
    srv.client.get(&path).await;
    token.get(&path).await;
    let calls = |c: Client| {
        let (metered, path) = (srv.metered.clone(), path.clone());
        async move {
            let before = metered.counts();
            assert_eq!(c.get(&path).await.status, 200);
            let after = metered.counts();
            ((after.get + after.get_many + after.query) - (before.get + before.get_many + before.query), after.rcu - before.rcu)
        }
    };
    let (by_key, by_token) = (calls(srv.client.clone()).await, calls(token).await);
    assert!(by_token.0 <= by_key.0, "a GET with a token made {} store reads, with a key {}", by_token.0, by_key.0);
    assert!(by_token.1 <= by_key.1, "a GET with a token read {} RCU, with a key {}", by_token.1, by_key.1);
});

both_stores!(the_tenants_settings_apply_to_its_tokens, |srv| {
    let c = client(&srv, "provisioner").await;
    // the lifetime is the tenant's: PATCH /Settings (scim:configure), 60 to 360 minutes
    let change = |v: Value| json!({"schemas": ["urn:scim-serverless:api:messages:1.0:TenantSettings"], "tokenLifetimeMinutes": v});
    let r = srv.client.patch("/Settings", &change(json!(120))).await;
    assert_eq!((r.status, &r.body["tokenLifetimeMinutes"]), (200, &json!(120)), "{}", r.raw);
    for bad in [json!(30), json!(361), json!("120"), json!(90.5)] {
        srv.client.patch("/Settings", &change(bad)).await.assert_error(400, Some("invalidValue"));
    }
    let r = token_request(&srv, "grant_type=client_credentials", &[("authorization", &basic(&c.client_id, &c.secret))]).await;
    assert_eq!(r.body["expires_in"], 7200, "{}", r.raw);
    let token = r.body["access_token"].as_str().unwrap().to_string();
    let claims = claims_of(&token);
    assert_eq!(claims.exp - claims.iat, 7200);
    assert_eq!(srv.client.patch("/Settings", &change(Value::Null)).await.body["tokenLifetimeMinutes"], 60);
    // a suspended tenant: no token (unauthorized_client), and its tokens get 403 like its keys
    let suspend = scim_core::tenancy::TenantChange { status: Some("suspended".into()), ..Default::default() };
    scim_core::tenancy::update_tenant(srv.app.service.layout(), "local", &suspend).await.unwrap();
    let r = token_request(&srv, "grant_type=client_credentials", &[("authorization", &basic(&c.client_id, &c.secret))]).await;
    assert_eq!((r.status, r.body["error"].as_str()), (400, Some("unauthorized_client")), "{}", r.raw);
    Client::new(&srv.base, &token).get("/Users").await.assert_error(403, None);
});

both_stores!(oauth_clients_are_managed_over_settings_within_the_tenant, |srv| {
    let admin = &srv.client;
    let made = admin.post("/Settings/OAuthClients", &json!({"role": "provisioner", "expiresInDays": 30})).await;
    assert_eq!(made.status, 201, "{}", made.raw);
    let id = made.body["clientId"].as_str().unwrap().to_string();
    let first = made.body["clientSecret"].as_str().unwrap().to_string();
    let first_id = made.body["secretId"].as_str().unwrap().to_string();
    assert_eq!(made.body["tokenEndpoint"], json!(format!("{}/oauth2/token", root(&srv))));
    assert_eq!(made.body["meta"]["location"], json!(format!("{}/Settings/OAuthClients/{id}", srv.base)));
    let as_secret = |secret: &str| NewSecret { client_id: id.clone(), secret_id: String::new(), secret: secret.to_string(), expires_at: 0 };
    let token = token_of(&srv, &as_secret(&first)).await;
    assert_eq!(Client::new(&srv.base, &token).get("/Users").await.status, 200);
    // listed and read back without any secret
    let list = admin.get("/Settings/OAuthClients").await;
    assert_eq!((list.status, list.body["totalResults"].as_u64()), (200, Some(1)), "{}", list.raw);
    let one = admin.get(&format!("/Settings/OAuthClients/{id}")).await;
    assert!(!one.raw.contains(&first) && !list.raw.contains(&first) && !one.raw.contains("hash"), "{}", one.raw);
    assert_eq!(one.body["secrets"][0]["state"], "active");
    // a second secret, then the first revoked: the first stops, the second works
    let added = admin.patch(&format!("/Settings/OAuthClients/{id}"), &json!({"addSecret": {"expiresInDays": 10}})).await;
    assert_eq!(added.status, 200, "{}", added.raw);
    let second = added.body["clientSecret"].as_str().unwrap().to_string();
    let revoked = admin.patch(&format!("/Settings/OAuthClients/{id}"), &json!({"revokeSecret": first_id})).await;
    assert_eq!(revoked.status, 200, "{}", revoked.raw);
    assert!(revoked.body["clientSecret"].is_null(), "a secret is shown only when made");
    let r = token_request(&srv, "grant_type=client_credentials", &[("authorization", &basic(&id, &first))]).await;
    assert_eq!(r.status, 401, "{}", r.raw);
    Client::new(&srv.base, &token).get("/Users").await.assert_error(401, None);
    token_of(&srv, &as_secret(&second)).await;
    // bad input: clear 400s, nothing made
    for (body, scim_type) in [
        (json!({"expiresInDays": 0}), "invalidValue"),
        (json!({"expiresInDays": "30"}), "invalidValue"),
        (json!({"role": "no-such-role"}), "invalidValue"),
        (json!({"scope": "x"}), "invalidPath"),
    ] {
        admin.post("/Settings/OAuthClients", &body).await.assert_error(400, Some(scim_type));
    }
    admin
        .patch(&format!("/Settings/OAuthClients/{id}"), &json!({"addSecret": true, "revokeSecret": "x"}))
        .await
        .assert_error(400, Some("invalidSyntax"));
    assert_eq!(admin.get("/Settings/OAuthClients").await.body["totalResults"], 1);

    // no more than the caller holds: a configure-only role may not make an admin client
    let layout = srv.app.service.layout();
    use scim_core::roles::Permission::{ConfigureScim, ScimRead};
    scim_core::tenancy::set_custom_role(layout, "local", "configurer", Some(&[ConfigureScim, ScimRead])).await.unwrap();
    let k = scim_core::tenancy::create_key(layout, "local", "configurer", None).await.unwrap();
    let configurer = Client::new(&srv.base, &k.token);
    configurer.post("/Settings/OAuthClients", &json!({"role": "admin"})).await.assert_error(403, None);
    assert_eq!(configurer.post("/Settings/OAuthClients", &json!({"role": "reader"})).await.status, 201);
    // a provisioner may not manage clients at all
    srv.tenant_key("local", "provisioner").await.get("/Settings/OAuthClients").await.assert_error(403, None);
    // another tenant's admin sees none of it and changes nothing
    let b = srv.tenant_key("tenant-b", "admin").await;
    b.get(&format!("/Settings/OAuthClients/{id}")).await.assert_error(404, None);
    b.patch(&format!("/Settings/OAuthClients/{id}"), &json!({"addSecret": true})).await.assert_error(404, None);
    b.delete(&format!("/Settings/OAuthClients/{id}")).await.assert_error(404, None);
    assert_eq!(b.get("/Settings/OAuthClients").await.body["totalResults"], 0);
    token_of(&srv, &as_secret(&second)).await;
    // revoking the client: 204, listed as revoked, its tokens stop
    let t2 = token_of(&srv, &as_secret(&second)).await;
    assert_eq!(admin.delete(&format!("/Settings/OAuthClients/{id}")).await.status, 204);
    assert_eq!(admin.get(&format!("/Settings/OAuthClients/{id}")).await.body["revoked"], true);
    Client::new(&srv.base, &t2).get("/Users").await.assert_error(401, None);
});
