//! Does a built component fit the `kontor:module` contract? Checked on the
//! component's own WIT world (decoded from its type information), so a
//! missing export or an SDK of another contract version is named here with
//! its fix, not reported later as a wasmtime linker error.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use kontor_runtime::call::Handlers;
use kontor_runtime::host::NoCapabilities;
use kontor_runtime::{Call, CompiledModule, Runtime, RuntimeConfig};
use semver::VersionReq;
use wit_parser::decoding::{decode, DecodedWasm};
use wit_parser::{Function, Resolve, WorldItem, WorldKey};

use crate::wit::Contract;

/// How a module exports the contract's functions with the SDK.
const EXPORT_FIX: &str =
    "implement `kontor_sdk::Module` for a type in src/lib.rs and export it with `kontor_sdk::module!(YourType);`";

/// Check that `wasm` exports every function of the contract's world with
/// the contract's parameters, and imports the contract's interfaces at the
/// contract's version. Errors name the module (`id`), the item and the fix.
pub fn check(id: &str, wasm: &[u8], contract: &Contract) -> anyhow::Result<()> {
    let decoded =
        decode(wasm).with_context(|| format!("module {id}: reading the component's types"))?;
    let DecodedWasm::Component(resolve, world) = decoded else {
        bail!("module {id}: the .wasm is a WIT package, not a component");
    };
    let world = &resolve.worlds[world];
    let expected = &contract.resolve.worlds[contract.world];
    let version = &contract.version;

    for (key, item) in &world.imports {
        let WorldKey::Interface(iface) = key else {
            continue;
        };
        let iface = &resolve.interfaces[*iface];
        let Some(package) = iface.package.map(|p| &resolve.packages[p].name) else {
            continue;
        };
        if package.namespace != "kontor" || package.name != "module" {
            continue;
        }
        let name = iface.name.as_deref().unwrap_or("?");
        if package.version.as_ref() != Some(version) {
            let found = package
                .version
                .as_ref()
                .map_or("no version".to_string(), |v| v.to_string());
            bail!(
                "module {id}: imports kontor:module/{name}@{found}, but this kontor-module checks against kontor:module {version}; depend on the kontor-sdk for {version} (`kontor-sdk = \"{}.{}\"`) and rebuild",
                version.major,
                version.minor
            );
        }
        let known = expected
            .imports
            .keys()
            .any(|k| contract.resolve.name_world_key(k) == resolve.name_world_key(key));
        if !known || !matches!(item, WorldItem::Interface { .. }) {
            bail!(
                "module {id}: imports kontor:module/{name}, which kontor:module {version} does not define; use only the kontor-sdk API"
            );
        }
    }

    let names: Vec<String> = expected
        .exports
        .keys()
        .map(|k| contract.resolve.name_world_key(k))
        .collect();
    for (key, item) in &expected.exports {
        let WorldItem::Function(want) = item else {
            continue;
        };
        let name = contract.resolve.name_world_key(key);
        let found = world.exports.iter().find_map(|(k, item)| match item {
            WorldItem::Function(f) if resolve.name_world_key(k) == name => Some(f),
            _ => None,
        });
        let Some(found) = found else {
            bail!(
                "module {id}: the component does not export `{name}` (kontor:module {version} needs {}); {EXPORT_FIX}",
                names.join(", ")
            );
        };
        if signature(&contract.resolve, want) != signature(&resolve, found) {
            bail!(
                "module {id}: the component exports `{name}` as `{}`, but kontor:module {version} defines `{}`; {EXPORT_FIX} from the kontor-sdk for {version}",
                signature(&resolve, found),
                signature(&contract.resolve, want)
            );
        }
    }
    Ok(())
}

/// Load `wasm` as the server does (the same runtime, bound by the
/// manifest's `api`) and ask it what it handles. Every capability refuses:
/// `describe` only lists what the module registered.
pub fn describe(id: &str, wasm: &[u8], api: &VersionReq) -> anyhow::Result<Handlers> {
    let runtime = Runtime::new(RuntimeConfig {
        max_instances: 4,
        ..RuntimeConfig::default()
    })
    .context("starting the module runtime")?;
    let module =
        CompiledModule::load(&runtime, wasm, api).map_err(|e| anyhow!("module {id}: {e}"))?;
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .context("starting an async runtime")?;
    let call = Call::new(&module, Arc::new(NoCapabilities), Duration::from_secs(10));
    tokio.block_on(call.describe()).map_err(|e| {
        anyhow!(
            "module {id}: asking the component what it handles (`describe`) failed: {e}; `describe` must only list handlers (with the SDK, keep `Module::routes` and the others to building their lists)"
        )
    })
}

