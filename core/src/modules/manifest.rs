//! `module.toml`: what a module declares.
//!
//! Parsed strictly (unknown keys are errors) and validated as a whole; every
//! problem names the file, the key and what is wrong, e.g.
//! `module.toml: routes[1].path: must start with "/"`.

use std::collections::BTreeSet;
use std::fmt;

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

use super::capabilities::Capability;
use crate::auth::Role;

/// A parsed, validated manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Module id: lower-case letters, digits and `-`, 2 to 32 characters.
    /// It names the module's URL prefix, permissions and events.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The module's own version.
    pub version: Version,
    /// Who publishes it (matches the signing key's publisher).
    pub publisher: String,
    /// One line on what it does.
    #[serde(default)]
    pub description: String,
    /// The `kontor:module` contract versions it works with, e.g. `^0.1`.
    pub api: VersionReq,
    /// The entitlement key that unlocks it (defaults to the id).
    #[serde(default)]
    pub entitlement: Option<String>,
    /// Other modules it needs.
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    /// Permissions it defines (`{id}.something`).
    #[serde(default)]
    pub permissions: Vec<PermissionDecl>,
    /// Host capabilities it asks for beyond its own records, events, log and
    /// settings: `secrets`, `crm`, `http`, `notify`
    /// ([`super::capabilities::Capability`]). An administrator accepts them
    /// at install; a module gets none it did not declare.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Where the `http` capability may connect, in Spin's syntax
    /// (`https://*.example.com:8006`); see [`super::outbound`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_outbound_hosts: Vec<String>,
    /// API routes under `/api/v1/{id}`.
    #[serde(default)]
    pub routes: Vec<RouteDecl>,
    /// Pages under `/app/{id}`.
    #[serde(default)]
    pub pages: Vec<PageDecl>,
    /// Events it subscribes to.
    #[serde(default)]
    pub events: Vec<EventDecl>,
    /// Filter hooks it runs in.
    #[serde(default)]
    pub filters: Vec<FilterDecl>,
    /// Scheduled jobs.
    #[serde(default)]
    pub jobs: Vec<JobDecl>,
    /// Record collections.
    #[serde(default)]
    pub collections: Vec<CollectionDecl>,
    /// Typed settings.
    #[serde(default)]
    pub settings: Vec<SettingDecl>,
    /// Secrets an administrator sets for it (needs the `secrets` capability).
    #[serde(default)]
    pub secrets: Vec<SecretDecl>,
    /// E-mail templates it sends through the `notify` capability.
    #[serde(default)]
    pub templates: Vec<crate::mail::templates::Template>,
}

/// A dependency on another module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    /// The module id.
    pub id: String,
    /// Versions that work.
    pub version: VersionReq,
    /// Used when present, not required.
    #[serde(default)]
    pub optional: bool,
}

/// A permission the module defines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionDecl {
    /// `{id}.action`.
    pub name: String,
    /// For the admin UI.
    #[serde(default)]
    pub description: String,
    /// Roles that get it when the module is enabled.
    #[serde(default)]
    pub default_roles: Vec<Role>,
}

/// An API route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteDecl {
    /// GET, POST, PUT, PATCH or DELETE.
    pub method: String,
    /// Path below `/api/v1/{id}`, e.g. `/tickets/{ticket}`.
    pub path: String,
    /// Permission the caller needs; none means any signed-in user.
    #[serde(default)]
    pub permission: Option<String>,
    /// A signed hook instead of a user's route: the name of a secret under
    /// `[[secrets]]` whose value signs the request (`Kontor-Signature`).
    /// Served only at `POST /api/v1/hooks/{tenant}/{id}{path}`, with no
    /// user (see [`crate::web::modules`]); POST only, no `permission`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
}

/// A page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageDecl {
    /// Path below `/app/{id}`.
    pub path: String,
    /// Title.
    pub title: String,
    /// Permission the viewer needs.
    #[serde(default)]
    pub permission: Option<String>,
    /// A navigation entry for the page.
    #[serde(default)]
    pub nav: Option<NavDecl>,
}

/// A navigation entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NavDecl {
    /// Label.
    pub label: String,
    /// Sort order among entries.
    #[serde(default)]
    pub order: i32,
}

/// An event subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventDecl {
    /// `customer.created`, `billing.invoice.paid`...
    pub name: String,
}

