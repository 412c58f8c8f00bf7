//! The OpenAPI document: served, valid OpenAPI 3, and equal to the committed copy.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Path of the committed document, from this crate's folder.
const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");

#[test]
fn generated_document_matches_the_committed_copy() {
    let generated = kontor::web::openapi::document_json();
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    if generated != committed && std::env::var("KONTOR_UPDATE_OPENAPI").is_ok() {
        std::fs::write(COMMITTED, &generated).unwrap();
        return;
    }
    assert!(
        generated == committed,
        "docs/openapi.json is out of date: run `KONTOR_UPDATE_OPENAPI=1 cargo test -p kontor --test api openapi` and commit it"
    );
}

fn collect_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    if let Some(s) = v.as_str() {
                        out.insert(s.to_string());
                    }
                }
                collect_refs(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn document_is_valid_openapi_3() {
    let doc: Value = serde_json::from_str(&kontor::web::openapi::document_json()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    // The typed OpenAPI 3.1 model parses it.
    let parsed: Result<oas3::OpenApiV3Spec, _> = serde_json::from_value(doc.clone());
    assert!(parsed.is_ok(), "{:?}", parsed.err());
    let mut operation_ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with("/api/v1/"), "{path}");
        for (method, op) in item.as_object().unwrap() {
            assert!(
                ["get", "post", "put", "patch", "delete"].contains(&method.as_str()),
                "{method} {path}"
            );
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
            assert!(
                operation_ids.insert(op["operationId"].as_str().unwrap().to_string()),
                "duplicate operationId in {path}"
            );
            let declared: BTreeSet<String> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let in_path: BTreeSet<String> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .map(str::to_string)
                .collect();
            assert_eq!(declared, in_path, "path parameters of {method} {path}");
        }
    }
    let mut refs = BTreeSet::new();
    collect_refs(&doc, &mut refs);
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .expect("local schema ref");
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling $ref {r}"
        );
    }
}

crate::both!(openapi_json_is_served, |app| {
    let (status, doc) = app.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(COMMITTED).unwrap()).unwrap();
    assert_eq!(doc, committed);
});
