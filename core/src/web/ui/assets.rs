//! Static files of the UI (stylesheet, htmx, icons), embedded into the
//! binary and served under `/assets/...`.
//!
//! Templates link them through `{{ asset(path="kontor.css") }}`, which adds
//! `?v=<content hash>`: a request carrying the current hash may be cached
//! for a year, because a new build changes the URL.

use std::collections::HashMap;

use axum::extract::{Path, Query};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;
use serde::Deserialize;

#[derive(RustEmbed)]
#[folder = "assets/"]
#[exclude = "*.md"]
struct Assets;

/// Cache lifetime of a URL without the current version.
const SHORT_CACHE: &str = "public, max-age=3600";
/// Cache lifetime of a versioned URL.
const LONG_CACHE: &str = "public, max-age=31536000, immutable";

/// The version (short content hash) of every embedded asset.
#[derive(Debug, Clone, Default)]
pub(crate) struct AssetVersions(HashMap<String, String>);

impl AssetVersions {
    pub(crate) fn load() -> Self {
        AssetVersions(
            Assets::iter()
                .filter_map(|path| {
                    let file = Assets::get(&path)?;
                    Some((path.to_string(), version_of(&file)))
                })
                .collect(),
        )
    }

    /// The URL of `path`, versioned when the asset exists.
    pub(crate) fn url(&self, path: &str) -> String {
        match self.0.get(path) {
            Some(v) => format!("/assets/{path}?v={v}"),
            None => format!("/assets/{path}"),
        }
    }
}

fn version_of(file: &rust_embed::EmbeddedFile) -> String {
    hex::encode(&file.metadata.sha256_hash()[..6])
}

/// The tera function `asset(path=..)`.
pub(crate) struct AssetUrl(pub(crate) AssetVersions);

impl tera::Function for AssetUrl {
    fn call(&self, args: &HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
        let path = args
            .get("path")
            .and_then(tera::Value::as_str)
            .ok_or_else(|| tera::Error::msg("asset() needs a string argument `path`"))?;
        Ok(tera::Value::String(self.0.url(path)))
    }

    fn is_safe(&self) -> bool {
        // Paths come from templates, not from users; the URL stays readable.
        true
    }
}

/// The content type of a file, by its extension.
fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
    match ext.to_ascii_lowercase().as_str() {
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Query of an asset request.
#[derive(Debug, Deserialize)]
pub(crate) struct AssetQuery {
    v: Option<String>,
}

/// `GET /assets/{*path}`.
pub(crate) async fn serve(
    Path(path): Path<String>,
    Query(query): Query<AssetQuery>,
    headers: HeaderMap,
) -> Response {
    if path.contains("..") || path.contains('\\') {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Some(file) = Assets::get(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let version = version_of(&file);
    let etag = format!("\"{version}\"");
    let cache = if query.v.as_deref() == Some(version.as_str()) {
        LONG_CACHE
    } else {
        SHORT_CACHE
    };
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, content_type(&path))],
            file.data.into_owned(),
        )
            .into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_asset_has_a_known_content_type() {
        for path in Assets::iter() {
            assert_ne!(
                content_type(&path),
                "application/octet-stream",
                "add a content type for {path}"
            );
        }
    }

    #[test]
    fn urls_of_known_assets_are_versioned() {
        let v = AssetVersions::load();
        assert!(v.url("kontor.css").starts_with("/assets/kontor.css?v="));
        assert_eq!(v.url("nope.css"), "/assets/nope.css");
    }
}
