//! Dependency resolution with semver.
//!
//! Pure functions over what is installed: the registry calls them inside
//! its transactions before it changes anything, so a refused change leaves
//! every module as it was. Each refusal names the modules and versions
//! involved and has its own error code.

use std::collections::{BTreeMap, BTreeSet};

use semver::Version;

use super::manifest::Manifest;
use crate::error::{Code, Error};

/// An installed module as resolution sees it.
#[derive(Debug, Clone)]
pub struct Installed {
    /// Its manifest.
    pub manifest: Manifest,
    /// Whether it is enabled.
    pub enabled: bool,
}

/// Installed modules by id.
pub type Graph = BTreeMap<String, Installed>;

/// Check that the host serves the contract version `m` asks for.
pub fn check_api(m: &Manifest) -> Result<Version, Error> {
    kontor_runtime::api::pick(&m.api).ok_or_else(|| {
        Error::new(
            Code::ModuleApiMismatch,
            format!(
                "module {} {} needs API {}, this host offers {}",
                m.id,
                m.version,
                m.api,
                kontor_runtime::api::offered()
            ),
        )
    })
}

/// Check that `m` can be enabled: every required dependency is installed,
/// enabled and of a matching version, and no cycle arises.
pub fn check_enable(graph: &Graph, m: &Manifest) -> Result<(), Error> {
    check_api(m)?;
    for dep in m.dependencies.iter().filter(|d| !d.optional) {
        match graph.get(&dep.id) {
            None => {
                return Err(Error::new(
                    Code::ModuleDependencyMissing,
                    format!(
                        "module {} needs module {} {}, which is not installed",
                        m.id, dep.id, dep.version
                    ),
                ))
            }
            Some(d) if !dep.version.matches(&d.manifest.version) => {
                return Err(Error::new(
                    Code::ModuleDependencyIncompatible,
                    format!(
                        "module {} needs {} {}, but {} {} is installed",
                        m.id, dep.id, dep.version, dep.id, d.manifest.version
                    ),
                ))
            }
            Some(d) if !d.enabled => {
                return Err(Error::new(
                    Code::ModuleDependencyMissing,
                    format!(
                        "module {} needs module {}, which is disabled; enable {} first",
                        m.id, dep.id, dep.id
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    for dep in m.dependencies.iter().filter(|d| d.optional) {
        if let Some(d) = graph.get(&dep.id) {
            if !dep.version.matches(&d.manifest.version) {
                return Err(Error::new(
                    Code::ModuleDependencyIncompatible,
                    format!(
                        "module {} works with {} {} (optional), but {} {} is installed",
                        m.id, dep.id, dep.version, dep.id, d.manifest.version
                    ),
                ));
            }
        }
    }
    check_cycles(graph, m)
}

/// Refuse a graph in which `m` (as it would be installed) is part of a cycle.
pub fn check_cycles(graph: &Graph, m: &Manifest) -> Result<(), Error> {
    let mut edges: BTreeMap<&str, Vec<&str>> = graph
        .iter()
        .map(|(id, i)| {
            (
                id.as_str(),
                i.manifest
                    .dependencies
                    .iter()
                    .map(|d| d.id.as_str())
                    .collect(),
            )
        })
        .collect();
    edges.insert(
        m.id.as_str(),
        m.dependencies.iter().map(|d| d.id.as_str()).collect(),
    );
    // Depth-first search from `m` looking for a way back to it.
    let mut stack: Vec<(&str, Vec<&str>)> = vec![(m.id.as_str(), vec![m.id.as_str()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in edges.get(node).cloned().unwrap_or_default() {
            if next == m.id {
                let mut cycle = path.clone();
                cycle.push(next);
                return Err(Error::new(
                    Code::ModuleDependencyCycle,
                    format!(
                        "modules depend on each other in a cycle: {}",
                        cycle.join(" → ")
                    ),
                ));
            }
            if seen.insert(next) {
                let mut p = path.clone();
                p.push(next);
                stack.push((next, p));
            }
        }
    }
    Ok(())
}

/// Enabled modules that require `id` (not optionally).
pub fn dependents<'g>(graph: &'g Graph, id: &str) -> Vec<&'g Installed> {
    graph
        .values()
        .filter(|i| i.enabled && i.manifest.id != id)
        .filter(|i| {
            i.manifest
                .dependencies
                .iter()
                .any(|d| d.id == id && !d.optional)
        })
        .collect()
}

/// Check that `id` can be disabled or removed: no enabled module requires it.
pub fn check_disable(graph: &Graph, id: &str) -> Result<(), Error> {
    let users = dependents(graph, id);
    if users.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = users
        .iter()
        .map(|i| format!("{} {}", i.manifest.id, i.manifest.version))
        .collect();
    Err(Error::new(
        Code::ModuleHasDependents,
        format!(
            "module {id} is needed by {}; disable those first",
            names.join(", ")
        ),
    ))
}

/// Check that `id` may move to `new` version: every enabled module that
/// requires it accepts the new version (covers downgrades too).
pub fn check_version_change(graph: &Graph, new: &Manifest) -> Result<(), Error> {
    for user in dependents(graph, &new.id) {
        for dep in user.manifest.dependencies.iter().filter(|d| d.id == new.id) {
            if !dep.version.matches(&new.version) {
                return Err(Error::new(
                    Code::ModuleDependencyIncompatible,
                    format!(
                        "module {} {} needs {} {}; {} {} would break it",
                        user.manifest.id,
                        user.manifest.version,
                        new.id,
                        dep.version,
                        new.id,
                        new.version
                    ),
                ));
            }
        }
    }
    check_enable(graph, new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, version: &str, deps: &[(&str, &str, bool)]) -> Manifest {
        let mut text = format!("id = \"{id}\"\nname = \"{id}\"\nversion = \"{version}\"\npublisher = \"t\"\napi = \"^0.1\"\n");
        for (d, req, optional) in deps {
            text.push_str(&format!(
                "[[dependencies]]\nid = \"{d}\"\nversion = \"{req}\"\noptional = {optional}\n"
            ));
        }
        Manifest::parse("module.toml", &text).unwrap()
    }

    fn graph(items: &[(Manifest, bool)]) -> Graph {
        items
            .iter()
            .map(|(m, e)| {
                (
                    m.id.clone(),
                    Installed {
                        manifest: m.clone(),
                        enabled: *e,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn missing_incompatible_disabled_and_optional() {
        let billing = m("billing", "1.4.0", &[]);
        let g = graph(&[(billing.clone(), true)]);
        assert_eq!(
            check_enable(&g, &m("hosting", "1.0.0", &[("billing", "^1.2", false)]))
                .map_err(|e| e.code()),
            Ok(())
        );
        let e = check_enable(&g, &m("hosting", "1.0.0", &[("billing", "^2", false)])).unwrap_err();
        assert_eq!(e.code(), Code::ModuleDependencyIncompatible);
        assert!(
            e.to_string().contains("billing ^2") && e.to_string().contains("1.4.0"),
            "{e}"
        );
        let e = check_enable(&g, &m("hosting", "1.0.0", &[("dns", "^1", false)])).unwrap_err();
        assert_eq!(e.code(), Code::ModuleDependencyMissing);
        assert!(e.to_string().contains("dns"));
        assert!(check_enable(&g, &m("hosting", "1.0.0", &[("dns", "^1", true)])).is_ok());
        let g = graph(&[(billing, false)]);
        assert_eq!(
            check_enable(&g, &m("hosting", "1.0.0", &[("billing", "^1", false)]))
                .unwrap_err()
                .code(),
            Code::ModuleDependencyMissing
        );
    }

    #[test]
    fn cycles_are_refused_naming_the_path() {
        let g = graph(&[
            (m("aa", "1.0.0", &[("bb", "^1", false)]), true),
            (m("bb", "1.0.0", &[("cc", "^1", true)]), true),
        ]);
        let e = check_cycles(&g, &m("cc", "1.0.0", &[("aa", "^1", false)])).unwrap_err();
        assert_eq!(e.code(), Code::ModuleDependencyCycle);
        assert!(e.to_string().contains("cc → aa → bb → cc"), "{e}");
    }

    #[test]
    fn dependents_block_disable_and_breaking_version_changes() {
        let g = graph(&[
            (m("billing", "1.4.0", &[]), true),
            (m("hosting", "1.0.0", &[("billing", "^1.2", false)]), true),
        ]);
        let e = check_disable(&g, "billing").unwrap_err();
        assert_eq!(e.code(), Code::ModuleHasDependents);
        assert!(e.to_string().contains("hosting 1.0.0"));
        assert!(check_disable(&g, "hosting").is_ok());
        assert!(check_version_change(&g, &m("billing", "1.5.0", &[])).is_ok());
        let e = check_version_change(&g, &m("billing", "1.1.0", &[])).unwrap_err();
        assert_eq!(e.code(), Code::ModuleDependencyIncompatible);
    }

    #[test]
    fn host_api_mismatch_names_both_versions() {
        let mut x = m("xx", "1.0.0", &[]);
        x.api = semver::VersionReq::parse("^0.3").unwrap();
        let e = check_api(&x).unwrap_err();
        assert_eq!(e.code(), Code::ModuleApiMismatch);
        assert_eq!(
            e.to_string(),
            "module xx 1.0.0 needs API ^0.3, this host offers 0.1.0"
        );
    }
}
