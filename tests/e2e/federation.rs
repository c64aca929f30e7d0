//! Workload identity federation through the HTTP edge, on both stores: a federated client (made
//! over /Settings/OAuthFederation) exchanges an RS256 assertion its identity provider signed —
//! this test plays the provider, serving its JWKS from a local HTTP server — for an access token
//! (RFC 7523 §2.2), and everything an assertion must not get away with is refused.

use super::*;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::KeyPair as _;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use scim_core::crypto::b64;
use scim_tests::{Client, Resp, Server, both_stores};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The modulus and exponent of a DER RSAPublicKey (`SEQUENCE { INTEGER n, INTEGER e }`).
fn rsa_components(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    fn read(d: &[u8]) -> (u8, &[u8], &[u8]) {
        let (tag, len0) = (d[0], d[1] as usize);
        let (len, start) = if len0 < 0x80 {
            (len0, 2)
        } else {
            let n = len0 & 0x7f;
            (d[2..2 + n].iter().fold(0usize, |a, b| a << 8 | *b as usize), 2 + n)
        };
        (tag, &d[start..start + len], &d[start + len..])
    }
    let (_, body, _) = read(der);
    let (_, n, rest) = read(body);
    let (_, e, _) = read(rest);
    let strip = |v: &[u8]| v.iter().skip_while(|b| **b == 0).copied().collect::<Vec<u8>>();
    (strip(n), strip(e))
}

const TENANT_ID: &str = "ce5f061f-abe6-4e40-9615-301f87bcb7f0";
const APP_ID: &str = "b5ba7a93-4452-4522-aeb4-a2b5da870c16";
const SUBJECT: &str = "0f5e6a1b-sync-fabric-object";
const JWT_BEARER: &str = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";

fn issuer() -> String {
    format!("https://login.microsoftonline.com/{TENANT_ID}/v2.0")
}

/// The identity provider: RSA keys by kid, and a JWKS server that counts its fetches.
struct Provider {
    keys: Mutex<Vec<(String, Arc<RsaKeyPair>)>>,
    fetches: AtomicUsize,
}

impl Provider {
    fn jwks(&self) -> String {
        let keys: Vec<Value> = self
            .keys
            .lock()
            .unwrap()
            .iter()
            .map(|(kid, k)| {
                let (n, e) = rsa_components(k.public_key().as_ref());
                json!({"kty": "RSA", "use": "sig", "kid": kid, "n": b64(&n), "e": b64(&e)})
            })
            .collect();
        json!({"keys": keys}).to_string()
    }

    /// Starts the JWKS server; its URL.
    async fn serve(self: &Arc<Self>) -> String {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let me = me.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |_req| {
                        me.fetches.fetch_add(1, Ordering::SeqCst);
                        let body = me.jwks();
                        async move {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(body))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), svc).await;
                });
            }
        });
        format!("http://{addr}/discovery/v2.0/keys")
    }

    fn add_key(&self, kid: &str) -> Arc<RsaKeyPair> {
        let k = Arc::new(RsaKeyPair::generate(KeySize::Rsa2048).unwrap());
        self.keys.lock().unwrap().push((kid.to_string(), k.clone()));
        k
    }
}

