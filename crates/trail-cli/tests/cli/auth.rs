//! Tenancy and roles: a second tenant's keys (made with `trail keys create
//! --tenant other` while the server runs) see nothing of the first tenant
//! (404 by id, empty lists, zero counts and stats) and vice versa; ingest
//! keys cannot read and read keys cannot write or manage (403); a missing,
//! malformed, wrong or revoked key (revoked through the API or the CLI) is
//! 401 everywhere; a user-bound read key never sees another user's records,
//! whatever filters it sends.

use serde_json::{json, Value};

use crate::harness::{assert_plain_problem, event, key_id, trail, Client, Server};

const READ_PATHS: [&str; 3] = ["/v1/events", "/v1/stats", "/v1/events?count=true"];

fn record_id(client: &Client, body: Value) -> String {
    let accepted = client.ingest(&body);
    accepted[0]["id"].as_str().unwrap().to_owned()
}

#[test]
fn tenants_never_see_each_other() {
    let server = Server::start();
    let admin = server.admin();
    let mut secret = event("tool_call", "default.only");
    secret["user_id"] = json!("alice");
    let default_id = record_id(&admin, secret.clone());
    admin.ingest(&event("llm_call", "default.two"));

    let other_admin = server.client(&server.create_key("other", "admin", None));
    let other_read = server.client(&server.create_key("other", "read", None));
    for client in [&other_admin, &other_read] {
        assert_plain_problem(
            &client.get(&format!("/v1/events/{default_id}")),
            404,
            "another tenant's record by id",
        );
        let page = client.get("/v1/events").expect(200);
        assert_eq!(page["events"], json!([]), "another tenant's list");
        assert_eq!(client.total(&[]), 0);
        assert_eq!(client.total(&[("user_id", "alice")]), 0);
        assert_eq!(client.total(&[("name", "default.only")]), 0);
        let stats = client.get("/v1/stats").expect(200);
        assert_eq!(stats["total"], json!(0), "{stats}");
    }

    // The other tenant has its own log; the same id there is a new event.
    let mut own = secret.clone();
    own["name"] = json!("other.event");
    let accepted = other_admin.ingest(&own);
    assert_eq!(accepted[0]["duplicate"], json!(false), "ids are per tenant");
    let own_record = other_admin
        .get(&format!("/v1/events/{default_id}"))
        .expect(200);
    assert_eq!(own_record["record"]["name"], json!("other.event"));
    assert_eq!(other_admin.total_recorded(&[]), 1);
    let stored = admin.get(&format!("/v1/events/{default_id}")).expect(200);
    assert_eq!(
        stored["record"]["name"],
        json!("default.only"),
        "default tenant unchanged"
    );
    assert_eq!(admin.total_recorded(&[]), 2);
    let listed: Vec<Value> = admin.list_all(&[], 100, true);
    assert!(listed.iter().all(|r| r["name"] != json!("other.event")));

    // Keys and settings are per tenant too.
    let keys = other_admin.get("/v1/keys").expect(200);
    let other_ids: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_str().unwrap())
        .collect();
    assert!(!other_ids.contains(&key_id(&server.admin_key()).as_str()));
    let revoke = other_admin.delete(&format!("/v1/keys/{}", key_id(&server.admin_key())));
    assert!(
        revoke.status == 404 || revoke.status == 403,
        "revoking another tenant's key: {} {}",
        revoke.status,
        revoke.text()
    );
    admin.get("/v1/events").expect(200);
    other_admin
        .put("/v1/settings", &json!({"content_policy": "full"}))
        .expect(200);
    let settings = admin.get("/v1/settings").expect(200);
    assert_eq!(
        settings["content_policy"],
        json!("hash"),
        "settings are per tenant"
    );
}

