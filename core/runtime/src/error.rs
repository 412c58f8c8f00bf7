//! How loading a module or calling it can fail.

/// A call into a module that did not produce an answer. Each ends that one
/// call; the host keeps running.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The call ran past its deadline and was stopped.
    #[error("the module did not answer within {0} ms")]
    Timeout(u64),
    /// The module tried to use more memory than it may.
    #[error("the module exceeded its memory limit of {0} bytes")]
    OutOfMemory(usize),
    /// The module trapped (a panic, an unreachable, a bad memory access...).
    #[error("the module failed: {0}")]
    Trap(String),
    /// The module answered with something the host refuses (too large...).
    #[error("the module's answer was refused: {0}")]
    BadResponse(String),
    /// The module could not be instantiated.
    #[error("the module could not be started: {0}")]
    Instantiate(String),
}

/// A module that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The component needs a contract version this host does not serve.
    #[error("module needs API {needed}, this host offers {offered}; rebuild the module with the kontor-sdk for one of {offered} and set its `api` to match, or run a Kontor that serves {needed}")]
    ApiMismatch {
        /// What the module asks for.
        needed: String,
        /// What the host serves.
        offered: String,
    },
    /// The bytes are not a valid component.
    #[error("invalid module component: {0}")]
    Invalid(String),
    /// The component imports something this host does not link: an
    /// interface of another contract version, or one the SDK does not use.
    #[error("the component imports `{import}`, which this host does not provide ({cause}); {fix}")]
    UnknownImport {
        /// The import, e.g. `kontor:module/notify@0.1.0`.
        import: String,
        /// What the linker found wrong.
        cause: String,
        /// What the module's developer does about it.
        fix: String,
    },
    /// The component lacks a function the contract has the host call.
    #[error("the component does not export `{export}`, which kontor:module {api} requires; {fix}")]
    MissingExport {
        /// The export, e.g. `describe`.
        export: String,
        /// The contract version the module was bound to.
        api: String,
        /// What the module's developer does about it.
        fix: String,
    },
    /// The compile cache could not be used (the module is still compiled).
    #[error("compile cache error: {0}")]
    Cache(String),
}
