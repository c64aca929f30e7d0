//! Filters, sorting, projection and search through HTTP, and what indexed filters cost.

use super::*;
use scim_tests::both_stores;

async fn seed(c: &scim_tests::Client) -> Vec<String> {
    let people = [
        ("alice@example.com", "Alice", "Smith", "work", true, "Sales"),
        ("bob@example.org", "Bob", "Jones", "home", false, "R&D"),
        ("carol@example.com", "Carol", "Smith", "work", true, "R&D"),
        ("dave@example.net", "Dave", "Brown", "other", true, "Ops"),
    ];
    let mut ids = Vec::new();
    for (u, g, f, t, a, d) in people {
        let r = c
            .post(
                "/Users",
                &json!({"userName": u, "name": {"givenName": g, "familyName": f}, "active": a, "externalId": format!("x-{g}"),
                "emails": [{"value": u, "type": t}], ENTERPRISE: {"department": d}}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.raw);
        ids.push(id_of(&r.body));
    }
    ids
}

async fn names(c: &scim_tests::Client, filter: &str, extra: &str) -> Vec<String> {
    let r = c.filter("/Users", filter, extra).await;
    assert_eq!(r.status, 200, "{filter}: {}", r.raw);
    let res = r.body["Resources"].as_array().cloned().unwrap_or_default();
    assert_eq!(r.body["totalResults"], json!(res.len()), "{filter}");
    res.iter().map(|u| u["userName"].as_str().unwrap_or_default().to_string()).collect()
}

both_stores!(rfc_filter_grammar, |srv| {
    let c = &srv.client;
    seed(c).await;
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(names(c, r#"name.familyName eq "smith""#, "").await.len(), 2);
    assert_eq!(sorted(names(c, r#"userName ew ".com" and active eq true"#, "").await), vec!["alice@example.com", "carol@example.com"]);
    assert_eq!(names(c, r#"userName sw "B" or name.givenName co "ave""#, "").await.len(), 2);
    assert_eq!(names(c, r#"not (active eq true)"#, "").await, vec!["bob@example.org"]);
    assert_eq!(names(c, r#"emails[type eq "work" and value co "carol"]"#, "").await, vec!["carol@example.com"]);
    assert_eq!(names(c, r#"emails[type eq "home"].value eq "bob@example.org""#, "").await, vec!["bob@example.org"]);
    assert_eq!(
        names(c, &format!(r#"{ENTERPRISE}:department eq "r&d" and (name.familyName eq "Jones" or name.familyName eq "Smith")"#), "")
            .await
            .len(),
        2
    );
    assert_eq!(names(c, "name.givenName pr and title pr", "").await.len(), 0);
    assert_eq!(names(c, r#"meta.created gt "2020-01-01T00:00:00Z""#, "").await.len(), 4);
    assert_eq!(names(c, r#"meta.lastModified lt "2020-01-01T00:00:00Z""#, "").await.len(), 0);
    assert_eq!(names(c, r#"USERNAME EQ "ALICE@EXAMPLE.COM""#, "").await, vec!["alice@example.com"]);
    assert_eq!(names(c, r#"nosuchattribute eq "x""#, "").await.len(), 0);
    // sorting
    let by_given = names(c, "active pr", "&sortBy=name.givenName&sortOrder=descending").await;
    assert_eq!(by_given, vec!["dave@example.net", "carol@example.com", "bob@example.org", "alice@example.com"]);
    let sorted_all = c.get("/Users?sortBy=userName").await;
    assert_eq!(sorted_all.body["Resources"][0]["userName"], "alice@example.com");
});

both_stores!(projection_and_search, |srv| {
    let c = &srv.client;
    let ids = seed(c).await;
    let r = c.get(&format!("/Users/{}?attributes=userName,name.givenName", ids[0])).await;
    assert_eq!(
        r.body,
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE], "id": ids[0], "userName": "alice@example.com", "name": {"givenName": "Alice"}})
    );
    let r = c.get(&format!("/Users/{}?excludedAttributes=emails,meta,{ENTERPRISE}:department", ids[0])).await;
    assert!(r.body.get("emails").is_none() && r.body.get("meta").is_none() && r.body.get(ENTERPRISE).is_none());
    assert_eq!(r.body["userName"], "alice@example.com");
    let l = c.get("/Users?attributes=userName&count=2").await;
    assert_eq!(l.body["Resources"][0].as_object().unwrap().len(), 3, "{}", l.raw);

    for path in ["/Users/.search", "/.search"] {
        let s = c
            .post(
                path,
                &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "name.familyName eq \"Smith\"",
                "attributes": ["userName"], "sortBy": "userName", "startIndex": 1, "count": 10}),
            )
            .await;
        assert_eq!(s.status, 200, "{path}: {}", s.raw);
        assert_eq!(s.body["totalResults"], 2);
        assert_eq!(s.body["Resources"][1]["userName"], "carol@example.com");
        assert!(s.body["Resources"][1].get("name").is_none());
    }
});

both_stores!(indexed_equality_filters_are_key_lookups, |srv| {
    let c = &srv.client;
    let ids = seed(c).await;
    // Each request also authenticates (one batched read); the rest is the filter's cost. An
    // externalId lookup is one Query of its index entries (any number of holders), never a
    // walk of the collection.
    for (filter, max_reads, queries) in [
        (r#"userName eq "carol@example.com""#.to_string(), 3, 0),
        (r#"externalId eq "x-Bob""#.to_string(), 3, 1),
        (format!(r#"id eq "{}""#, ids[3]), 2, 0),
        (format!(r#"id eq "{}" and name.givenName eq "Dave""#, ids[3]), 2, 0),
    ] {
        let before = srv.metered.counts();
        let r = c.filter("/Users", &filter, "").await;
        let after = srv.metered.counts();
        assert_eq!(r.body["totalResults"], 1, "{filter}: {}", r.raw);
        assert_eq!(after.query - before.query, queries, "{filter} must not walk the collection");
        assert!(after.total() - before.total() <= max_reads, "{filter}: {} round trips", after.total() - before.total());
    }
});