/// `(name: type, ...) -> type`, written the same way for both worlds so two
/// resolves can be compared.
fn signature(resolve: &Resolve, f: &Function) -> String {
    let params: Vec<String> = f
        .params
        .iter()
        .map(|p| format!("{}: {}", p.name, type_name(resolve, &p.ty)))
        .collect();
    let result = f
        .result
        .as_ref()
        .map(|t| format!(" -> {}", type_name(resolve, t)))
        .unwrap_or_default();
    format!("({}){result}", params.join(", "))
}

/// A type's name as WIT spells it (named types by name, others by shape).
fn type_name(resolve: &Resolve, ty: &wit_parser::Type) -> String {
    match ty {
        wit_parser::Type::Id(id) => {
            let def = &resolve.types[*id];
            match &def.name {
                Some(name) => name.clone(),
                None => anonymous(resolve, &def.kind),
            }
        }
        other => format!("{other:?}").to_lowercase(),
    }
}

/// An unnamed type (`result<..>`, `option<..>`, `list<..>`) by its shape.
fn anonymous(resolve: &Resolve, kind: &wit_parser::TypeDefKind) -> String {
    use wit_parser::TypeDefKind;
    match kind {
        TypeDefKind::Result(r) => format!(
            "result<{}, {}>",
            r.ok.as_ref().map_or("_".into(), |t| type_name(resolve, t)),
            r.err.as_ref().map_or("_".into(), |t| type_name(resolve, t))
        ),
        TypeDefKind::Option(t) => format!("option<{}>", type_name(resolve, t)),
        TypeDefKind::List(t) => format!("list<{}>", type_name(resolve, t)),
        TypeDefKind::Type(t) => type_name(resolve, t),
        other => other.as_str().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_hello_component_fits_the_contract() {
        let contract = Contract::load().unwrap();
        check("hello", kontor_runtime::bundled::HELLO.1, &contract).unwrap();
    }

    #[test]
    fn a_component_importing_wasi_http_fits_the_contract() {
        // The `fetch` test guest sends requests with `kontor_sdk::http`.
        let contract = Contract::load().unwrap();
        let wasm = kontor_runtime::test_guest("fetch").unwrap();
        let decoded = decode(&wasm).unwrap();
        let DecodedWasm::Component(resolve, world) = decoded else {
            panic!("fetch is a component");
        };
        let imports_http = resolve.worlds[world].imports.keys().any(|k| {
            resolve
                .name_world_key(k)
                .starts_with("wasi:http/outgoing-handler@")
        });
        assert!(imports_http, "fetch imports wasi:http");
        check("fetch", &wasm, &contract).unwrap();
    }

    #[test]
    fn a_component_built_against_another_contract_version_is_refused_naming_the_sdk_to_use() {
        let contract = Contract::load().unwrap();
        // hello, as if built with an SDK for kontor:module 0.2.0: the import
        // names have the same length, so the binary stays well-formed.
        let mut wasm = kontor_runtime::bundled::HELLO.1.to_vec();
        let (from, to) = (b"module/log@0.1.0", b"module/log@0.2.0");
        let at = wasm
            .windows(from.len())
            .position(|w| w == from)
            .expect("hello imports kontor:module/log@0.1.0");
        wasm[at..at + to.len()].copy_from_slice(to);
        let e = check("hello", &wasm, &contract).unwrap_err().to_string();
        assert!(e.starts_with("module hello:"), "{e}");
        assert!(e.contains("imports kontor:module/log@0.2.0"), "{e}");
        assert!(e.contains("kontor-sdk = \"0.1\""), "{e}");
    }

    #[test]
    fn signatures_are_spelled_as_in_the_wit() {
        let contract = Contract::load().unwrap();
        let world = &contract.resolve.worlds[contract.world];
        let spelled: Vec<String> = world
            .exports
            .iter()
            .filter_map(|(k, item)| match item {
                WorldItem::Function(f) => Some(format!(
                    "{}{}",
                    contract.resolve.name_world_key(k),
                    signature(&contract.resolve, f)
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            spelled,
            [
                "handle-http(request: http-request) -> http-response",
                "render-page(request: http-request) -> result<page, string>",
                "on-event(event: event) -> result<_, string>",
                "filter(hook: string, payload: string) -> filter-result",
                "run-job(name: string) -> result<_, string>",
                "describe() -> handlers",
            ]
        );
    }

    #[test]
    fn a_component_without_the_exports_is_refused_naming_the_export_and_the_fix() {
        let contract = Contract::load().unwrap();
        // `(component)`: the preamble and nothing else.
        let empty = b"\0asm\x0d\x00\x01\x00";
        let e = check("demo", empty, &contract).unwrap_err().to_string();
        assert!(e.starts_with("module demo:"), "{e}");
        assert!(e.contains("does not export `handle-http`"), "{e}");
        assert!(e.contains("kontor_sdk::module!"), "{e}");
    }
}
