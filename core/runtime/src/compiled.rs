//! A module version compiled once and pre-linked (`InstancePre`), ready for
//! a fresh instance per call.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use semver::{Version, VersionReq};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Store;

use crate::api;
use crate::call::CallState;
use crate::engine::Runtime;
use crate::error::LoadError;

/// The bindings of the contract version a module was built against.
pub(crate) enum Bindings {
    V0_1(api::v0_1::Module),
}

enum Pre {
    V0_1(api::v0_1::ModulePre<CallState>),
}

/// A loaded module version.
pub struct CompiledModule {
    pub(crate) runtime: Runtime,
    pre: Pre,
    /// The contract version it is bound to.
    pub api: Version,
    /// Whether the compiled code came from the disk cache.
    pub from_cache: bool,
    /// SHA-256 of the component bytes.
    pub digest: String,
}

impl std::fmt::Debug for CompiledModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledModule")
            .field("api", &self.api)
            .field("from_cache", &self.from_cache)
            .field("digest", &self.digest)
            .finish()
    }
}

/// The `kontor:module` versions a component imports (e.g. from
/// `kontor:module/records@0.1.0`).
pub fn imported_api_versions(runtime: &Runtime, component: &Component) -> Vec<Version> {
    let ty = component.component_type();
    let mut out: Vec<Version> = ty
        .imports(&runtime.engine)
        .filter_map(|(name, _)| name.strip_prefix("kontor:module/"))
        .filter_map(|rest| rest.split_once('@'))
        .filter_map(|(_, v)| Version::parse(v).ok())
        .collect();
    out.sort();
    out.dedup();
    out
}

impl CompiledModule {
    /// Compile (or load from the cache) and pre-link a component that
    /// declares the contract requirement `api_req`. The contract version is
    /// settled before anything is instantiated: a module asking for a
    /// version this host does not serve is refused with both named.
    pub fn load(
        runtime: &Runtime,
        bytes: &[u8],
        api_req: &VersionReq,
    ) -> Result<CompiledModule, LoadError> {
        let mismatch = |needed: String| LoadError::ApiMismatch {
            needed,
            offered: api::offered(),
        };
        let api_version = api::pick(api_req).ok_or_else(|| mismatch(api_req.to_string()))?;
        let digest = hex::encode(Sha256::digest(bytes));
        let (component, from_cache) = compile_cached(runtime, bytes, &digest)?;
        for imported in imported_api_versions(runtime, &component) {
            if imported != api_version {
                return Err(mismatch(imported.to_string()));
            }
        }
        let pre = match (api_version.major, api_version.minor) {
            (0, 1) => {
                let instance_pre = runtime
                    .linker_v0_1
                    .instantiate_pre(&component)
                    .map_err(|e| unknown_import(&e, &api_version))?;
                Pre::V0_1(
                    api::v0_1::ModulePre::new(instance_pre)
                        .map_err(|e| missing_export(&e, &api_version))?,
                )
            }
            _ => return Err(mismatch(api_version.to_string())),
        };
        Ok(CompiledModule {
            runtime: runtime.clone(),
            pre,
            api: api_version,
            from_cache,
            digest,
        })
    }

    pub(crate) async fn instantiate(
        &self,
        store: &mut Store<CallState>,
    ) -> wasmtime::Result<Bindings> {
        Ok(match &self.pre {
            Pre::V0_1(pre) => Bindings::V0_1(pre.instantiate_async(store).await?),
        })
    }
}

/// The first name in backquotes in `text`.
fn quoted(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once('`')?;
    rest.split_once('`').map(|(name, _)| name)
}

/// A linker refusal, rewritten to name the import and what to do: wasmtime
/// says "component imports instance `x`, but a matching implementation was
/// not found in the linker", which tells a module's developer neither why
/// nor what next.
fn unknown_import(e: &wasmtime::Error, api: &Version) -> LoadError {
    let outer = e.to_string();
    match quoted(&outer) {
        Some(import) if outer.starts_with("component imports") => LoadError::UnknownImport {
            import: import.to_string(),
            cause: e.root_cause().to_string(),
            fix: format!(
                "build the module with the kontor-sdk for kontor:module {}.{} (the version its manifest's `api` selects) and use only the SDK's API; `kontor-module build` checks this before you pack",
                api.major, api.minor
            ),
        },
        _ => LoadError::Invalid(format!("{e:#}")),
    }
}

