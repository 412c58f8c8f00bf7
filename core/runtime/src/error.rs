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
    #[error("module needs API {needed}, this host offers {offered}")]
    ApiMismatch {
        /// What the module asks for.
        needed: String,
        /// What the host serves.
        offered: String,
    },
    /// The bytes are not a valid component, or it imports something the host does not provide.
    #[error("invalid module component: {0}")]
    Invalid(String),
    /// The compile cache could not be used (the module is still compiled).
    #[error("compile cache error: {0}")]
    Cache(String),
}