/// An assertion signed with `key` under `kid`, with Entra's claims and `changes` applied.
fn assertion(key: &RsaKeyPair, kid: &str, alg: &str, changes: Value) -> String {
    let now = scim_core::time::unix_now();
    let mut claims = json!({"aud": format!("api://{APP_ID}"), "iss": issuer(), "sub": SUBJECT, "iat": now, "nbf": now, "exp": now + 3600,
                            "appid": APP_ID, "tid": TENANT_ID, "ver": "2.0", "jti": scim_tests::uuid_like()});
    for (k, v) in changes.as_object().unwrap() {
        claims[k] = v.clone();
    }
    let input =
        format!("{}.{}", b64(json!({"alg": alg, "typ": "JWT", "kid": kid}).to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let mut sig = vec![0; key.public_modulus_len()];
    key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut sig).unwrap();
    format!("{input}.{}", b64(&sig))
}

async fn exchange(srv: &Server, client_id: &str, assertion: &str) -> Resp {
    let root = srv.base.strip_suffix("/scim/v2").unwrap().to_string();
    let body = format!(
        "grant_type=client_credentials&client_id={client_id}&client_assertion_type={JWT_BEARER}&client_assertion={assertion}&scope=scim"
    );
    Client::new(&root, "").send("POST", "/oauth2/token", Some(&body), &[("content-type", "application/x-www-form-urlencoded")]).await
}

both_stores!(client_assertions_from_a_federated_identity_provider, |srv| {
    let provider = Arc::new(Provider { keys: Mutex::new(Vec::new()), fetches: AtomicUsize::new(0) });
    let k1 = provider.add_key("k1");
    let jwks_url = provider.serve().await;
    // the IT admin pastes what Entra's Connectivity page shows
    let fed =
        json!({"issuer": issuer(), "subject": SUBJECT, "audience": format!("api://{APP_ID}"), "jwksUrl": jwks_url, "role": "provisioner"});
    let made = srv.client.post("/Settings/OAuthFederation", &fed).await;
    assert_eq!(made.status, 201, "{}", made.raw);
    let id = made.body["clientId"].as_str().unwrap().to_string();
    assert_eq!(made.body["federation"]["jwksUrl"], json!(jwks_url));
    assert!(made.body["clientSecret"].is_null() && made.body["secrets"] == json!([]), "no secret: {}", made.raw);
    assert_eq!(srv.client.get("/Settings/OAuthFederation").await.body["totalResults"], 1);
    assert_eq!(srv.client.get("/Settings/OAuthClients").await.body["totalResults"], 1);

    // Entra has been seen sending the bare app id as the audience: both forms work
    let a = assertion(&k1, "k1", "RS256", json!({"aud": APP_ID}));
    let r = exchange(&srv, &id, &a).await;
    assert_eq!((r.status, r.body["token_type"].as_str()), (200, Some("Bearer")), "{}", r.raw);
    let token = r.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(Client::new(&srv.base, &token).post("/Users", &user("federated@example.com")).await.status, 201);
    assert_eq!(provider.fetches.load(Ordering::SeqCst), 1, "the JWKS is fetched once and cached");
    assert_eq!(exchange(&srv, &id, &assertion(&k1, "k1", "RS256", json!({}))).await.status, 200);
    assert_eq!(provider.fetches.load(Ordering::SeqCst), 1);

    // refused, each with invalid_client and nothing issued
    let now = scim_core::time::unix_now();
    let stranger = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let refused = [
        ("replayed", a.clone()),
        ("another issuer", assertion(&k1, "k1", "RS256", json!({"iss": "https://login.microsoftonline.com/other/v2.0"}))),
        ("another subject", assertion(&k1, "k1", "RS256", json!({"sub": "someone-else"}))),
        ("another audience", assertion(&k1, "k1", "RS256", json!({"aud": "api://00000000-0000-0000-0000-000000000000"}))),
        ("expired", assertion(&k1, "k1", "RS256", json!({"iat": now - 7200, "nbf": now - 7200, "exp": now - 400}))),
        ("not yet valid", assertion(&k1, "k1", "RS256", json!({"nbf": now + 900, "iat": now + 900, "exp": now + 4000}))),
        ("a day-long life", assertion(&k1, "k1", "RS256", json!({"exp": now + 3 * 86_400}))),
        ("signed by another key under its kid", assertion(&stranger, "k1", "RS256", json!({}))),
        ("alg none", {
            let signed = assertion(&k1, "k1", "RS256", json!({}));
            let parts: Vec<&str> = signed.split('.').collect();
            format!("{}.{}.", b64(br#"{"alg":"none","kid":"k1"}"#), parts[1])
        }),
        ("HS256", {
            let signed = assertion(&k1, "k1", "RS256", json!({}));
            let parts: Vec<&str> = signed.split('.').collect();
            format!("{}.{}.{}", b64(br#"{"alg":"HS256","kid":"k1"}"#), parts[1], parts[2])
        }),
    ];
    // two clients of one federation, so the refusals stay below the throttle (10 a minute each)
    let id2 = srv.client.post("/Settings/OAuthFederation", &fed).await.body["clientId"].as_str().unwrap().to_string();
    for (i, (what, assertion)) in refused.iter().enumerate() {
        let r = exchange(&srv, if i < 5 { &id } else { &id2 }, assertion).await;
        assert_eq!((r.status, r.body["error"].as_str()), (401, Some("invalid_client")), "{what}: {}", r.raw);
        assert!(r.body["access_token"].is_null());
    }

    // the provider rotates: an assertion under the new kid makes the server fetch again, once
    let before = provider.fetches.load(Ordering::SeqCst);
    let k2 = provider.add_key("k2");
    assert_eq!(exchange(&srv, &id, &assertion(&k2, "k2", "RS256", json!({}))).await.status, 200);
    assert_eq!(provider.fetches.load(Ordering::SeqCst), before + 1);
    // a kid nobody has: one fetch, then none for it again (refused both times)
    let k9 = assertion(&stranger, "k9", "RS256", json!({}));
    assert_eq!(exchange(&srv, &id, &k9).await.status, 401);
    assert_eq!(provider.fetches.load(Ordering::SeqCst), before + 2);
    assert_eq!(exchange(&srv, &id, &assertion(&stranger, "k9", "RS256", json!({}))).await.status, 401);
    assert_eq!(provider.fetches.load(Ordering::SeqCst), before + 2, "an unknown key id is looked up once");
    // many forged key ids: at most ten fetches a minute, whatever they name
    let id3 = srv.client.post("/Settings/OAuthFederation", &fed).await.body["clientId"].as_str().unwrap().to_string();
    let id4 = srv.client.post("/Settings/OAuthFederation", &fed).await.body["clientId"].as_str().unwrap().to_string();
    for i in 0..16 {
        let r = exchange(&srv, if i < 8 { &id3 } else { &id4 }, &assertion(&stranger, &format!("forged-{i}"), "RS256", json!({}))).await;
        assert_eq!(r.status, 401, "{}", r.raw);
    }
    let fetched = provider.fetches.load(Ordering::SeqCst);
    assert!(fetched <= scim_core::federation::FETCHES_PER_MINUTE, "{fetched} fetches in a minute");

    // a federated client has no secret to guess, and takes none
    let secret = format!("grant_type=client_credentials&client_id={id}&client_secret=guess");
    let root = srv.base.strip_suffix("/scim/v2").unwrap().to_string();
    let r =
        Client::new(&root, "").send("POST", "/oauth2/token", Some(&secret), &[("content-type", "application/x-www-form-urlencoded")]).await;
    assert_eq!(r.status, 401, "{}", r.raw);
    srv.client.patch(&format!("/Settings/OAuthClients/{id}"), &json!({"addSecret": true})).await.assert_error(409, None);
    // the activity log: the issuances, and every refusal, with the client id and no assertion
    let day = scim_core::time::now()[..10].to_string();
    let audit = srv.app.service.layout().audit_entries("local", &day).await.unwrap();
    let text = serde_json::to_string(&audit).unwrap();
    assert!(
        audit.iter().any(|e| e["key_id"] == json!(id) && e["detail"] == "token request: access token issued for a client assertion"),
        "{text}"
    );
    assert!(audit.iter().any(|e| e["key_id"] == json!(id) && e["detail"] == "token request: the assertion was used before"), "{text}");
    assert!(!text.contains(a.split('.').nth(2).unwrap()), "no assertion in the log");
    // revoked: no token from any assertion
    assert_eq!(srv.client.delete(&format!("/Settings/OAuthClients/{id}")).await.status, 204);
    assert_eq!(exchange(&srv, &id, &assertion(&k1, "k1", "RS256", json!({}))).await.status, 401);
    Client::new(&srv.base, &token).get("/Users").await.assert_error(401, None);
});

both_stores!(federations_are_validated_when_made, |srv| {
    let base = json!({"issuer": issuer(), "subject": SUBJECT, "audience": [format!("api://{APP_ID}")], "jwksUrl": "https://login.microsoftonline.com/x/discovery/v2.0/keys"});
    assert_eq!(srv.client.post("/Settings/OAuthFederation", &base).await.status, 201);
    for (change, scim_type) in [
        (json!({"jwksUrl": "http://login.example.com/keys"}), "invalidValue"),
        (json!({"audience": []}), "invalidValue"),
        (json!({"issuer": ""}), "invalidValue"),
        (json!({"subject": 7}), "invalidValue"),
        (json!({"role": "no-such-role"}), "invalidValue"),
        (json!({"secret": "x"}), "invalidPath"),
    ] {
        let mut body = base.clone();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        srv.client.post("/Settings/OAuthFederation", &body).await.assert_error(400, Some(scim_type));
    }
    srv.tenant_key("local", "provisioner").await.post("/Settings/OAuthFederation", &base).await.assert_error(403, None);
    assert_eq!(srv.client.get("/Settings/OAuthFederation").await.body["totalResults"], 1);
});