#[test]
fn roles_are_enforced() {
    let server = Server::start();
    let admin = server.admin();
    let id = record_id(&admin, event("tool_call", "x"));
    let ingest = server.client(&server.create_key("default", "ingest", None));
    let read = server.client(&server.create_key("default", "read", None));

    // ingest: write only.
    ingest.ingest(&event("tool_call", "by.ingest"));
    for path in READ_PATHS {
        assert_plain_problem(&ingest.get(path), 403, path);
    }
    assert_plain_problem(
        &ingest.get(&format!("/v1/events/{id}")),
        403,
        "ingest by id",
    );
    assert_plain_problem(&ingest.get("/v1/keys"), 403, "ingest lists keys");
    assert_plain_problem(
        &ingest.post("/v1/keys", &json!({"role": "admin"})),
        403,
        "ingest makes keys",
    );
    assert_plain_problem(&ingest.get("/v1/settings"), 403, "ingest reads settings");

    // read: query only.
    assert_plain_problem(
        &read.post("/v1/events", &event("tool_call", "by.read")),
        403,
        "read writes",
    );
    assert_eq!(read.total(&[]), 2, "the read key's write stored nothing");
    read.get(&format!("/v1/events/{id}")).expect(200);
    read.get("/v1/stats").expect(200);
    assert_plain_problem(&read.get("/v1/keys"), 403, "read lists keys");
    assert_plain_problem(
        &read.post("/v1/keys", &json!({"role": "admin"})),
        403,
        "read makes an admin key",
    );
    assert_plain_problem(
        &read.delete(&format!("/v1/keys/{}", key_id(&server.admin_key()))),
        403,
        "read revokes",
    );
    assert_plain_problem(
        &read.put("/v1/settings", &json!({"content_policy": "full"})),
        403,
        "read changes settings",
    );
    assert_eq!(
        admin.get("/v1/settings").expect(200)["content_policy"],
        json!("hash")
    );

    // admin: everything, including making keys that work.
    let made = admin
        .post(
            "/v1/keys",
            &json!({"role": "ingest", "label": "made by api"}),
        )
        .expect(201);
    let made_key = made["key"].as_str().unwrap();
    server
        .client(made_key)
        .ingest(&event("tool_call", "by.made"));
    assert_eq!(admin.total_recorded(&[]), 3);
}

#[test]
fn missing_wrong_and_revoked_keys_are_401() {
    let server = Server::start();
    let admin = server.admin();
    admin.ingest(&event("tool_call", "x"));
    let admin_key = server.admin_key();
    // Same key id, another secret.
    let wrong_secret = format!("trail_{}_{}", key_id(&admin_key), "0".repeat(64));
    let unknown = format!("trail_{}_{}", "f".repeat(16), "a".repeat(64));
    let clients = [
        ("no key", server.anonymous()),
        ("garbage", server.client("not-a-key")),
        ("wrong secret", server.client(&wrong_secret)),
        ("unknown id", server.client(&unknown)),
        (
            "truncated",
            server.client(&admin_key[..admin_key.len() - 1]),
        ),
    ];
    for (what, client) in &clients {
        assert_plain_problem(&client.get("/v1/events"), 401, what);
        assert_plain_problem(&client.get("/v1/stats"), 401, what);
        assert_plain_problem(&client.get("/v1/keys"), 401, what);
        assert_plain_problem(
            &client.post("/v1/events", &event("tool_call", "sneaky")),
            401,
            what,
        );
    }
    // A Basic scheme is not a bearer key.
    let basic = crate::harness::request(
        server.addr,
        "GET",
        "/v1/events",
        &[("Authorization", &format!("Basic {admin_key}"))],
        None,
    )
    .unwrap();
    assert_plain_problem(&basic, 401, "basic scheme");
    assert_eq!(admin.total(&[]), 1, "no unauthenticated write stored");

    // Revoked through the API.
    let made = admin
        .post("/v1/keys", &json!({"role": "ingest"}))
        .expect(201);
    let api_key = made["key"].as_str().unwrap().to_owned();
    server
        .client(&api_key)
        .ingest(&event("tool_call", "before.revoke"));
    admin
        .delete(&format!("/v1/keys/{}", key_id(&api_key)))
        .expect(200);
    assert_plain_problem(
        &server
            .client(&api_key)
            .post("/v1/events", &event("tool_call", "after")),
        401,
        "key revoked through the API",
    );

    // Revoked with the CLI on the data dir while the server runs.
    let read_key = server.create_key("default", "read", None);
    server.client(&read_key).get("/v1/events").expect(200);
    let dir = server.data_dir.to_str().unwrap();
    let run = trail(&[
        "keys",
        "revoke",
        "--data-dir",
        dir,
        "--tenant",
        "default",
        &key_id(&read_key),
    ]);
    run.ok();
    assert_plain_problem(
        &server.client(&read_key).get("/v1/events"),
        401,
        "key revoked with the CLI",
    );
    assert_eq!(admin.total(&[]), 2);
}

