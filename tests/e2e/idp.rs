//! Entra ID- and Okta-shaped lifecycles, request by request as those provisioning clients send
//! them (see ../shared/idp-quirks.md).

use super::*;
use scim_tests::both_stores;

both_stores!(entra_lifecycle, |srv| {
    let c = &srv.client;
    // Test Connection: a filter on a random GUID must answer an empty list, not 404
    let probe = c.filter("/Users", r#"userName eq "7f1b2c3d-0000-4e4e-9a9a-3b3b3b3b3b3b""#, "").await;
    assert_eq!(probe.status, 200);
    assert_eq!(probe.body["totalResults"], 0);
    assert_eq!(probe.body["Resources"], json!([]));

    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_ab6490ee@contoso.com",
        "active": "True",
        "displayName": "Test User",
        "title": "Engineer", "preferredLanguage": "en-US",
        "emails": [{"primary": true, "type": "work", "value": "Test_User_ab6490ee@contoso.com"}],
        "name": {"formatted": "Test User", "familyName": "User", "givenName": "Test"},
        "addresses": [{"type": "work", "streetAddress": "1 Microsoft Way", "locality": "Redmond", "region": "WA", "postalCode": "98052", "country": "US", "primary": false}],
        "phoneNumbers": [{"type": "mobile", "value": "+1 425 555 0100"}],
        "roles": [],
        "meta": {"resourceType": "User"},
        ENTERPRISE: {"department": "Engineering", "employeeNumber": "E1", "manager": null}
    });
    let r = c.post("/Users", &body).await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let id = id_of(&r.body);
    assert_eq!(r.body["active"], true, "string booleans are stored as booleans");
    assert!(r.body.get("roles").is_none() && r.body[ENTERPRISE].get("manager").is_none());
    let path = format!("/Users/{id}");

    // matching by externalId (objectId) and by userName in another case
    let m = c.filter("/Users", r#"externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef""#, "").await;
    assert_eq!(m.body["Resources"][0]["id"], id);
    let m = c.filter("/Users", r#"userName eq "test_user_AB6490EE@contoso.com""#, "").await;
    assert_eq!(m.body["totalResults"], 1);

    // the PATCH shapes Entra sends
    let ops = patch_op(json!([
        {"op": "Replace", "path": "displayName", "value": "Test User 2"},
        {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "new@contoso.com"},
        {"op": "Add", "path": "phoneNumbers[type eq \"work\"].value", "value": "+1 425 555 0199"},
        {"op": "Replace", "path": "addresses[type eq \"work\"].locality", "value": "Bellevue"},
        {"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": "manager-id-1"},
        {"op": "Replace", "value": {"name.givenName": "Tess", format!("{ENTERPRISE}:department"): "R&D", "title": ""}},
        {"op": "Add", "path": "roles", "value": [{"primary": true, "value": "{\"id\":\"7e3a\",\"value\":\"Admin\",\"displayName\":\"Admin\"}"}]}
    ]));
    let p = c.patch(&path, &ops).await;
    assert!(p.status == 200 || p.status == 204, "{}", p.raw);
    let u = c.get(&path).await.body;
    assert_eq!(u["displayName"], "Test User 2");
    assert_eq!(u["emails"], json!([{"value": "new@contoso.com", "type": "work", "primary": true}]));
    let phones = u["phoneNumbers"].as_array().unwrap();
    assert!(phones.contains(&json!({"value": "+1 425 555 0199", "type": "work"})), "value path creates the missing element");
    assert_eq!(u["addresses"][0]["locality"], "Bellevue");
    assert_eq!(u[ENTERPRISE]["manager"], json!({"value": "manager-id-1"}));
    assert_eq!(u[ENTERPRISE]["department"], "R&D");
    assert_eq!(u["name"]["givenName"], "Tess");
    assert!(u.get("title").is_none(), "\"\" clears");
    assert_eq!(u["roles"][0]["value"], "Admin", "JSON-encoded role values are decoded");

    // reference check and manager clearing
    let refc = c.filter("/Users", &format!(r#"id eq "{id}" and manager eq "manager-id-1""#), "&attributes=id").await;
    assert_eq!(refc.body["totalResults"], 1, "{}", refc.raw);
    let clear = c.patch(&path, &patch_op(json!([{"op": "Replace", "path": format!("{ENTERPRISE}:manager"), "value": ""}]))).await;
    assert_eq!(clear.status, 200);
    assert!(clear.body[ENTERPRISE].get("manager").is_none());

    // soft delete: active "False"; the user stays readable and filterable
    let off = c.patch(&path, &patch_op(json!([{"op": "Replace", "path": "active", "value": "False"}]))).await;
    assert_eq!(off.body["active"], false);
    assert_eq!(c.get(&path).await.body["active"], false);
    let inactive = c.filter("/Users", "active eq false", "").await;
    assert_eq!(inactive.body["totalResults"], 1);
    // Entra's non-RFC value-path filter
    let f = c.filter("/Users", r#"emails[type eq "work"].value eq "new@contoso.com""#, "").await;
    assert_eq!(f.body["totalResults"], 1, "{}", f.raw);

    // hard delete after the soft-delete period
    assert_eq!(c.delete(&path).await.status, 204);
    assert_eq!(c.delete(&path).await.status, 404);
});

both_stores!(okta_lifecycle, |srv| {
    let c = &srv.client;
    let none = c.filter("/Users", r#"userName eq "isaac.brock@example.com""#, "&startIndex=1&count=100").await;
    assert_eq!((none.status, none.body["totalResults"].clone(), none.body["startIndex"].clone()), (200, json!(0), json!(1)));
    let created = c
        .send(
            "POST",
            "/Users",
            Some(
                &json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": "isaac.brock@example.com",
                    "name": {"givenName": "Isaac", "familyName": "Brock"},
                    "emails": [{"primary": true, "value": "isaac.brock@example.com", "type": "work"}],
                    "displayName": "Isaac Brock", "locale": "en-US", "externalId": "00ujl29u0le5T6Aj10h7",
                    "groups": [], "password": "1mz050nq", "active": true
                })
                .to_string(),
            ),
            &[("user-agent", "Okta SCIM Client 1.0.0"), ("content-type", "application/json; charset=utf-8")],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.raw);
    let id = id_of(&created.body);
    let path = format!("/Users/{id}");

    // profile update: PUT with the whole user, including id, active and groups
    let mut full = c.get(&path).await.body;
    full["name"]["familyName"] = json!("Brock-Smith");
    full["groups"] = json!([]);
    let put = c.put(&path, &full).await;
    assert_eq!(put.status, 200, "{}", put.raw);
    assert_eq!(put.body["name"]["familyName"], "Brock-Smith");

    // deactivate: path-less replace
    let off = c.patch(&path, &patch_op(json!([{"op": "replace", "value": {"active": false}}]))).await;
    assert_eq!(off.status, 200);
    assert_eq!(off.body["active"], false);
    // reactivate with PUT
    let mut again = c.get(&path).await.body;
    again["active"] = json!(true);
    assert_eq!(c.put(&path, &again).await.body["active"], true);
    // …and with PATCH
    c.patch(&path, &patch_op(json!([{"op": "replace", "value": {"active": false}}]))).await;
    assert_eq!(c.patch(&path, &patch_op(json!([{"op": "replace", "value": {"active": true}}]))).await.body["active"], true);

    // import: pages of count=2 from startIndex=1
    for i in 0..4 {
        assert_eq!(c.post("/Users", &user(&format!("import{i}@example.com"))).await.status, 201);
    }
    let p1 = c.get("/Users?startIndex=1&count=2").await;
    assert_eq!((p1.body["totalResults"].clone(), p1.body["itemsPerPage"].clone()), (json!(5), json!(2)));
    let p3 = c.get("/Users?count=2&startIndex=5").await;
    assert_eq!(p3.body["Resources"].as_array().map(Vec::len), Some(1));
    assert_eq!(p3.body["startIndex"], 5);
});