/// A filter hook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterDecl {
    /// `http.request`, `customer.before_save`...
    pub hook: String,
    /// Lower runs first.
    #[serde(default = "default_priority")]
    pub priority: i32,
}

fn default_priority() -> i32 {
    100
}

/// A scheduled job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobDecl {
    /// Name passed to `run-job`.
    pub name: String,
    /// Five-field cron schedule (minute hour day month weekday), UTC.
    pub schedule: String,
}

/// A record collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionDecl {
    /// Name.
    pub name: String,
    /// Fields that queries may filter and order on.
    #[serde(default)]
    pub indexes: Vec<IndexDecl>,
}

/// An indexed field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexDecl {
    /// Top-level field of the record's JSON.
    pub field: String,
    /// `string` or `number`.
    #[serde(rename = "type")]
    pub kind: IndexKind,
}

/// Type of an indexed field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexKind {
    /// Text.
    String,
    /// A number.
    Number,
}

/// A typed setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingDecl {
    /// Key: lower-case letters, digits, `_` and `.`.
    pub key: String,
    /// `string`, `number` or `boolean` ([`SETTING_TYPES`]). Secrets are not
    /// settings: they are declared under `[[secrets]]` and stored encrypted.
    #[serde(rename = "type")]
    pub kind: String,
    /// Default value.
    #[serde(default)]
    pub default: Option<toml::Value>,
    /// For the admin UI.
    #[serde(default)]
    pub description: String,
}

/// The types a setting can have.
pub const SETTING_TYPES: &[&str] = &["string", "number", "boolean"];

/// A secret the module reads (an API key, a password), set by an administrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretDecl {
    /// Name: lower-case letters, digits and `_`.
    pub name: String,
    /// For the admin UI.
    #[serde(default)]
    pub description: String,
}

/// Most secrets one module declares.
pub const MAX_SECRETS: usize = 32;

/// A problem with a manifest: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// The file.
    pub file: String,
    /// The key (`routes[1].path`), or empty for the whole file.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.message)
        }
    }
}

impl std::error::Error for ManifestError {}

/// Paths a module id may not take, because the core serves them.
pub const RESERVED_IDS: &[&str] = &[
    "auth",
    "users",
    "roles",
    "customers",
    "settings",
    "modules",
    "audit-events",
    "audit",
    "tenants",
    "license",
    "health",
    "metrics",
    "openapi",
    "app",
    "api",
    "assets",
    "login",
    "logout",
    "setup",
    "core",
    "kontor",
    "hooks",
    "webhooks",
];

/// Hooks the core runs.
pub const KNOWN_HOOKS: &[&str] = &[
    "http.request",
    "auth.login",
    "customer.before_save",
    "dashboard.widgets",
    "customer.tabs",
    "nav.items",
];

fn valid_id(id: &str) -> bool {
    (2..=32).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.ends_with('-')
}

