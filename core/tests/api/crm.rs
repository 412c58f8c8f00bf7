//! Customers, contacts, notes, timeline, search, paging, CSV and GDPR.

use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};

use crate::both;
use crate::common::{assert_error, Session, TestApp};

/// POST `csv` to the import as `who`.
pub(crate) async fn import(app: &TestApp, who: &Session, csv: &str) -> (StatusCode, Value) {
    let res = app
        .raw(Method::POST, "/api/v1/customers/import", Some(who))
        .header(header::CONTENT_TYPE, "text/csv")
        .body(csv.to_string())
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap())
}

async fn export(app: &TestApp, who: &Session) -> String {
    let res = app
        .raw(Method::GET, "/api/v1/customers/export", Some(who))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    res.text().await.unwrap()
}

both!(customer_crud_writes_the_timeline, |app| {
    let id = app
        .customer(
            &app.owner,
            json!({"company": "Alpen Hosting AG", "contact_name": "Anna Muster", "email": "Info@Alpen.ch",
                   "phone": "+41 44 123 45 67", "city": "Zürich", "country": "ch", "tags": ["vip", "vip", " hosting "],
                   "custom_fields": {"plan": "Premium"}}),
        )
        .await;
    let (status, c) = app
        .call(
            Method::GET,
            &format!("/api/v1/customers/{id}"),
            Some(&app.owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(c["display_name"], "Alpen Hosting AG");
    assert_eq!(c["country"], "CH");
    assert_eq!(c["tags"], json!(["vip", "hosting"]));
    assert_eq!(c["custom_fields"]["plan"], "Premium");
    assert_eq!(c["status"], "active");

    let (status, c) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/customers/{id}"),
            Some(&app.owner),
            Some(json!({"city": "Bern", "phone": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["city"], "Bern");
    assert_eq!(c["phone"], Value::Null);
    assert_eq!(c["company"], "Alpen Hosting AG");

    let (_, timeline) = app
        .call(
            Method::GET,
            &format!("/api/v1/customers/{id}/timeline"),
            Some(&app.owner),
            None,
        )
        .await;
    let kinds: Vec<&str> = timeline
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["customer.updated", "customer.created"]);
    assert!(timeline[0]["summary"].as_str().unwrap().contains("city"));

    let (status, contact) = app
        .call(
            Method::POST,
            &format!("/api/v1/customers/{id}/contacts"),
            Some(&app.owner),
            Some(json!({"name": "Beat Buchhalter", "email": "beat@alpen.ch", "is_primary": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let cid = contact["id"].as_str().unwrap();
    let (status, contact) = app
        .call(
            Method::PUT,
            &format!("/api/v1/customers/{id}/contacts/{cid}"),
            Some(&app.owner),
            Some(json!({"name": "Beat B.", "position": "CFO"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(contact["position"], "CFO");
    let (status, note) = app
        .call(
            Method::POST,
            &format!("/api/v1/customers/{id}/notes"),
            Some(&app.owner),
            Some(json!({"body": "Called about the renewal."})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, notes) = app
        .call(
            Method::GET,
            &format!("/api/v1/customers/{id}/notes"),
            Some(&app.owner),
            None,
        )
        .await;
    assert_eq!(notes[0]["body"], "Called about the renewal.");
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!(
                "/api/v1/customers/{id}/notes/{}",
                note["id"].as_str().unwrap()
            ),
            Some(&app.owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/customers",
            Some(&app.owner),
            Some(json!({"company": "Copy", "email": "info@alpen.ch"})),
        )
        .await;
    assert_error(status, &body, 409, "email_taken");

    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/customers/{id}"),
            Some(&app.owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/customers/{id}"),
            Some(&app.owner),
            None,
        )
        .await;
    assert_error(status, &body, 404, "not_found");
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM contacts WHERE customer_id = $1")
        .bind(&id)
        .fetch_one(app.state.db().pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
});

both!(search_matches_name_email_phone_and_city_substrings, |app| {
    app.customer(&app.owner, json!({"company": "Rheinfall Webdesign GmbH", "email": "hallo@rheinfall.ch", "city": "Schaffhausen"})).await;
    app.customer(
        &app.owner,
        json!({"company": "Säntis Treuhand AG", "phone": "+41 71 555 12 34", "city": "St. Gallen"}),
    )
    .await;
    app.customer(
        &app.owner,
        json!({"contact_name": "Urs Keller", "email": "urs@keller-web.ch"}),
    )
    .await;
    app.customer(&app.owner, json!({"company": "Alpstein Steinbock GmbH"}))
        .await;
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["display_name"].as_str().unwrap().to_string())
            .collect()
    };
    for (q, expected) in [
        ("webdesign", vec!["Rheinfall Webdesign GmbH"]),
        ("SÄNTIS", vec!["Säntis Treuhand AG"]),
        ("keller-web", vec!["Urs Keller"]),
        ("5551234", vec!["Säntis Treuhand AG"]),
        ("gallen", vec!["Säntis Treuhand AG"]),
        ("web", vec!["Rheinfall Webdesign GmbH", "Urs Keller"]),
        ("ag", vec!["Säntis Treuhand AG"]),
        ("nothing-like-this", vec![]),
        ("steinbock", vec!["Alpstein Steinbock GmbH"]),
        // Every trigram of it is in "alpstein steinbock", the term is not:
        // what the trigram index finds is checked against the text.
        ("alpsteinbock", vec![]),
        // Characters that FTS5 queries or LIKE patterns treat specially.
        ("keller\"web", vec![]),
        ("ag\"", vec![]),
        ("_web", vec![]),
        ("%web", vec![]),
    ] {
        let (status, page) = app
            .call(
                Method::GET,
                &format!("/api/v1/customers?q={}", urlencode(q)),
                Some(&app.owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(names(&page), expected, "query {q}");
    }
});

/// Walk the keyset pages of `/api/v1/customers?{filter}limit={limit}` as
/// `who`: the display names in the order they came, and the pages it took.
async fn walk_pages(
    app: &TestApp,
    who: &Session,
    filter: &str,
    limit: usize,
) -> (Vec<String>, usize) {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/api/v1/customers?{filter}limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = app.call(Method::GET, &path, Some(who), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["display_name"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return (seen, pages),
        }
    }
}

/// Every customer matching `q` for `who`, in the order the pages gave them.
async fn search_all(app: &TestApp, who: &Session, q: &str, limit: usize) -> Vec<String> {
    walk_pages(app, who, &format!("q={}&", urlencode(q)), limit)
        .await
        .0
}

// SQLite answers a search with few matches (up to 2,000) from the matches
// and one with many by walking the name index: both must page the same way.
both!(
    search_pages_in_name_order_with_few_and_with_many_matches,
    |app| {
        let mut csv = String::from("company,email\n");
        let mut many: Vec<String> = (0..2_050)
            .map(|i| format!("Alpha Muster {:04}", (i * 7919) % 2_050))
            .collect();
        for (i, name) in many.iter().enumerate() {
            csv.push_str(&format!("{name},m{i}@muster.example\n"));
        }
        let (status, report) = import(&app, &app.owner, &csv).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["imported"], 2_050, "{report}");
        let b = app.new_tenant("Tenant B").await;
        let mut csv = String::from("company\n");
        for i in (0..12).rev() {
            csv.push_str(&format!("Beta Zentrum {i:02}\n"));
        }
        let (status, report) = import(&app, &b, &csv).await;
        assert_eq!(status, StatusCode::OK, "{report}");

        many.sort();
        assert_eq!(search_all(&app, &app.owner, "muster", 200).await, many);
        let few: Vec<String> = many.iter().filter(|n| n.contains(" 00")).cloned().collect();
        assert_eq!(few.len(), 100);
        assert_eq!(
            search_all(&app, &app.owner, "alpha muster 00", 30).await,
            few
        );
        assert_eq!(
            search_all(&app, &app.owner, "MUSTER 1234", 50).await,
            vec!["Alpha Muster 1234"]
        );
        // Matches of another tenant only: none, on either path.
        assert!(search_all(&app, &app.owner, "zentrum", 50).await.is_empty());
        assert!(search_all(&app, &b, "muster", 50).await.is_empty());
        let zentrum: Vec<String> = (0..12).map(|i| format!("Beta Zentrum {i:02}")).collect();
        assert_eq!(search_all(&app, &b, "zentrum", 5).await, zentrum);
    }
);

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

both!(
    keyset_paging_walks_every_customer_once_in_name_order,
    |app| {
        let mut names: Vec<String> = (0..7)
            .map(|i| format!("Kunde {}", (b'G' - i as u8) as char))
            .collect();
        for n in &names {
            app.customer(&app.owner, json!({"company": n})).await;
        }
        names.sort();
        let (seen, pages) = walk_pages(&app, &app.owner, "", 3).await;
        assert_eq!(pages, 3);
        assert_eq!(seen, names);
        let (status, body) = app
            .call(
                Method::GET,
                "/api/v1/customers?limit=500",
                Some(&app.owner),
                None,
            )
            .await;
        assert_error(status, &body, 422, "validation_failed");
        let (status, body) = app
            .call(
                Method::GET,
                "/api/v1/customers?cursor=garbage",
                Some(&app.owner),
                None,
            )
            .await;
        assert_error(status, &body, 422, "validation_failed");
    }
);

both!(csv_import_keeps_good_rows_and_reports_bad_ones, |app| {
    app.customer(
        &app.owner,
        json!({"company": "Existing AG", "email": "exists@example.com"}),
    )
    .await;
    let csv = "company,contact_name,email,phone,city,country,tags,status\n\
               Good One AG,Anna,one@example.com,+41 44 000 00 01,Zürich,CH,vip;mail,active\n\
               ,,,,,,,\n\
               Bad Mail GmbH,Beat,not-an-email,,Bern,CH,,\n\
               Dup In File AG,Cla,one@example.com,,Basel,CH,,\n\
               Dup In Db AG,Dora,EXISTS@example.com,,Basel,CH,,\n\
               Bad Country AG,Emil,e@example.com,,Basel,Switzerland,,\n\
               Good Two GmbH,Fritz,two@example.com,,Luzern,CH,,archived\n";
    let (status, report) = import(&app, &app.owner, csv).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["rows"], 7);
    assert_eq!(report["imported"], 2);
    assert_eq!(report["rejected"], 5);
    let rejections: Vec<(u64, Option<String>)> = report["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["field"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        rejections,
        vec![
            (3, Some("company".into())),
            (4, Some("email".into())),
            (5, Some("email".into())),
            (6, Some("email".into())),
            (7, Some("country".into())),
        ]
    );
    assert!(report["rejections"][2]["reason"]
        .as_str()
        .unwrap()
        .contains("line 2"));
    let (_, page) = app
        .call(Method::GET, "/api/v1/customers", Some(&app.owner), None)
        .await;
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["company"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Existing AG", "Good One AG", "Good Two GmbH"]);
    // Nothing half-written: every imported customer has its timeline entry, no rejected row left a trace.
    let (count,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM activities WHERE kind = 'customer.created'")
            .fetch_one(app.state.db().pool())
            .await
            .unwrap();
    assert_eq!(count, 3);

    let (status, body) = import(&app, &app.owner, "firma,email\nx,y\n").await;
    assert_error(status, &body, 422, "validation_failed");
    assert!(body["error"]["message"].as_str().unwrap().contains("firma"));
    let res = app
        .raw(Method::POST, "/api/v1/customers/import", Some(&app.owner))
        .header(header::CONTENT_TYPE, "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
});

both!(csv_export_imports_again_unchanged, |app| {
    app.customer(
        &app.owner,
        json!({"company": "Quote \"Test\", AG", "contact_name": "Zoë Ümlaut", "email": "zoe@example.com",
               "street": "Line 1", "postal_code": "8000", "city": "Zürich", "region": "ZH", "country": "CH",
               "tags": ["a", "b"], "custom_fields": {"n": 1, "s": "x;y"}}),
    )
    .await;
    app.customer(
        &app.owner,
        json!({"contact_name": "Private Person", "status": "archived"}),
    )
    .await;
    let csv = export(&app, &app.owner).await;
    assert!(csv.starts_with("id,company,contact_name,email"), "{csv}");

    let other = app.new_tenant("Tenant B").await;
    let (status, report) = import(&app, &other, &csv).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["imported"], 2, "{report}");
    let strip = |v: Value| -> Vec<Value> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let mut c = c.clone();
                for k in ["id", "created_at", "updated_at"] {
                    c.as_object_mut().unwrap().remove(k);
                }
                c
            })
            .collect()
    };
    let (_, a) = app
        .call(Method::GET, "/api/v1/customers", Some(&app.owner), None)
        .await;
    let (_, b) = app
        .call(Method::GET, "/api/v1/customers", Some(&other), None)
        .await;
    assert_eq!(strip(a), strip(b));
    assert_eq!(export(&app, &other).await.lines().count(), 3);
});

both!(
    gdpr_export_has_everything_and_erasure_removes_personal_data,
    |app| {
        let id = app
        .customer(&app.owner, json!({"company": "Privat AG", "contact_name": "Hans Geheim", "email": "hans@privat.ch", "phone": "+41 79 111 22 33"}))
        .await;
        app.call(
            Method::POST,
            &format!("/api/v1/customers/{id}/contacts"),
            Some(&app.owner),
            Some(json!({"name": "Gret Geheim", "email": "gret@privat.ch"})),
        )
        .await;
        app.call(
            Method::POST,
            &format!("/api/v1/customers/{id}/notes"),
            Some(&app.owner),
            Some(json!({"body": "Hans prefers calls after 5."})),
        )
        .await;
        let portal = app.user(&app.owner, "customer", Some(&id)).await;

        let (status, doc) = app
            .call(
                Method::GET,
                &format!("/api/v1/customers/{id}/gdpr-export"),
                Some(&app.owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(doc["customer"]["email"], "hans@privat.ch");
        assert_eq!(doc["contacts"][0]["name"], "Gret Geheim");
        assert_eq!(doc["notes"][0]["body"], "Hans prefers calls after 5.");
        assert!(doc["timeline"].as_array().unwrap().len() >= 3);
        assert_eq!(doc["users"][0]["email"], portal.email);

        let (status, erased) = app
            .call(
                Method::POST,
                &format!("/api/v1/customers/{id}/erase"),
                Some(&app.owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{erased}");
        assert!(erased["erased_at"].is_string());
        let (_, doc) = app
            .call(
                Method::GET,
                &format!("/api/v1/customers/{id}/gdpr-export"),
                Some(&app.owner),
                None,
            )
            .await;
        let text = doc.to_string();
        for secret in [
            "Hans",
            "hans@privat.ch",
            "79 111",
            "Gret",
            "prefers calls",
            "Privat AG",
            &portal.email,
        ] {
            assert!(!text.contains(secret), "{secret} survived erasure: {text}");
        }
        let (status, _) = app
            .call(Method::GET, "/api/v1/auth/me", Some(&portal), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body) = app
            .call(
                Method::POST,
                &format!("/api/v1/customers/{id}/erase"),
                Some(&app.owner),
                None,
            )
            .await;
        assert_error(status, &body, 409, "conflict");
    }
);

both!(reseller_sees_only_assigned_customers, |app| {
    let reseller = app.user(&app.owner, "reseller", None).await;
    let theirs = app
        .customer(
            &app.owner,
            json!({"company": "Assigned AG", "reseller_id": reseller.user_id}),
        )
        .await;
    let other = app
        .customer(&app.owner, json!({"company": "Not Theirs AG"}))
        .await;
    let (_, page) = app
        .call(Method::GET, "/api/v1/customers", Some(&reseller), None)
        .await;
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![theirs.as_str()]);
    for path in [
        format!("/api/v1/customers/{other}"),
        format!("/api/v1/customers/{other}/contacts"),
        format!("/api/v1/customers/{other}/notes"),
        format!("/api/v1/customers/{other}/timeline"),
    ] {
        let (status, body) = app.call(Method::GET, &path, Some(&reseller), None).await;
        assert_error(status, &body, 404, "not_found");
    }
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/customers/{other}"),
            Some(&reseller),
            Some(json!({"city": "X"})),
        )
        .await;
    assert_error(status, &body, 404, "not_found");
    // A reseller's new customer is theirs, whatever the body says.
    let (status, created) = app
        .call(
            Method::POST,
            "/api/v1/customers",
            Some(&reseller),
            Some(json!({"company": "New Lead AG"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["reseller_id"], reseller.user_id.as_str());
    let (status, _) = app
        .call(
            Method::GET,
            "/api/v1/customers/export",
            Some(&reseller),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(Method::GET, "/api/v1/users", Some(&reseller), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Staff cannot assign a customer to someone who is not a reseller.
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/customers",
            Some(&app.owner),
            Some(json!({"company": "Y", "reseller_id": app.owner.user_id})),
        )
        .await;
    assert_error(status, &body, 422, "validation_failed");
});

both!(portal_customer_sees_only_their_own_record, |app| {
    let mine = app
        .customer(&app.owner, json!({"company": "Mine AG"}))
        .await;
    let other = app
        .customer(&app.owner, json!({"company": "Other AG"}))
        .await;
    let portal = app.user(&app.owner, "customer", Some(&mine)).await;
    let (_, page) = app
        .call(Method::GET, "/api/v1/customers", Some(&portal), None)
        .await;
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![mine.as_str()]);
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/customers/{mine}/contacts"),
            Some(&portal),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/customers/{other}"),
            Some(&portal),
            None,
        )
        .await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/customers",
            Some(&portal),
            Some(json!({"company": "Z"})),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/customers/{mine}"),
            Some(&portal),
            Some(json!({"company": "Hacked"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(Method::GET, "/api/v1/users", Some(&portal), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(Method::GET, "/api/v1/settings", Some(&portal), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
});

both!(settings_are_typed_with_defaults, |app| {
    let (status, s) = app
        .call(Method::GET, "/api/v1/settings", Some(&app.owner), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s["locale.timezone"], "Europe/Zurich");
    assert_eq!(s["billing.currency"], "CHF");
    assert_eq!(s["locale.default"], "de");
    let (status, s) = app
        .call(
            Method::PUT,
            "/api/v1/settings/billing.currency",
            Some(&app.owner),
            Some(json!({"value": "EUR"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s["billing.currency"], "EUR");
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/v1/settings/billing.currency",
            Some(&app.owner),
            Some(json!({"value": "euro"})),
        )
        .await;
    assert_error(status, &body, 422, "validation_failed");
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/v1/settings/no.such.key",
            Some(&app.owner),
            Some(json!({"value": "x"})),
        )
        .await;
    assert_error(status, &body, 422, "validation_failed");
});

// Writers that read first (load, check, update) queue instead of failing
// when another writer commits in between (SQLite: BEGIN IMMEDIATE).
both!(concurrent_updates_of_one_customer_all_succeed, |app| {
    let id = app
        .customer(&app.owner, json!({"company": "Busy AG"}))
        .await;
    let calls = (0..12).map(|i| {
        let app = &app;
        let id = &id;
        async move {
            app.call(
                Method::PATCH,
                &format!("/api/v1/customers/{id}"),
                Some(&app.owner),
                Some(json!({ "city": format!("Ort {i}") })),
            )
            .await
        }
    });
    for (status, body) in futures::future::join_all(calls).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, timeline) = app
        .call(
            Method::GET,
            &format!("/api/v1/customers/{id}/timeline"),
            Some(&app.owner),
            None,
        )
        .await;
    let updates = timeline.as_array().map_or(0, |a| {
        a.iter().filter(|e| e["kind"] == "customer.updated").count()
    });
    assert_eq!(updates, 12, "{timeline}");
});
