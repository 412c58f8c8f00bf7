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
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::compiled::{Bindings, CompiledModule};
use crate::error::CallError;
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

/// Per-call state inside the store.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    pub(crate) caps: Arc<dyn Capabilities>,
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
        // sockets, no inherited stdio.
        let wasi = WasiCtx::builder().build();
        let state = CallState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                max: module.runtime.config.memory_limit,
                hit: false,
            },
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

/// The first line of a trap, with its wasm backtrace left out: enough to
/// say what went wrong without flooding logs.
fn trap_message(e: &wasmtime::Error) -> String {
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        return trap.to_string();
    }
    format!("{e}")
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}