impl Manifest {
    /// Parse and validate `text`, read from `file` (named in errors).
    pub fn parse(file: &str, text: &str) -> Result<Manifest, ManifestError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| {
            let key = e
                .span()
                .map(|span| key_at(text, span.start))
                .unwrap_or_default();
            ManifestError {
                file: file.to_string(),
                key,
                message: e.message().to_string(),
            }
        })?;
        manifest.validate(file)?;
        Ok(manifest)
    }

    /// The entitlement key (the id unless set).
    pub fn entitlement_key(&self) -> &str {
        self.entitlement.as_deref().unwrap_or(&self.id)
    }

    /// Check everything that types alone do not.
    pub fn validate(&self, file: &str) -> Result<(), ManifestError> {
        let err = |key: String, message: String| ManifestError {
            file: file.to_string(),
            key,
            message,
        };
        if !valid_id(&self.id) {
            return Err(err(
                "id".into(),
                "2 to 32 lower-case letters, digits or `-`, starting with a letter".into(),
            ));
        }
        if RESERVED_IDS.contains(&self.id.as_str()) {
            return Err(err(
                "id".into(),
                format!(
                    "`{}` is a path of the core and cannot be a module id",
                    self.id
                ),
            ));
        }
        if self.name.trim().is_empty() {
            return Err(err("name".into(), "must not be empty".into()));
        }
        if self.publisher.trim().is_empty() {
            return Err(err("publisher".into(), "must not be empty".into()));
        }
        let mut deps = BTreeSet::new();
        for (i, d) in self.dependencies.iter().enumerate() {
            if !valid_id(&d.id) {
                return Err(err(
                    format!("dependencies[{i}].id"),
                    "not a module id".into(),
                ));
            }
            if d.id == self.id {
                return Err(err(
                    format!("dependencies[{i}].id"),
                    "a module cannot depend on itself".into(),
                ));
            }
            if !deps.insert(&d.id) {
                return Err(err(
                    format!("dependencies[{i}].id"),
                    format!("`{}` is listed twice", d.id),
                ));
            }
        }
        let prefix = format!("{}.", self.id);
        let mut defined: BTreeSet<&str> = BTreeSet::new();
        for (i, p) in self.permissions.iter().enumerate() {
            if !p.name.starts_with(&prefix) || p.name.len() == prefix.len() {
                return Err(err(
                    format!("permissions[{i}].name"),
                    format!("must start with `{prefix}`"),
                ));
            }
            if p.default_roles.contains(&Role::Owner) {
                return Err(err(
                    format!("permissions[{i}].default_roles"),
                    "owners hold every permission already".into(),
                ));
            }
            if !defined.insert(&p.name) {
                return Err(err(
                    format!("permissions[{i}].name"),
                    format!("`{}` is defined twice", p.name),
                ));
            }
        }
        let check_permission = |key: String, p: &Option<String>| -> Result<(), ManifestError> {
            match p {
                Some(p) if p.starts_with(&prefix) && !defined.contains(p.as_str()) => {
                    Err(err(key, format!("`{p}` is not defined in `permissions`")))
                }
                _ => Ok(()),
            }
        };
        let mut seen_routes = BTreeSet::new();
        for (i, r) in self.routes.iter().enumerate() {
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&r.method.as_str()) {
                return Err(err(
                    format!("routes[{i}].method"),
                    "expected GET, POST, PUT, PATCH or DELETE".into(),
                ));
            }
            check_path(&r.path).map_err(|m| err(format!("routes[{i}].path"), m))?;
            check_permission(format!("routes[{i}].permission"), &r.permission)?;
            if let Some(secret) = &r.signed_by {
                check_signed_route(r, secret, &self.secrets)
                    .map_err(|(f, m)| err(format!("routes[{i}].{f}"), m))?;
            }
            if !seen_routes.insert((r.method.as_str(), r.path.as_str())) {
                return Err(err(
                    format!("routes[{i}]"),
                    format!("{} {} is declared twice", r.method, r.path),
                ));
            }
        }
        for (i, p) in self.pages.iter().enumerate() {
            check_path(&p.path).map_err(|m| err(format!("pages[{i}].path"), m))?;
            check_permission(format!("pages[{i}].permission"), &p.permission)?;
        }
        for (i, e) in self.events.iter().enumerate() {
            if e.name.split('.').count() < 2 || e.name.contains(char::is_whitespace) {
                return Err(err(
                    format!("events[{i}].name"),
                    "expected a dotted event name like `customer.created`".into(),
                ));
            }
        }
        for (i, f) in self.filters.iter().enumerate() {
            if !KNOWN_HOOKS.contains(&f.hook.as_str()) && !f.hook.starts_with(&prefix) {
                return Err(err(
                    format!("filters[{i}].hook"),
                    format!(
                        "unknown hook `{}`; the core runs {}",
                        f.hook,
                        KNOWN_HOOKS.join(", ")
                    ),
                ));
            }
        }
        let mut jobs = BTreeSet::new();
        for (i, j) in self.jobs.iter().enumerate() {
            if !jobs.insert(&j.name) {
                return Err(err(
                    format!("jobs[{i}].name"),
                    format!("`{}` is declared twice", j.name),
                ));
            }
            crate::modules::cron::Schedule::parse(&j.schedule)
                .map_err(|m| err(format!("jobs[{i}].schedule"), m))?;
        }
        let mut collections = BTreeSet::new();
        for (i, c) in self.collections.iter().enumerate() {
            if !valid_name(&c.name) {
                return Err(err(
                    format!("collections[{i}].name"),
                    "lower-case letters, digits and `_`".into(),
                ));
            }
            if !collections.insert(&c.name) {
                return Err(err(
                    format!("collections[{i}].name"),
                    format!("`{}` is declared twice", c.name),
                ));
            }
            if c.indexes.len() > 8 {
                return Err(err(
                    format!("collections[{i}].indexes"),
                    "at most 8 indexed fields".into(),
                ));
            }
            for (k, ix) in c.indexes.iter().enumerate() {
                if !valid_name(&ix.field) {
                    return Err(err(
                        format!("collections[{i}].indexes[{k}].field"),
                        "lower-case letters, digits and `_`".into(),
                    ));
                }
            }
        }
        crate::modules::records::check_collections(&self.collections)
            .map_err(|m| err("collections".into(), m))?;
        let mut capabilities = BTreeSet::new();
        for (i, c) in self.capabilities.iter().enumerate() {
            if Capability::parse(c).is_none() {
                return Err(err(
                    format!("capabilities[{i}]"),
                    format!(
                        "unknown capability `{c}`; a module can ask for {}",
                        Capability::names()
                    ),
                ));
            }
            if !capabilities.insert(c) {
                return Err(err(
                    format!("capabilities[{i}]"),
                    format!("`{c}` is listed twice"),
                ));
            }
        }
        let declares_secrets = self
            .capabilities
            .iter()
            .any(|c| c == Capability::Secrets.as_str());
        if !self.secrets.is_empty() && !declares_secrets {
            return Err(err(
                "secrets".into(),
                "declaring secrets needs the capability: add `capabilities = [\"secrets\"]`".into(),
            ));
        }
        if self.secrets.len() > MAX_SECRETS {
            return Err(err(
                "secrets".into(),
                format!("at most {MAX_SECRETS} secrets"),
            ));
        }
        let mut secrets = BTreeSet::new();
        for (i, s) in self.secrets.iter().enumerate() {
            if !valid_name(&s.name) {
                return Err(err(
                    format!("secrets[{i}].name"),
                    "lower-case letters, digits and `_`".into(),
                ));
            }
            if !secrets.insert(&s.name) {
                return Err(err(
                    format!("secrets[{i}].name"),
                    format!("`{}` is declared twice", s.name),
                ));
            }
        }
        check_templates(&self.templates, &self.capabilities).map_err(|(f, m)| err(f, m))?;
        super::outbound::check_manifest(&self.allowed_outbound_hosts, &self.capabilities)
            .map_err(|(f, m)| err(f, m))?;
        let mut settings = BTreeSet::new();
        for (i, s) in self.settings.iter().enumerate() {
            if !valid_setting_key(&s.key) {
                return Err(err(
                    format!("settings[{i}].key"),
                    "lower-case letters, digits, `_` and `.`, starting with a letter".into(),
                ));
            }
            if !settings.insert(&s.key) {
                return Err(err(
                    format!("settings[{i}].key"),
                    format!("`{}` is declared twice", s.key),
                ));
            }
            if s.kind == "secret" {
                return Err(err(
                    format!("settings[{i}].type"),
                    "a secret is not a setting: declare it under `[[secrets]]` (stored encrypted, needs the `secrets` capability)".into(),
                ));
            }
            if !SETTING_TYPES.contains(&s.kind.as_str()) {
                return Err(err(
                    format!("settings[{i}].type"),
                    "expected string, number or boolean".into(),
                ));
            }
            let fits = match (&s.default, s.kind.as_str()) {
                (None, _) => true,
                (Some(toml::Value::String(_)), "string") => true,
                (Some(v), "number") => v.is_integer() || v.is_float(),
                (Some(toml::Value::Boolean(_)), "boolean") => true,
                _ => false,
            };
            if !fits {
                return Err(err(
                    format!("settings[{i}].default"),
                    format!("does not fit the type `{}`", s.kind),
                ));
            }
        }
        Ok(())
    }
}

