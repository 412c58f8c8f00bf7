//! Calling a module: a fresh store for every call, a deadline, a memory limit.
//!
//! Nothing survives a call: not the guest's memory, not its globals, not a
//! WASI resource. A call that runs past its deadline is stopped (the guest
//! yields to the async runtime at every epoch tick, so a loop in a module
//! never blocks the host's threads); a trap or a memory overrun ends the
//! call with a [`CallError`].

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store};
use wasmtime_wasi::{HostWallClock, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::compiled::{Bindings, CompiledModule};
use crate::error::CallError;
use crate::host::http_send::OutboundHooks;
use crate::host::Capabilities;

/// Deadlines per kind of call.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// Routes and pages.
    pub http: Duration,
    /// Filters run inline in core requests: short.
    pub filter: Duration,
    /// Event deliveries.
    pub event: Duration,
    /// Scheduled jobs.
    pub job: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            http: Duration::from_secs(2),
            filter: Duration::from_millis(200),
            event: Duration::from_secs(10),
            job: Duration::from_secs(60),
        }
    }
}

/// The caller, as a module sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// User id.
    pub user_id: String,
    /// Role.
    pub role: String,
    /// Permissions held.
    pub permissions: Vec<String>,
    /// UI language.
    pub locale: String,
}

/// A request for a module route or page.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    /// Method.
    pub method: String,
    /// Path below the module prefix.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Headers (without cookies and credentials).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// The caller.
    pub principal: Option<Principal>,
}

/// A module's answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// A rendered page fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Title.
    pub title: String,
    /// HTML fragment placed in the host layout.
    pub html: String,
}

/// An event delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Stable id for deduplication.
    pub id: String,
    /// Name.
    pub name: String,
    /// JSON.
    pub payload: String,
    /// Unix ms.
    pub occurred_at: i64,
}

/// A filter's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterResult {
    /// Unchanged.
    Pass,
    /// Replaced payload (JSON).
    Modify(String),
    /// Refused, with a message for the user.
    Reject(String),
}

/// What a module has handlers for, as its `describe` export lists them:
/// compared with its manifest by `kontor-module build` and at install.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handlers {
    /// `(method, path)` of every route, paths as the manifest spells them.
    pub routes: Vec<(String, String)>,
    /// Page paths.
    pub pages: Vec<String>,
    /// Event names.
    pub events: Vec<String>,
    /// Filter hooks.
    pub filters: Vec<String>,
    /// Job names.
    pub jobs: Vec<String>,
}

/// Per-call state inside the store.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    pub(crate) caps: Arc<dyn Capabilities>,
    http: WasiHttpCtx,
    http_hooks: OutboundHooks,
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Refuses memory growth past the limit and remembers that it did, so a
/// resulting trap is reported as a memory overrun.
struct MemoryLimiter {
    max: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The guest's `wasi:clocks/wall-clock`: the time the capabilities give
/// ([`Capabilities::now_ms`]), so a module's `SystemTime::now()` is the
/// host's clock, the one records, schedules and entitlements use (and tests
/// move); the machine's clock when they give none.
struct HostClock(Arc<dyn Capabilities>);

impl HostWallClock for HostClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        match self.0.now_ms() {
            // WASI's wall clock has no time before 1970.
            Some(ms) => Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
        }
    }
}

/// One call of a module: its store and deadline.
pub struct Call<'m> {
    module: &'m CompiledModule,
    store: Store<CallState>,
    deadline: Duration,
}