#[test]
fn a_user_bound_read_key_sees_only_its_user() {
    let server = Server::start();
    let admin = server.admin();
    let mut alice_ids = Vec::new();
    let mut others = Vec::new();
    for i in 0..12 {
        let mut e = event(
            if i % 2 == 0 { "tool_call" } else { "llm_call" },
            &format!("act.{i}"),
        );
        e["session_id"] = json!("shared-session");
        e["duration_ms"] = json!(10 * i);
        match i % 3 {
            0 => {
                e["user_id"] = json!("alice");
                alice_ids.push(e["id"].as_str().unwrap().to_owned());
            }
            1 => {
                e["user_id"] = json!("bob");
                others.push(e["id"].as_str().unwrap().to_owned());
            }
            _ => others.push(e["id"].as_str().unwrap().to_owned()),
        }
        if i == 4 {
            e["status"] = json!("error");
        }
        admin.ingest(&e);
    }
    let alice = server.client(&server.create_key("default", "read", Some("alice")));
    let only_alice = |records: &[Value], what: &str| {
        for r in records {
            assert_eq!(r["user_id"], json!("alice"), "{what}: saw {r}");
        }
    };

    let all = alice.list_all(&[], 100, false);
    only_alice(&all, "no filter");
    assert_eq!(all.len(), alice_ids.len());
    assert_eq!(alice.total(&[]), alice_ids.len() as u64);
    let filter_sets: Vec<Vec<(&str, &str)>> = vec![
        vec![("user_id", "bob")],
        vec![("session_id", "shared-session")],
        vec![("name", "act.1")],
        vec![("name_contains", "ACT")],
        vec![("type", "llm_call")],
        vec![("status", "error")],
        vec![("transport", "http")],
        vec![("from", "2000-01-01T00:00:00Z")],
    ];
    for filters in &filter_sets {
        let what = format!("{filters:?}");
        let answer = alice.get_q(
            "/v1/events",
            &[filters.as_slice(), &[("count", "true")]].concat(),
        );
        if answer.status == 200 {
            let body = answer.json();
            let events = body["events"].as_array().unwrap();
            only_alice(events, &what);
            assert_eq!(
                body["total"].as_u64(),
                Some(events.len() as u64),
                "{what}: total"
            );
        } else {
            assert!(
                answer.status == 403 || answer.status == 400,
                "{what}: {} {}",
                answer.status,
                answer.text()
            );
        }
        let stats = alice.get_q("/v1/stats", filters);
        if stats.status == 200 {
            let body = stats.json();
            let visible = alice.list_all(filters, 100, false).len() as u64;
            assert_eq!(
                body["total"].as_u64(),
                Some(visible),
                "{what}: stats total {body}"
            );
            let named: u64 = body["top_names"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["count"].as_u64().unwrap())
                .sum();
            assert!(named <= visible, "{what}: top_names count others {body}");
        } else {
            assert!(
                stats.status == 403 || stats.status == 400,
                "{what}: stats {}",
                stats.status
            );
        }
    }
    assert_eq!(alice.total(&[("user_id", "alice")]), alice_ids.len() as u64);
    let stats = alice.get("/v1/stats").expect(200);
    assert_eq!(stats["total"], json!(alice_ids.len()), "{stats}");
    // Alice's events are i = 0, 3, 6, 9: durations 0, 30, 60, 90.
    assert_eq!(stats["duration_ms"]["p95"], json!(90), "{stats}");
    assert_eq!(
        stats["errors"],
        json!(0),
        "the one error is not alice's: {stats}"
    );

    for id in &others {
        assert_plain_problem(
            &alice.get(&format!("/v1/events/{id}")),
            404,
            "other user's record by id",
        );
    }
    for id in &alice_ids {
        let record = alice.get(&format!("/v1/events/{id}")).expect(200);
        assert_eq!(record["record"]["user_id"], json!("alice"));
    }
    assert_plain_problem(
        &alice.post("/v1/events", &event("tool_call", "by.alice")),
        403,
        "a bound read key writes",
    );

    // A key bound to a user with no records sees nothing at all.
    let nobody = server.client(&server.create_key("default", "read", Some("nobody")));
    assert_eq!(nobody.total(&[]), 0);
    assert_eq!(nobody.get("/v1/stats").expect(200)["total"], json!(0));
    assert_plain_problem(
        &nobody.get(&format!("/v1/events/{}", alice_ids[0])),
        404,
        "nobody by id",
    );
}
