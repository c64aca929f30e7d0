//! The setup portal in a real browser (headless Chromium through chromedriver), on both stores:
//! open the setup link → the Tenant URL is shown → generate a token → Test connection passes →
//! a SCIM request made with that token appears in the activity → revoke the token → its next
//! request is 401 and appears too; OAuth client credentials: a client secret generated, Test
//! connection exchanging it for an access token first, the secret revoked; a tampered link shows
//! nothing. Screenshots of every screen go
//! to `target/portal-screenshots/`.

use super::*;
use scim_tests::browser::Browser;
use scim_tests::{Server, Store, both_stores};

fn shots(store: Store) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/portal-screenshots").join(match store {
        Store::Embedded => "embedded",
        Store::Dynamo => "dynamodb",
    })
}

async fn walk_through(store: Store) {
    let srv = Server::start(store).await;
    let link = scim_functions::local::portal_link(&srv.app, &srv.base, 24).await.expect("a setup link");
    assert!(!link.contains("scim_"), "a setup link carries no SCIM key");
    let dir = shots(store);
    let b = Browser::start(1280).await;

    // open the link: the Tenant URL, and the key gone from the address bar
    b.open(&link).await;
    b.wait_for(&format!("document.getElementById('tenant-url').value === {}", json!(srv.base)), 20).await;
    assert_eq!(b.script("return location.hash").await, json!(""), "the link's key is taken out of the address bar");
    // every form control has a label a screen reader announces
    let unlabelled = b.script("return [...document.querySelectorAll('input, select')].filter(e => !e.labels.length && !e.getAttribute('aria-label')).map(e => e.id)").await;
    assert_eq!(unlabelled, json!([]), "unlabelled controls");
    // the Tenant URL is plain http here: the page says Entra ID and Okta will not reach it
    assert_eq!(b.script("return document.getElementById('url-warning').hidden").await, json!(false));
    // the operator's own admin key is listed, marked, and offers no Revoke button
    let operator = srv.token.split('_').nth(1).unwrap().to_string();
    b.wait_for(&format!("document.querySelector('#keys tbody').textContent.includes({})", json!(operator)), 20).await;
    let row = format!("[...document.querySelectorAll('#keys tbody tr')].find(r => r.textContent.includes({}))", json!(operator));
    assert_eq!(b.script(&format!("return {row}.querySelector('button') === null")).await, json!(true), "no Revoke for the operator's key");
    assert!(b.script(&format!("return {row}.textContent")).await.as_str().unwrap().contains("managed by your operator"));
    // ids are never broken across lines
    let broken =
        b.script("return [...document.querySelectorAll('td.id')].filter(td => getComputedStyle(td).whiteSpace !== 'nowrap').length").await;
    assert_eq!(broken, json!(0));
    b.screenshot(&dir.join("1-connection.png")).await;

    // generate a token: shown once, listed
    b.click("#generate").await;
    b.wait_for("document.getElementById('token-value').value.startsWith('scim_')", 20).await;
    let token = b.script("return document.getElementById('token-value').value").await.as_str().unwrap().to_string();
    let key_id = token.split('_').nth(1).unwrap().to_string();
    b.wait_for(&format!("document.querySelector('#keys tbody').textContent.includes({})", json!(key_id)), 20).await;
    b.screenshot(&dir.join("2-token.png")).await;

    // test connection with it: every step passes
    b.click("#run-test").await;
    b.wait_for("document.querySelectorAll('#test-steps li.ok').length === 4 || document.querySelector('#test-steps li.fail')", 30).await;
    let failed = b.script("return [...document.querySelectorAll('#test-steps li.fail')].map(l => l.textContent)").await;
    assert_eq!(failed, json!([]), "test connection");
    b.screenshot(&dir.join("3-test-connection.png")).await;

    // a SCIM request with that token, refused for a reason the admin should see: in the activity
    let idp = scim_tests::Client::new(&srv.base, &token);
    let r = idp.send("GET", "/Users/no-such-user", None, &[("user-agent", "Okta SCIM Client 1.0.0")]).await;
    assert_eq!(r.status, 404);
    b.click("#refresh").await;
    b.wait_for("document.querySelector('#activity tbody').textContent.includes('/Users/no-such-user')", 20).await;
    b.wait_for("document.getElementById('counts').textContent.includes('Okta')", 20).await;
    b.screenshot(&dir.join("4-activity.png")).await;

    // what an IdP (or anyone holding a key) sends is shown as text, never run as markup
    let hostile = "<img src=x onerror=\"document.title='pwned'\">";
    let r = idp.send("GET", "/Users/%3Cscript%3Ealert(1)%3C%2Fscript%3E", None, &[("user-agent", hostile)]).await;
    assert_eq!(r.status, 404);
    b.click("#refresh").await;
    b.wait_for("document.querySelector('#activity tbody').textContent.includes(\"no user '<script>alert(1)</script>'\")", 20).await;
    b.wait_for("document.getElementById('counts').textContent.includes('<img')", 20).await;
    assert_ne!(b.script("return document.title").await, json!("pwned"));
    assert_eq!(b.script("return document.querySelectorAll('#activity img, #activity script, #counts img').length").await, json!(0));

    // revoke it: its next request is 401, and that appears too
    b.click(&format!("button[aria-label='Revoke token {key_id}']")).await;
    b.accept_dialog().await;
    b.wait_for(
        &format!(
            "[...document.querySelectorAll('#keys tbody tr')].some(r => r.textContent.includes({}) && r.textContent.includes('revoked'))",
            json!(key_id)
        ),
        20,
    )
    .await;
    let after = idp.send("GET", "/Users?count=1", None, &[("user-agent", "Okta SCIM Client 1.0.0")]).await;
    after.assert_error(401, None);
    b.click("#refresh").await;
    b.wait_for("[...document.querySelectorAll('#activity tbody tr')].some(r => r.textContent.includes('401'))", 20).await;
    b.screenshot(&dir.join("5-revoked.png")).await;

    // keyboard: the first Tab reaches the skip link, the next ones the page's controls
    let first = b.tab(1).await;
    assert!(first.contains("Skip"), "the first Tab stop is the skip link, got {first:?}");

    // OAuth client credentials: chosen, a secret generated (shown once), Test connection first
    // exchanges it for an access token, then runs the same calls with that token
    b.click("input[name=auth][value=oauth]").await;
    b.wait_for("!document.getElementById('oauth-panel').hidden && document.getElementById('token-panel').hidden", 20).await;
    let root = srv.base.replace("/scim/v2", "");
    assert_eq!(b.script("return document.getElementById('token-endpoint').value").await, json!(format!("{root}/oauth2/token")));
    b.click("#generate-secret").await;
    b.wait_for("document.getElementById('secret-value').value.length > 30", 20).await;
    let client_id = b.script("return document.getElementById('client-id').value").await.as_str().unwrap().to_string();
    let secret = b.script("return document.getElementById('secret-value').value").await.as_str().unwrap().to_string();
    b.wait_for(&format!("document.querySelector('#secrets tbody').textContent.includes({})", json!(client_id)), 20).await;
    b.click("#run-test").await;
    b.wait_for("document.querySelectorAll('#test-steps li.ok').length === 5 || document.querySelector('#test-steps li.fail')", 30).await;
    let failed = b.script("return [...document.querySelectorAll('#test-steps li.fail')].map(l => l.textContent)").await;
    assert_eq!(failed, json!([]), "test connection with OAuth");
    let first = b.script("return document.querySelector('#test-steps li').textContent").await;
    assert!(first.as_str().unwrap().contains("Exchange the client secret for an access token"), "{first}");
    b.screenshot(&dir.join("5b-oauth-test-connection.png")).await;
    // the secret works for an IdP too; revoked in the page, it does not
    use base64::Engine;
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}")));
    let exchange = || {
        let (root, basic) = (root.clone(), basic.clone());
        async move {
            let headers = [("content-type", "application/x-www-form-urlencoded"), ("authorization", basic.as_str())];
            scim_tests::Client::new(&root, "").send("POST", "/oauth2/token", Some("grant_type=client_credentials"), &headers).await.status
        }
    };
    assert_eq!(exchange().await, 200);
    let secret_id =
        b.script("return document.querySelector('#secrets tbody tr td:nth-child(2)').textContent").await.as_str().unwrap().to_string();
    b.click(&format!("button[aria-label='Revoke client secret {secret_id}']")).await;
    b.accept_dialog().await;
    b.wait_for("[...document.querySelectorAll('#secrets tbody tr')].some(r => r.textContent.includes('revoked'))", 20).await;
    assert_eq!(exchange().await, 401);
    b.click("input[name=auth][value=token]").await;

    // a tampered link shows nothing of the tenant, and its API answers 401
    let (head, tag) = link.rsplit_once('.').unwrap();
    let flipped = format!("{head}.{}{}", if tag.starts_with('A') { "B" } else { "A" }, &tag[1..]);
    b.open("about:blank").await;
    b.open(&flipped).await;
    b.wait_for("!document.getElementById('invalid').hidden", 20).await;
    assert_eq!(b.script("return document.getElementById('app').hidden").await, json!(true));
    assert_eq!(b.script("return document.getElementById('tenant-url').value").await, json!(""), "nothing of the tenant");
    b.screenshot(&dir.join("6-tampered-link.png")).await;
    let token_part = flipped.split('#').nth(1).unwrap();
    let api = scim_tests::Client::new(&srv.base.replace("/scim/v2", ""), "");
    let r = api.send("GET", "/portal/api/session", None, &[("authorization", &format!("Portal {token_part}"))]).await;
    assert_eq!(r.status, 401, "{}", r.raw);
    assert!(!r.raw.contains("local"), "the refusal names no tenant: {}", r.raw);
    b.close().await;

    // 360 px wide: nothing wider than the screen
    let narrow = Browser::start(360).await;
    narrow.open(&link).await;
    narrow.wait_for("!document.getElementById('app').hidden", 20).await;
    let overflow = narrow.script("return document.documentElement.scrollWidth - window.innerWidth").await;
    let culprits = narrow
        .script(
            "return Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5 && !e.closest('.scroll')).slice(0, 8).map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).join(', ')",
        )
        .await;
    let width = narrow.script("return window.innerWidth").await;
    assert_eq!(width, serde_json::json!(360), "the viewport is 360 px wide");
    assert!(overflow.as_i64().unwrap_or(99) <= 0, "the page is wider than 360 px by {overflow}: {culprits}");
    narrow.screenshot(&dir.join("7-narrow-360px.png")).await;
    narrow.script("document.getElementById('activity').scrollIntoView(); return 0").await;
    narrow.screenshot(&dir.join("8-narrow-360px-activity.png")).await;
    narrow.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_setup_portal_in_a_real_browser_embedded() {
    walk_through(Store::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_setup_portal_in_a_real_browser_dynamodb() {
    walk_through(Store::Dynamo).await;
}

both_stores!(portal_api_refuses_what_a_link_does_not_allow, |srv| {
    let root = scim_tests::Client::new(&srv.base.replace("/scim/v2", ""), "");
    let get = |tok: String| {
        let root = root.clone();
        async move { root.send("GET", "/portal/api/session", None, &[("authorization", &format!("Portal {tok}"))]).await }
    };
    let (token, _) = scim_core::setup_link::make_link(srv.app.service.layout(), "local", 1).await.unwrap();
    assert_eq!(get(token.clone()).await.status, 200);
    // security headers on the page and the API
    let page = root.get("/portal").await;
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert!(!page.raw.contains("<script>"), "no inline script");
    // no header, a SCIM key, another tenant's key id
    assert_eq!(root.get("/portal/api/session").await.status, 401);
    assert_eq!(root.send("GET", "/portal/api/session", None, &[("authorization", &format!("Bearer {}", srv.token))]).await.status, 401);
    srv.tenant_key("other", "admin").await;
    let other = scim_core::tenancy::list_keys(srv.app.service.layout(), "other").await.unwrap();
    let other_id = other[0]["key_id"].as_str().unwrap();
    let r = root.send("DELETE", &format!("/portal/api/keys/{other_id}"), None, &[("authorization", &format!("Portal {token}"))]).await;
    assert_eq!(r.status, 404, "another tenant's key is unknown here");
    // revoking the tenant's links ends every link made so far
    scim_core::tenancy::revoke_portal_links(srv.app.service.layout(), "local").await.unwrap();
    assert_eq!(get(token).await.status, 401);
    let (fresh, _) = scim_core::setup_link::make_link(srv.app.service.layout(), "local", 1).await.unwrap();
    assert_eq!(get(fresh.clone()).await.status, 200);
    // a suspended tenant's link is refused with 403, naming nothing
    let suspend = scim_core::tenancy::TenantChange { status: Some("suspended".into()), ..Default::default() };
    scim_core::tenancy::update_tenant(srv.app.service.layout(), "local", &suspend).await.unwrap();
    assert_eq!(get(fresh).await.status, 403);
});

both_stores!(setup_links_are_made_and_revoked_over_settings, |srv| {
    let root = scim_tests::Client::new(&srv.base.replace("/scim/v2", ""), "");
    let session = |url: String| {
        let root = root.clone();
        async move {
            let token = url.split_once('#').expect("the secret is in the fragment").1.to_string();
            root.send("GET", "/portal/api/session", None, &[("authorization", &format!("Portal {token}"))]).await
        }
    };
    // an admin key (scim:configure) makes a link under the Tenant URL's root
    let r = srv.client.post("/Settings/PortalLinks", &json!({"hours": 2})).await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let url = r.body["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&srv.base.replace("/scim/v2", "/portal#")), "{url}");
    assert!(r.body["expires"].as_str().is_some());
    let s = session(url.clone()).await;
    assert_eq!((s.status, s.body["tenant"].as_str()), (200, Some("local")), "{}", s.raw);
    // an empty body: the default lifetime; out-of-range lifetimes: 400 invalidValue
    let r = srv.client.send("POST", "/Settings/PortalLinks", None, &[]).await;
    assert_eq!(r.status, 201, "{}", r.raw);
    for bad in [json!({"hours": 0}), json!({"hours": 100_000}), json!({"hours": "72"})] {
        let r = srv.client.post("/Settings/PortalLinks", &bad).await;
        assert_eq!((r.status, r.body["scimType"].as_str()), (400, Some("invalidValue")), "{bad}: {}", r.raw);
    }
    // an IdP's provisioner key may not make one (it could then make keys)
    let provisioner = srv.tenant_key("local", "provisioner").await;
    assert_eq!(provisioner.post("/Settings/PortalLinks", &json!({})).await.status, 403);
    assert_eq!(provisioner.delete("/Settings/PortalLinks").await.status, 403);
    // the attempt is in the audit log, the link is not
    let day = &scim_core::time::now()[..10];
    let audit = srv.app.service.layout().audit_entries("local", day).await.unwrap();
    let made: Vec<_> = audit.iter().filter(|e| e["path"] == "/Settings/PortalLinks").collect();
    assert!(made.iter().any(|e| e["status"] == 201) && made.iter().any(|e| e["status"] == 403), "{made:?}");
    assert!(!scim_core::json_text(&serde_json::Value::Array(audit.clone())).contains(url.split('#').nth(1).unwrap()));
    // DELETE ends every link made so far
    assert_eq!(srv.client.delete("/Settings/PortalLinks").await.status, 204);
    assert_eq!(session(url).await.status, 401);
});

both_stores!(the_activity_log_records_failures_and_changes_not_successful_reads, |srv| {
    let day = scim_core::time::now()[..10].to_string();
    let entries = || async { srv.app.service.layout().audit_entries("local", &day).await.unwrap() };
    let okta = scim_tests::Client::new(&srv.base, &srv.token);
    let ua = [("user-agent", "Okta SCIM Client 1.0.0")];
    let id = id_of(&okta.post("/Users", &user("logged@example.com")).await.body);
    let before = entries().await.len();
    // successful reads write nothing
    assert_eq!(okta.send("GET", "/Users?filter=userName%20eq%20%22x%22", None, &ua).await.status, 200);
    assert_eq!(okta.send("GET", &format!("/Users/{id}"), None, &ua).await.status, 200);
    assert_eq!(okta.send("GET", "/ServiceProviderConfig", None, &ua).await.status, 200);
    assert_eq!(entries().await.len(), before, "a successful read is not logged");
    // failures on any route are, with the SCIM error the client got and its User-Agent
    assert_eq!(okta.send("GET", "/Users/no-such-user", None, &ua).await.status, 404);
    assert_eq!(okta.send("GET", "/Users?filter=userName%20zz%20%22x%22", None, &ua).await.status, 400);
    assert_eq!(okta.send("GET", "/Nowhere", None, &ua).await.status, 404);
    let secret = "Secret-Value-42";
    let bad = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "password": [secret]});
    assert_eq!(okta.send("POST", "/Users", Some(&bad.to_string()), &ua).await.status, 400);
    let log = entries().await;
    let new: Vec<_> = log.iter().skip(before).collect();
    let find = |path: &str, status: u64| new.iter().find(|e| e["path"] == path && e["status"] == status).copied();
    let missing = find("/Users/no-such-user", 404).expect("the 404 is logged");
    assert_eq!(missing["user_agent"], "Okta SCIM Client 1.0.0");
    assert!(missing["detail"].as_str().is_some_and(|d| d.contains("no-such-user")), "{missing}");
    assert_eq!(find("/Users", 400).expect("the filter error")["scim_type"], "invalidFilter");
    assert!(find("/Nowhere", 404).is_some(), "an unmatched path is logged");
    assert!(!scim_core::json_text(&serde_json::Value::Array(log.clone())).contains(secret), "no body, no password");
    // a refused known key: logged in its tenant with the reason; the client learns only 401
    let k = scim_core::tenancy::create_key(srv.app.service.layout(), "local", "provisioner", None).await.unwrap();
    scim_core::tenancy::revoke_key(srv.app.service.layout(), &k.key_id).await.unwrap();
    let r = scim_tests::Client::new(&srv.base, &k.token).send("GET", "/Users", None, &ua).await;
    assert_eq!(r.status, 401);
    assert!(!r.raw.contains("revoked"), "the client is not told why: {}", r.raw);
    let refused = entries().await;
    let e = refused.iter().find(|e| e["key_id"] == k.key_id.as_str() && e["status"] == 401).expect("the refusal is logged");
    assert!(e["detail"].as_str().unwrap().contains("revoked"), "{e}");
    // a key nobody issued belongs to no tenant: nothing to log, nothing logged
    let n = refused.len();
    let made_up = format!("scim_{}_{}", "0".repeat(16), "A".repeat(43));
    assert_eq!(scim_tests::Client::new(&srv.base, &made_up).get("/Users").await.status, 401);
    assert_eq!(entries().await.len(), n);
});

// The portal's keys: a lifetime is a whole number of days within the tenant's maximum (bad input
// used to make a key that never expires), an operator's key is not the IT admin's to revoke,
// and the activity row of a refused wrong secret names no IdP.
both_stores!(portal_keys_keep_to_their_lifetimes_and_roles, |srv| {
    let link = scim_functions::local::portal_link(&srv.app, &srv.base, 1).await.unwrap();
    let auth = format!("Portal {}", link.split_once('#').unwrap().1);
    let root = scim_tests::Client::new(&srv.base.replace("/scim/v2", ""), "");
    let make = |body: String| {
        let (root, auth) = (root.clone(), auth.clone());
        async move {
            root.send("POST", "/portal/api/keys", Some(&body), &[("authorization", &auth), ("content-type", "application/json")]).await
        }
    };
    for bad in [json!(0), json!(-5), json!(99_999), json!("30"), json!(1.5), json!(true)] {
        let r = make(json!({"expiresInDays": bad}).to_string()).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.raw);
        assert!(r.raw.contains("expiresInDays"), "the field is named: {}", r.raw);
    }
    assert_eq!(make(r#"{"expiresInDays": 1, "expiresInDays": 3650}"#.into()).await.status, 400, "a member named twice");
    let expiry_of = |id: String| {
        let layout = srv.app.service.layout();
        async move {
            let keys = scim_core::tenancy::list_keys(layout, "local").await.unwrap();
            keys.iter().find(|k| k["key_id"] == id.as_str()).unwrap()["expires_at"].as_i64()
        }
    };
    let r = make(json!({"expiresInDays": 30}).to_string()).await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let left = expiry_of(r.body["id"].as_str().unwrap().to_string()).await.unwrap() - scim_core::time::unix_now();
    assert!((30 * 86_400 - 5..=30 * 86_400).contains(&left));
    let never = make(json!({"expiresInDays": null}).to_string()).await;
    assert_eq!(expiry_of(never.body["id"].as_str().unwrap().to_string()).await, None, "never, when the tenant allows it");
    // a tenant maximum: the default is the maximum, longer is refused, never is not offered
    let max = scim_core::tenancy::TenantChange { max_key_lifetime_days: Some(Some(90)), ..Default::default() };
    scim_core::tenancy::update_tenant(srv.app.service.layout(), "local", &max).await.unwrap();
    let capped = make("{}".into()).await;
    let left = expiry_of(capped.body["id"].as_str().unwrap().to_string()).await.unwrap() - scim_core::time::unix_now();
    assert!((90 * 86_400 - 5..=90 * 86_400).contains(&left), "{left}");
    assert_eq!(make(json!({"expiresInDays": 365}).to_string()).await.status, 400);
    let session = root.send("GET", "/portal/api/session", None, &[("authorization", &auth)]).await;
    assert_eq!(session.body["maxKeyLifetimeDays"], 90);
    // the operator's admin key: listed, not manageable, and DELETE is 403
    let operator = srv.token.split('_').nth(1).unwrap();
    let keys = root.send("GET", "/portal/api/keys", None, &[("authorization", &auth)]).await;
    let listed = keys.body["keys"].as_array().unwrap().iter().find(|k| k["id"] == operator).cloned().unwrap();
    assert_eq!(listed["manageable"], false);
    let r = root.send("DELETE", &format!("/portal/api/keys/{operator}"), None, &[("authorization", &auth)]).await;
    assert_eq!(r.status, 403, "{}", r.raw);
    assert_eq!(srv.client.get("/Users").await.status, 200, "the operator's key still works");
    // a wrong secret with a real key id: one row, marked, no IdP named from its User-Agent
    let forged = format!("scim_{operator}_{}", "W".repeat(43));
    for _ in 0..20 {
        let r = scim_tests::Client::new(&srv.base, &forged).send("GET", "/Users", None, &[("user-agent", "Okta SCIM Client 1.0.0")]).await;
        assert_eq!(r.status, 401);
    }
    let activity = root.send("GET", "/portal/api/activity?order=time", None, &[("authorization", &auth)]).await;
    let rows: Vec<&Value> = activity.body["entries"].as_array().unwrap().iter().filter(|e| e["unauthenticated"] == true).collect();
    assert_eq!(rows.len(), 1, "bounded per key id: {rows:?}");
    assert_eq!(rows[0]["idp"], Value::Null, "no IdP attribution");
    assert!(activity.body["counts"]["lastRequestByIdp"].get("Okta").is_none(), "{}", activity.raw);
});

both_stores!(the_portal_gives_oauth_client_secrets_of_provisioner_clients_only, |srv| {
    let layout = srv.app.service.layout();
    let (link, _) = scim_core::setup_link::make_link(layout, "local", 1).await.unwrap();
    let root = scim_tests::Client::new(&srv.base.replace("/scim/v2", ""), "");
    let auth = format!("Portal {link}");
    let call = |method: &'static str, path: String, body: Option<Value>| {
        let (root, auth) = (root.clone(), auth.clone());
        async move {
            let body = body.map(|b| b.to_string());
            root.send(method, &path, body.as_deref(), &[("authorization", &auth), ("content-type", "application/json")]).await
        }
    };
    // the operator's admin client is listed, not the page's to touch
    let operator = scim_core::oauth::create_client(layout, "local", "admin", None).await.unwrap();
    let first = call("POST", "/portal/api/oauth".into(), Some(json!({"expiresInDays": 365}))).await;
    assert_eq!(first.status, 201, "{}", first.raw);
    let client = first.body["clientId"].as_str().unwrap().to_string();
    assert_ne!(client, operator.client_id, "the page makes a provisioner client of its own");
    let second = call("POST", "/portal/api/oauth".into(), None).await;
    assert_eq!((second.status, second.body["clientId"].as_str()), (201, Some(client.as_str())), "a second secret of the same client");
    let listed = call("GET", "/portal/api/oauth".into(), None).await;
    assert!(!listed.raw.contains(first.body["clientSecret"].as_str().unwrap()) && !listed.raw.contains("hash"), "{}", listed.raw);
    let mine = listed.body["clients"].as_array().unwrap().iter().find(|c| c["clientId"] == json!(client)).unwrap().clone();
    assert_eq!(
        (mine["role"].as_str(), mine["manageable"].as_bool(), mine["secrets"].as_array().map(Vec::len)),
        (Some("provisioner"), Some(true), Some(2))
    );
    let theirs = listed.body["clients"].as_array().unwrap().iter().find(|c| c["clientId"] == json!(operator.client_id)).unwrap().clone();
    assert_eq!(theirs["manageable"], false);
    let r = call("DELETE", format!("/portal/api/oauth/{}", operator.secret_id), None).await;
    assert_eq!(r.status, 403, "{}", r.raw);
    // out of the tenant's bounds: 400; another tenant's secret: 404
    let max = scim_core::tenancy::TenantChange { max_key_lifetime_days: Some(Some(30)), ..Default::default() };
    scim_core::tenancy::update_tenant(layout, "local", &max).await.unwrap();
    assert_eq!(call("POST", "/portal/api/oauth".into(), Some(json!({"expiresInDays": 365}))).await.status, 400);
    scim_core::tenancy::create_tenant(layout, "other", "Other").await.unwrap();
    let foreign = scim_core::oauth::create_client(layout, "other", "provisioner", None).await.unwrap();
    assert_eq!(call("DELETE", format!("/portal/api/oauth/{}", foreign.secret_id), None).await.status, 404);
    // revoking one of its own secrets: 204, and the activity log says the portal did it
    let sid = first.body["secretId"].as_str().unwrap();
    assert_eq!(call("DELETE", format!("/portal/api/oauth/{sid}"), None).await.status, 204);
    let day = scim_core::time::now()[..10].to_string();
    let audit = layout.audit_entries("local", &day).await.unwrap();
    assert!(audit.iter().any(|e| e["key_id"] == "portal" && e["path"] == format!("/portal/api/oauth/{sid}")), "{audit:?}");
});
