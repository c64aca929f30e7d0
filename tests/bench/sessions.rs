//! `bench sessions`: what tenant-scoped credentials cost (shared/src/store/sessions.rs). Two
//! servers on moto, side by side in one run: one whose DynamoDB store assumes a tenant session
//! per tenant (`tenant_role`), one with the process's own credentials. For `--tenants` tenants,
//! each tenant's first request (on the first: an STS AssumeRole, then its DynamoDB calls) and a
//! later one (the session reused), p50 / p99 in ms. moto answers STS in-process, so the miss
//! here is the client's share; in AWS add one regional STS round trip (see infra/README.md).

use scim_core::store::dynamo::{DynamoConfig, DynamoTable};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A server over a fresh moto table, with or without a tenant role.
async fn server(tenant_role: Option<String>) -> scim_tests::Server {
    let cfg = DynamoConfig {
        attempt_timeout: Duration::from_secs(30),
        operation_timeout: Duration::from_secs(90),
        tenant_role,
        ..DynamoConfig::new(format!("bench{}", scim_tests::uuid_like()), "us-east-1", Some(scim_tests::moto_endpoint()))
    };
    let table = DynamoTable::connect(&cfg).expect("connect");
    table.create_table().await.expect("table");
    scim_tests::Server::start_on(scim_tests::Store::Dynamo, Arc::new(table), Default::default()).await.expect("started")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn p(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

pub async fn sessions(args: &[String]) {
    let tenants: usize = super::arg(args, "--tenants").and_then(|v| v.parse().ok()).unwrap_or(30);
    let role = format!("arn:aws:iam::123456789012:role/bench-tenant-{}", scim_tests::uuid_like());
    let scoped = server(Some(role)).await;
    let plain = server(None).await;
    let mut first = [Vec::new(), Vec::new()];
    let mut later = [Vec::new(), Vec::new()];
    for i in 0..tenants {
        // interleaved: a slow spell of the machine falls on both
        for (s, srv) in [&scoped, &plain].into_iter().enumerate() {
            let client = srv.tenant_key(&format!("bench-{i}"), "admin").await;
            let t = Instant::now();
            assert_eq!(client.get("/Users").await.status, 200);
            first[s].push(ms(t.elapsed()));
            for _ in 0..3 {
                let t = Instant::now();
                assert_eq!(client.get("/Users").await.status, 200);
                later[s].push(ms(t.elapsed()));
            }
        }
    }
    println!("GET /Users on moto, {tenants} tenants; p50 / p99 ms (ratio of p50s: scoped / own credentials)");
    for (label, v) in [("first request of a tenant", &mut first), ("later requests", &mut later)] {
        for x in v.iter_mut() {
            x.sort_by(f64::total_cmp);
        }
        println!(
            "  {label:<26} tenant sessions {:>6.2} / {:>6.2}   own credentials {:>6.2} / {:>6.2}   ratio {:.2}",
            p(&v[0], 0.5),
            p(&v[0], 0.99),
            p(&v[1], 0.5),
            p(&v[1], 0.99),
            p(&v[0], 0.5) / p(&v[1], 0.5)
        );
    }
    println!("  STS calls: one per tenant per process per {} s (the session's lifetime)", scim_core::store::dynamo::SESSION_SECONDS);
}