/// A route with `signed_by`: a hook with no user, so no permission; POST
/// only; signed with a secret the module declares.
fn check_signed_route(
    route: &RouteDecl,
    secret: &str,
    secrets: &[SecretDecl],
) -> Result<(), (String, String)> {
    if route.method != "POST" {
        return Err((
            "method".into(),
            "a signed route (`signed_by`) takes POST only".into(),
        ));
    }
    if route.permission.is_some() {
        return Err((
            "permission".into(),
            "a signed route (`signed_by`) has no user to hold a permission: the signature is its check; remove `permission`".into(),
        ));
    }
    if !secrets.iter().any(|s| s.name == secret) {
        return Err((
            "signed_by".into(),
            format!("`{secret}` is not declared under `[[secrets]]`: declare the secret that signs this route (with `capabilities = [\"secrets\"]`)"),
        ));
    }
    Ok(())
}

/// `[[templates]]`: declared only with the `notify` capability, each with a
/// unique name and parts that compile.
fn check_templates(
    templates: &[crate::mail::templates::Template],
    capabilities: &[String],
) -> Result<(), (String, String)> {
    use crate::mail::templates::MAX_TEMPLATES;
    if templates.is_empty() {
        return Ok(());
    }
    if !capabilities
        .iter()
        .any(|c| c == Capability::Notify.as_str())
    {
        return Err((
            "templates".into(),
            "e-mail templates need the capability: add `capabilities = [\"notify\"]`".into(),
        ));
    }
    if templates.len() > MAX_TEMPLATES {
        return Err((
            "templates".into(),
            format!("at most {MAX_TEMPLATES} templates"),
        ));
    }
    let mut names = BTreeSet::new();
    for (i, t) in templates.iter().enumerate() {
        if !valid_name(&t.name) {
            return Err((
                format!("templates[{i}].name"),
                "lower-case letters, digits and `_`".into(),
            ));
        }
        if !names.insert(&t.name) {
            return Err((
                format!("templates[{i}].name"),
                format!("`{}` is declared twice", t.name),
            ));
        }
        t.check()
            .map_err(|(field, message)| (format!("templates[{i}].{field}"), message))?;
    }
    Ok(())
}