/// A missing export, named with the fix (the bindings say only "no export
/// `x` found").
fn missing_export(e: &wasmtime::Error, api: &Version) -> LoadError {
    let message = e.to_string();
    match quoted(&message) {
        Some(export) if message.starts_with("no export") => LoadError::MissingExport {
            export: export.to_string(),
            api: api.to_string(),
            fix: format!(
                "build the module with the kontor-sdk for kontor:module {}.{} and export it with `kontor_sdk::module!(YourModule);`",
                api.major, api.minor
            ),
        },
        _ => LoadError::Invalid(format!("{e:#}")),
    }
}

fn cache_path(runtime: &Runtime, digest: &str) -> Option<PathBuf> {
    let dir = runtime.config.cache_dir.as_ref()?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    runtime
        .engine
        .precompile_compatibility_hash()
        .hash(&mut hasher);
    Some(dir.join(format!("{digest}-{:016x}.cwasm", hasher.finish())))
}

/// Compile, or load what an earlier start compiled. The cache key is the
/// component's digest plus the engine's compatibility hash, so a new
/// wasmtime or other settings never load stale code.
fn compile_cached(
    runtime: &Runtime,
    bytes: &[u8],
    digest: &str,
) -> Result<(Component, bool), LoadError> {
    let path = cache_path(runtime, digest);
    if let Some(path) = &path {
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` of this
            // host into its own cache directory, under a name that binds the
            // content digest and the engine configuration.
            match unsafe { Component::deserialize_file(&runtime.engine, path) } {
                Ok(c) => return Ok((c, true)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unusable compile cache entry");
                }
            }
        }
    }
    let component =
        Component::new(&runtime.engine, bytes).map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
    if let Some(path) = &path {
        if let Err(e) = write_cache(&component, path) {
            tracing::warn!(path = %path.display(), error = %e, "could not write compile cache");
        }
    }
    Ok((component, false))
}

fn write_cache(component: &Component, path: &std::path::Path) -> anyhow::Result<()> {
    let bytes = component.serialize()?;
    // Unique per write: threads of one process (tests) may compile the same
    // component at once, and must not write into each other's file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RuntimeConfig;

    /// `bytes` with every `from` replaced by `to` (same length, so the
    /// binary stays well-formed).
    fn patched(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        assert_eq!(from.len(), to.len());
        let mut out = bytes.to_vec();
        let mut at = 0;
        let mut found = false;
        while let Some(i) = out[at..].windows(from.len()).position(|w| w == from) {
            out[at + i..at + i + to.len()].copy_from_slice(to);
            at += i + to.len();
            found = true;
        }
        assert!(found, "{}", String::from_utf8_lossy(from));
        out
    }

    fn load(bytes: &[u8]) -> Result<CompiledModule, LoadError> {
        let rt = Runtime::new(RuntimeConfig::default()).unwrap();
        CompiledModule::load(&rt, bytes, &VersionReq::parse("^0.1").unwrap())
    }

    #[test]
    fn an_import_the_host_does_not_link_is_named_with_the_fix_not_as_a_linker_error() {
        let (_, hello) = crate::bundled::HELLO;
        let wasm = patched(hello, b"kontor:module/log@", b"kontor:module/lag@");
        let e = load(&wasm).unwrap_err();
        let message = e.to_string();
        assert!(matches!(e, LoadError::UnknownImport { .. }), "{e:?}");
        assert!(
            message.starts_with(
                "the component imports `kontor:module/lag@0.1.0`, which this host does not provide"
            ),
            "{message}"
        );
        assert!(
            message.contains("kontor-sdk for kontor:module 0.1"),
            "{message}"
        );
        assert!(!message.contains("in the linker"), "{message}");
    }

    #[test]
    fn a_missing_export_is_named_with_the_contract_version_and_the_fix() {
        let (_, hello) = crate::bundled::HELLO;
        let wasm = patched(hello, b"describe", b"descrybe");
        let e = load(&wasm).unwrap_err();
        let message = e.to_string();
        assert!(matches!(e, LoadError::MissingExport { .. }), "{e:?}");
        assert!(
            message.starts_with(
                "the component does not export `describe`, which kontor:module 0.1.0 requires"
            ),
            "{message}"
        );
        assert!(message.contains("kontor_sdk::module!"), "{message}");
    }
}
