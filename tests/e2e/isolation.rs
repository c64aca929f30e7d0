//! Tenant isolation: tenant B's key never sees or changes tenant A's users.

use super::*;
use scim_tests::both_stores;

both_stores!(other_tenants_see_nothing_and_change_nothing, |srv| {
    let a = &srv.client;
    let mut body = user("shared.name@example.com");
    body["externalId"] = json!("ext-1");
    let created = a.post("/Users", &body).await;
    let id = id_of(&created.body);
    let path = format!("/Users/{id}");
    let b = srv.tenant_key("tenant-b", "admin").await;

    b.get(&path).await.assert_error(404, None);
    b.put(&path, &user("x@example.com")).await.assert_error(404, None);
    b.patch(&path, &patch_op(json!([{"op": "replace", "path": "active", "value": false}]))).await.assert_error(404, None);
    b.delete(&path).await.assert_error(404, None);
    for f in [
        r#"userName eq "shared.name@example.com""#.to_string(),
        r#"externalId eq "ext-1""#.to_string(),
        format!(r#"id eq "{id}""#),
        "active pr".to_string(),
    ] {
        assert_eq!(b.filter("/Users", &f, "").await.body["totalResults"], 0, "{f}");
    }
    assert_eq!(b.get("/Users").await.body["totalResults"], 0);
    // the same userName and externalId are free in another tenant
    assert_eq!(b.post("/Users", &body).await.status, 201);
    assert_eq!(b.get("/Users").await.body["totalResults"], 1);
    // A is untouched
    let after = a.get(&path).await;
    assert_eq!(after.body, created.body);
    assert_eq!(a.get("/Users").await.body["totalResults"], 1);
});