fn valid_name(s: &str) -> bool {
    (1..=48).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn valid_setting_key(s: &str) -> bool {
    (1..=48).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
        && !s.ends_with('.')
        && !s.contains("..")
}

fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("must start with `/`".into());
    }
    if path.contains("..") || path.contains("//") || path.contains(char::is_whitespace) {
        return Err("must not contain `..`, `//` or spaces".into());
    }
    for seg in path.split('/').skip(1) {
        if let Some(inner) = seg.strip_prefix('{') {
            if !inner.strip_suffix('}').is_some_and(valid_name) {
                return Err(format!("bad parameter segment `{seg}`"));
            }
        }
    }
    Ok(())
}

/// The dotted key of the table/entry that contains byte offset `at`.
fn key_at(text: &str, at: usize) -> String {
    let before = &text[..at.min(text.len())];
    let mut table = String::new();
    let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for line in before.lines() {
        let l = line.trim();
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.strip_suffix("]]")) {
            let n = counts.entry(name.to_string()).or_insert(0);
            table = format!("{name}[{}]", *n);
            *n += 1;
        } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            table = name.to_string();
        }
    }
    let line = before.rsplit('\n').next().unwrap_or_default();
    let line_start = at - line.len();
    let full_line = text[line_start..].lines().next().unwrap_or_default();
    let key = full_line.split('=').next().unwrap_or_default().trim();
    match (table.is_empty(), key.is_empty() || key.starts_with('[')) {
        (true, _) => key.to_string(),
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hello_manifest_is_valid() {
        let (text, _) = kontor_runtime::bundled::HELLO;
        let m = Manifest::parse("hello/module.toml", text).unwrap();
        assert_eq!(m.id, "hello");
        assert_eq!(m.entitlement_key(), "hello");
        assert!(m.api.matches(&Version::new(0, 1, 0)));
    }

    #[test]
    fn errors_name_file_key_and_problem() {
        let base = "id = \"demo\"\nname = \"Demo\"\nversion = \"1.0.0\"\npublisher = \"me\"\napi = \"^0.1\"\n";
        let cases = [
            ("id = \"Demo!\"\nname = \"Demo\"\nversion = \"1.0.0\"\npublisher = \"me\"\napi = \"^0.1\"\n", "id"),
            ("id = \"users\"\nname = \"Demo\"\nversion = \"1.0.0\"\npublisher = \"me\"\napi = \"^0.1\"\n", "id"),
            (&format!("{base}colour = \"red\"\n"), "colour"),
            (&format!("{base}[[routes]]\nmethod = \"GET\"\npath = \"nope\"\n"), "routes[0].path"),
            (&format!("{base}[[routes]]\nmethod = \"GET\"\npath = \"/a\"\npermission = \"demo.view\"\n"), "routes[0].permission"),
            (&format!("{base}[[jobs]]\nname = \"j\"\nschedule = \"every minute\"\n"), "jobs[0].schedule"),
            (&format!("{base}[[filters]]\nhook = \"customer.explode\"\n"), "filters[0].hook"),
            (&format!("{base}[[dependencies]]\nid = \"demo\"\nversion = \"^1\"\n"), "dependencies[0].id"),
            (&format!("{base}capabilities = [\"crm\", \"root\"]\n"), "capabilities[1]"),
            (&format!("{base}capabilities = [\"crm\", \"crm\"]\n"), "capabilities[1]"),
            (&format!("{base}[[secrets]]\nname = \"token\"\n"), "secrets"),
            (&format!("{base}capabilities = [\"secrets\"]\n[[secrets]]\nname = \"Bad Name\"\n"), "secrets[0].name"),
            (&format!("{base}[[settings]]\nkey = \"password\"\ntype = \"secret\"\n"), "settings[0].type"),
            (&format!("{base}[[settings]]\nkey = \"a\"\ntype = \"string\"\n[[settings]]\nkey = \"a\"\ntype = \"number\"\n"), "settings[1].key"),
        ];
        for (text, key) in cases {
            let e = Manifest::parse("demo/module.toml", text).unwrap_err();
            assert_eq!(e.file, "demo/module.toml");
            assert!(e.key.contains(key), "expected key {key}, got {e}");
            assert!(e.to_string().starts_with("demo/module.toml: "), "{e}");
        }
        let e = Manifest::parse("m.toml", "id = \"demo\"\nname = \"Demo\"\nversion = \"one\"\npublisher = \"me\"\napi = \"^0.1\"\n").unwrap_err();
        assert_eq!(e.key, "version", "{e}");
        let e = Manifest::parse(
            "demo/module.toml",
            &format!("{base}capabilities = [\"root\"]\n"),
        )
        .unwrap_err();
        assert!(
            e.message.contains("`root`") && e.message.contains("secrets, crm, http, notify"),
            "{e}"
        );
    }

    #[test]
    fn signed_routes_name_a_declared_secret_take_post_only_and_no_permission() {
        let base = "id = \"demo\"\nname = \"Demo\"\nversion = \"1.0.0\"\npublisher = \"me\"\napi = \"^0.1\"\ncapabilities = [\"secrets\"]\n[[secrets]]\nname = \"gateway\"\n";
        let route = |extra: &str| {
            format!("{base}[[routes]]\nmethod = \"POST\"\npath = \"/inbound\"\nsigned_by = \"gateway\"\n{extra}")
        };
        let m = Manifest::parse("demo/module.toml", &route("")).unwrap();
        assert_eq!(m.routes[0].signed_by.as_deref(), Some("gateway"));
        let stored = toml::to_string(&m).unwrap();
        assert_eq!(Manifest::parse("stored", &stored).unwrap(), m);

        let cases = [
            (
                route("").replace("\"POST\"", "\"PUT\""),
                "routes[0].method",
                "POST only",
            ),
            (
                route("permission = \"customers.read\"\n"),
                "routes[0].permission",
                "no user",
            ),
            (
                route("").replace("signed_by = \"gateway\"", "signed_by = \"mail\""),
                "routes[0].signed_by",
                "`mail` is not declared under `[[secrets]]`",
            ),
        ];
        for (text, key, message) in cases {
            let e = Manifest::parse("demo/module.toml", &text).unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(e.message.contains(message), "{e}");
        }
        let e = Manifest::parse(
            "demo/module.toml",
            &base.replace("id = \"demo\"", "id = \"hooks\""),
        )
        .unwrap_err();
        assert_eq!(e.key, "id", "the hooks prefix is the core's: {e}");
    }

    #[test]
    fn capabilities_secrets_and_settings_are_declared_and_survive_storage() {
        let text = kontor_runtime::test_guest_manifest("caps").unwrap();
        let m = Manifest::parse("caps/module.toml", &text).unwrap();
        assert_eq!(m.capabilities, ["secrets", "crm"]);
        assert_eq!(m.secrets[0].name, "api_token");
        assert_eq!(m.settings.len(), 3);
        // The registry stores the manifest as TOML and parses it back.
        let stored = toml::to_string(&m).unwrap();
        assert_eq!(Manifest::parse("stored", &stored).unwrap(), m);
    }
}