impl<'m> Call<'m> {
    /// A fresh store for one call with `caps`, ending at `deadline`.
    pub fn new(
        module: &'m CompiledModule,
        caps: Arc<dyn Capabilities>,
        deadline: Duration,
    ) -> Self {
        // WASI is linked because guests built for wasm32-wasip2 import it,
        // but the context grants nothing: no environment, no files, no
        // sockets, no inherited stdio. Outbound HTTP goes through
        // `wasi:http` only, under the call's policy (`host::http_send`).
        // The wall clock is the host's (`Capabilities::now_ms`).
        let wasi = WasiCtx::builder()
            .wall_clock(HostClock(caps.clone()))
            .build();
        let state = CallState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                max: module.runtime.config.memory_limit,
                hit: false,
            },
            http: WasiHttpCtx::new(),
            http_hooks: OutboundHooks { caps: caps.clone() },
            caps,
        };
        let mut store = Store::new(&module.runtime.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        Call {
            module,
            store,
            deadline,
        }
    }

    async fn run<T, F, Fut>(mut self, f: F) -> Result<T, CallError>
    where
        F: FnOnce(Bindings, Store<CallState>) -> Fut,
        Fut: std::future::Future<Output = (wasmtime::Result<T>, Store<CallState>)>,
    {
        let deadline = self.deadline;
        let limit = self.module.runtime.config.memory_limit;
        let work = async {
            let bindings = match self.module.instantiate(&mut self.store).await {
                Ok(b) => b,
                Err(e) => {
                    let hit = self.store.data().limiter.hit;
                    return Err(if hit {
                        CallError::OutOfMemory(limit)
                    } else {
                        CallError::Instantiate(format!("{e:#}"))
                    });
                }
            };
            let (result, store) = f(bindings, self.store).await;
            result.map_err(|e| {
                if store.data().limiter.hit {
                    CallError::OutOfMemory(limit)
                } else {
                    CallError::Trap(trap_message(&e))
                }
            })
        };
        match tokio::time::timeout(deadline, work).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout(deadline.as_millis() as u64)),
        }
    }

    /// Call `handle-http`.
    pub async fn handle_http(self, request: HttpRequest) -> Result<HttpResponse, CallError> {
        let max = self.module.runtime.config.max_response_bytes;
        let response = self
            .run(|b, mut store| async move {
                let r = match b {
                    Bindings::V0_1(m) => m
                        .call_handle_http(&mut store, &crate::api::v0_1::request_in(request))
                        .await
                        .map(crate::api::v0_1::response_out),
                };
                (r, store)
            })
            .await?;
        if response.body.len() > max {
            return Err(CallError::BadResponse(format!(
                "response body of {} bytes is over the limit of {max}",
                response.body.len()
            )));
        }
        if !(100..=599).contains(&response.status) {
            return Err(CallError::BadResponse(format!(
                "invalid status {}",
                response.status
            )));
        }
        Ok(response)
    }

    /// Call `render-page`; `Ok(Err(message))` is the module refusing.
    pub async fn render_page(
        self,
        request: HttpRequest,
    ) -> Result<Result<Page, String>, CallError> {
        let max = self.module.runtime.config.max_response_bytes;
        let page = self
            .run(|b, mut store| async move {
                let r = match b {
                    Bindings::V0_1(m) => m
                        .call_render_page(&mut store, &crate::api::v0_1::request_in(request))
                        .await
                        .map(|r| r.map(crate::api::v0_1::page_out)),
                };
                (r, store)
            })
            .await?;
        if let Ok(p) = &page {
            if p.html.len() > max {
                return Err(CallError::BadResponse(format!(
                    "page of {} bytes is over the limit of {max}",
                    p.html.len()
                )));
            }
        }
        Ok(page)
    }

    /// Call `on-event`; `Ok(Err(message))` asks for a retry.
    pub async fn on_event(self, event: Event) -> Result<Result<(), String>, CallError> {
        self.run(|b, mut store| async move {
            let r = match b {
                Bindings::V0_1(m) => {
                    m.call_on_event(&mut store, &crate::api::v0_1::event_in(event))
                        .await
                }
            };
            (r, store)
        })
        .await
    }

    /// Call `filter`.
    pub async fn filter(self, hook: &str, payload: &str) -> Result<FilterResult, CallError> {
        let (hook, payload) = (hook.to_string(), payload.to_string());
        self.run(|b, mut store| async move {
            let r = match b {
                Bindings::V0_1(m) => m
                    .call_filter(&mut store, &hook, &payload)
                    .await
                    .map(crate::api::v0_1::filter_out),
            };
            (r, store)
        })
        .await
    }

    /// Call `describe`: what the module has handlers for. Call it with
    /// capabilities that refuse everything ([`crate::host::NoCapabilities`]):
    /// it only lists.
    pub async fn describe(self) -> Result<Handlers, CallError> {
        self.run(|b, mut store| async move {
            let r = match b {
                Bindings::V0_1(m) => m
                    .call_describe(&mut store)
                    .await
                    .map(crate::api::v0_1::handlers_out),
            };
            (r, store)
        })
        .await
    }

    /// Call `run-job`; `Ok(Err(message))` asks for a retry.
    pub async fn run_job(self, name: &str) -> Result<Result<(), String>, CallError> {
        let name = name.to_string();
        self.run(|b, mut store| async move {
            let r = match b {
                Bindings::V0_1(m) => m.call_run_job(&mut store, &name).await,
            };
            (r, store)
        })
        .await
    }
}

/// Most guest functions a trap message names.
const TRAP_FRAMES: usize = 12;

/// What went wrong, and where: the trap (or the first line of another
/// error), then — when the component carries function names (a debug
/// build, or a release build that keeps its name section) — the guest
/// functions it was in, innermost first, so a module's developer can find
/// the line that failed. Frames of the Rust runtime's panic and abort path
/// are left out; without names only the trap is shown.
fn trap_message(e: &wasmtime::Error) -> String {
    let what = match e.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{e}")
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    let Some(backtrace) = e.downcast_ref::<wasmtime::WasmBacktrace>() else {
        return what;
    };
    let functions = guest_functions(&backtrace.to_string());
    if functions.is_empty() {
        return what;
    }
    format!("{what}; in {}", functions.join(" <- "))
}

