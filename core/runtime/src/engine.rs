//! One wasmtime engine for every module: the pooling allocator, an epoch
//! ticker for deadlines, and the on-disk cache of compiled components.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances: the granularity of deadlines, and how
/// often a running guest yields to the async runtime.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Runtime settings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled components are cached (`None`: no cache).
    pub cache_dir: Option<PathBuf>,
    /// Linear memory a module instance may use, in bytes.
    pub memory_limit: usize,
    /// Largest response body a module may return, in bytes.
    pub max_response_bytes: usize,
    /// Instances that may exist at the same time (the pool size).
    pub max_instances: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: None,
            memory_limit: 64 * 1024 * 1024,
            max_response_bytes: 8 * 1024 * 1024,
            max_instances: 200,
        }
    }
}

/// The engine and its epoch ticker; cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) config: Arc<RuntimeConfig>,
    pub(crate) linker_v0_1: Arc<wasmtime::component::Linker<crate::call::CallState>>,
    _ticker: Arc<Ticker>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.config)
            .finish()
    }
}

struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    /// Build the engine and start its epoch ticker.
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Runtime> {
        let mut wasm = Config::new();
        wasm.wasm_component_model(true);
        wasm.epoch_interruption(true);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(config.max_instances);
        pool.total_core_instances(config.max_instances * 4);
        pool.total_memories(config.max_instances * 2);
        pool.total_tables(config.max_instances * 2);
        pool.max_memory_size(config.memory_limit);
        // Every call drops its store: reset the table and the guest's hot
        // first pages with memset instead of madvise and page faults on the
        // next call, and give the rest back in batches (fewer syscalls and
        // TLB shootdowns). Guests are linked with a 64 KiB stack (build.rs)
        // so stack, data and heap start fall inside the resident part.
        pool.table_keep_resident(64 * 1024);
        pool.linear_memory_keep_resident(128 * 1024);
        pool.decommit_batch_size(16);
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm)?;

        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("kontor-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })?;

        let linker_v0_1 = Arc::new(crate::api::v0_1::linker(&engine)?);
        if let Some(dir) = &config.cache_dir {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Runtime {
            engine,
            config: Arc::new(config),
            linker_v0_1,
            _ticker: Arc::new(Ticker { stop }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }
}
