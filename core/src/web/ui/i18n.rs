//! Languages of the UI and their texts.
//!
//! Texts live in `core/locales/{lang}.toml`, one key per text (`"nav.customers"
//! = "Kunden"`), embedded into the binary. Templates look them up with
//! `{{ t(key="nav.customers") }}`; `{name}` placeholders in a text are filled
//! from the other arguments: `t(key="dashboard.greeting", name=user.name)`.

use std::collections::HashMap;

use rust_embed::RustEmbed;
use serde::Serialize;

use crate::error::{Error, Result};

#[derive(RustEmbed)]
#[folder = "locales/"]
#[include = "*.toml"]
struct Locales;

/// A language the UI speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Lang {
    /// German, the default.
    De,
    /// English.
    En,
}

impl Lang {
    /// Every language, the default first.
    pub const ALL: [Lang; 2] = [Lang::De, Lang::En];

    /// The ISO 639-1 code, as in `<html lang>` and the user's `locale`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::De => "de",
            Lang::En => "en",
        }
    }

    /// The language of a tag such as `de`, `de-CH` or `en_GB`.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag
            .trim()
            .split(['-', '_'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        Lang::ALL.into_iter().find(|l| l.code() == primary)
    }

    /// The language a request gets: the user's preference if set, else the
    /// best match of `Accept-Language`, else German.
    pub fn negotiate(preference: Option<&str>, accept_language: Option<&str>) -> Lang {
        preference
            .and_then(Lang::from_tag)
            .or_else(|| accept_language.and_then(from_accept_language))
            .unwrap_or(Lang::De)
    }
}

/// The first language of `Accept-Language` (by quality, then order) the UI speaks.
fn from_accept_language(header: &str) -> Option<Lang> {
    let mut ranges: Vec<(f32, usize, &str)> = header
        .split(',')
        .enumerate()
        .filter_map(|(i, part)| {
            let mut pieces = part.split(';');
            let tag = pieces.next()?.trim();
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
            (q > 0.0 && !tag.is_empty()).then_some((q, i, tag))
        })
        .collect();
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    ranges
        .into_iter()
        .find_map(|(_, _, tag)| Lang::from_tag(tag))
}

/// The texts of one language.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    texts: HashMap<String, String>,
}

impl Catalog {
    /// Load the embedded catalogue of `lang`.
    pub fn load(lang: Lang) -> Result<Catalog> {
        let name = format!("{}.toml", lang.code());
        let file = Locales::get(&name)
            .ok_or_else(|| Error::internal(format!("locale file {name} is missing")))?;
        let text = std::str::from_utf8(&file.data)
            .map_err(|e| Error::internal(format!("locale file {name}: {e}")))?;
        Catalog::parse(text).map_err(|e| Error::internal(format!("locale file {name}: {e}")))
    }

    /// Parse a catalogue. Keys are flat (`"nav.customers" = ".."`); tables
    /// are accepted too and flattened with dots.
    pub fn parse(text: &str) -> std::result::Result<Catalog, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut texts = HashMap::new();
        flatten("", &table, &mut texts)?;
        Ok(Catalog { texts })
    }

    /// The text of `key`, if the catalogue has it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.texts.get(key).map(String::as_str)
    }

    /// The text of `key` with `{name}` placeholders filled from `args`; the
    /// key itself when the catalogue lacks it, so a gap shows instead of
    /// breaking the page.
    pub fn text(&self, key: &str, args: &[(&str, &str)]) -> String {
        let Some(template) = self.get(key) else {
            tracing::warn!(key, "missing UI text");
            return key.to_string();
        };
        fill(template, args)
    }

    /// Every key, for the completeness checks.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.texts.keys().map(String::as_str)
    }
}

fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut HashMap<String, String>,
) -> std::result::Result<(), String> {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::String(s) => {
                out.insert(key, s.clone());
            }
            toml::Value::Table(t) => flatten(&key, t, out)?,
            _ => return Err(format!("`{key}` must be a string")),
        }
    }
    Ok(())
}

/// Replace each `{name}` in `template` with its value from `args`; unknown
/// placeholders stay as they are.
fn fill(template: &str, args: &[(&str, &str)]) -> String {
    if args.is_empty() || !template.contains('{') {
        return template.to_string();
    }
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                match args.iter().find(|(n, _)| *n == name) {
                    Some((_, value)) => out.push_str(value),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The tera function `t(key=.., ..)` of one language.
pub(crate) struct Translate {
    catalog: std::sync::Arc<Catalog>,
}

impl Translate {
    pub(crate) fn new(catalog: std::sync::Arc<Catalog>) -> Self {
        Translate { catalog }
    }
}

impl tera::Function for Translate {
    fn call(&self, args: &HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
        let key = args
            .get("key")
            .and_then(tera::Value::as_str)
            .ok_or_else(|| tera::Error::msg("t() needs a string argument `key`"))?;
        let values: Vec<(&str, String)> = args
            .iter()
            .filter(|(name, _)| name.as_str() != "key")
            .map(|(name, v)| {
                let text = match v {
                    tera::Value::String(s) => s.clone(),
                    tera::Value::Null => String::new(),
                    other => other.to_string(),
                };
                (name.as_str(), text)
            })
            .collect();
        let borrowed: Vec<(&str, &str)> = values.iter().map(|(n, v)| (*n, v.as_str())).collect();
        Ok(tera::Value::String(self.catalog.text(key, &borrowed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preference_beats_header_and_german_is_the_default() {
        assert_eq!(Lang::negotiate(Some("en"), Some("de-CH")), Lang::En);
        assert_eq!(Lang::negotiate(None, Some("en-GB,en;q=0.9")), Lang::En);
        assert_eq!(
            Lang::negotiate(None, Some("fr-FR, en;q=0.5, de;q=0.8")),
            Lang::De
        );
        assert_eq!(Lang::negotiate(None, Some("fr, it")), Lang::De);
        assert_eq!(Lang::negotiate(None, Some("en;q=0, de")), Lang::De);
        assert_eq!(Lang::negotiate(Some("xx"), None), Lang::De);
        assert_eq!(Lang::negotiate(None, None), Lang::De);
    }

    #[test]
    fn placeholders_are_filled_and_unknown_ones_kept() {
        assert_eq!(fill("Hallo {name}!", &[("name", "Ada")]), "Hallo Ada!");
        assert_eq!(fill("{a} {b}", &[("a", "1")]), "1 {b}");
        assert_eq!(fill("open {", &[("a", "1")]), "open {");
    }

    #[test]
    fn catalogues_of_all_languages_have_the_same_keys() {
        let de = Catalog::load(Lang::De).unwrap();
        let en = Catalog::load(Lang::En).unwrap();
        let mut de_keys: Vec<&str> = de.keys().collect();
        let mut en_keys: Vec<&str> = en.keys().collect();
        de_keys.sort_unstable();
        en_keys.sort_unstable();
        let only_de: Vec<_> = de_keys.iter().filter(|k| en.get(k).is_none()).collect();
        let only_en: Vec<_> = en_keys.iter().filter(|k| de.get(k).is_none()).collect();
        assert!(only_de.is_empty(), "only in de.toml: {only_de:?}");
        assert!(only_en.is_empty(), "only in en.toml: {only_en:?}");
    }
}