/// The named guest functions of a backtrace as wasmtime prints it (one
/// `N: 0xOFFSET - module!function` line per frame, names demangled),
/// without the panic and abort machinery every trap of a Rust guest
/// passes through.
fn guest_functions(backtrace: &str) -> Vec<String> {
    const MACHINERY: &[&str] = &[
        "core::panicking::",
        "core::option::expect",
        "core::result::unwrap_failed",
        "std::panicking::",
        "std::panic::",
        "std::process::abort",
        "std::sys::",
        "std::rt::",
        "std::alloc::",
        "__rust_",
        "__rustc::",
        "rust_panic",
        "panic_abort::",
        "abort",
        "__wasm_call_ctors",
    ];
    backtrace
        .lines()
        .filter_map(|line| {
            let (_, frame) = line.split_once(" - ")?;
            let name = readable(frame.split_once('!').map_or(frame, |(_, f)| f).trim());
            // A stripped module has only indices: `<wasm function 12>`.
            let named = !name.is_empty() && !name.starts_with("<wasm function");
            let ours = !MACHINERY.iter().any(|m| name.starts_with(m));
            (named && ours).then_some(name)
        })
        .take(TRAP_FRAMES)
        .collect()
}

/// A demangled name without the hashes that make symbols unique:
/// `std[d123b7a1a2ed1472]::process::abort` (v0 mangling) → `std::process::abort`,
/// `demo::f::h0123456789abcdef` (legacy mangling) → `demo::f`.
fn readable(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(open) = rest.find('[') {
        let hash = rest[open + 1..].split_once(']');
        match hash {
            Some((h, after)) if !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                out.push_str(&rest[..open]);
                rest = after;
            }
            _ => {
                out.push_str(&rest[..=open]);
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(rest);
    match out.rsplit_once("::h") {
        Some((path, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            path.to_string()
        }
        _ => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::NoCapabilities;
    use crate::{Runtime, RuntimeConfig};

    fn load(rt: &Runtime, bytes: &[u8]) -> CompiledModule {
        CompiledModule::load(rt, bytes, &semver::VersionReq::parse("^0.1").unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_trap_in_a_guest_with_names_names_its_functions_without_the_panic_machinery() {
        let rt = Runtime::new(RuntimeConfig::default()).unwrap();
        let faults = load(&rt, &crate::test_guest("faults").unwrap());
        let request = HttpRequest {
            method: "GET".into(),
            path: "/trap".into(),
            ..Default::default()
        };
        let err = Call::new(&faults, Arc::new(NoCapabilities), Duration::from_secs(2))
            .handle_http(request)
            .await
            .unwrap_err();
        let CallError::Trap(message) = &err else {
            panic!("{err:?}");
        };
        assert!(
            message.starts_with("wasm trap: wasm `unreachable`"),
            "{message}"
        );
        // The guest's function that panicked (kept out of line in the
        // guest, as a debug build keeps every function), then the export.
        assert!(
            message.contains("; in kontor_test_faults::panic_on_purpose <- "),
            "{message}"
        );
        assert!(!message.contains("panicking"), "{message}");
        assert!(!message.contains("<wasm function"), "{message}");
    }

    #[test]
    fn backtrace_lines_become_guest_function_names() {
        let printed = "error while executing at wasm backtrace:\n    0:   0x1a2b - <unknown>!abort\n    1:   0x1a2c - <unknown>!std::panicking::rust_panic_with_hook::h0123456789abcdef\n    2:   0x1a2d - <unknown>!demo::handlers::ticket::h0123456789abcdef\n    3:   0x1a2e - <unknown>!<wasm function 7>\n    4:   0x1a2f - <unknown>!demo::route";
        assert_eq!(
            guest_functions(printed),
            ["demo::handlers::ticket", "demo::route"]
        );
    }

    #[tokio::test]
    async fn describe_lists_what_the_module_registered() {
        let rt = Runtime::new(RuntimeConfig::default()).unwrap();
        let (_, bytes) = crate::bundled::HELLO;
        let hello = load(&rt, bytes);
        let handlers = Call::new(&hello, Arc::new(NoCapabilities), Duration::from_secs(2))
            .describe()
            .await
            .unwrap();
        assert_eq!(
            handlers.routes,
            [
                ("GET".to_string(), "/greeting".to_string()),
                ("POST".into(), "/greeting".into()),
                ("GET".into(), "/seen".into()),
            ]
        );
        assert_eq!(handlers.pages, ["/"]);
        assert_eq!(handlers.events, ["customer.created"]);
        assert_eq!(
            handlers.filters,
            ["customer.before_save", "dashboard.widgets", "customer.tabs"]
        );
        assert_eq!(handlers.jobs, ["tick"]);
    }
}
