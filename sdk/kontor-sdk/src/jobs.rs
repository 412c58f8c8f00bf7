//! Scheduled jobs: declared in `module.toml` with a cron schedule
//! (`[[jobs]] name = "tick"`, `schedule = "*/5 * * * *"`, UTC), run by the
//! host for every tenant that has the module, on the durable job queue.
//!
//! ```no_run
//! use kontor_sdk::{Error, Jobs};
//!
//! fn cleanup() -> Result<(), Error> {
//!     kontor_sdk::info!("cleaning up");
//!     Ok(())
//! }
//!
//! let jobs = Jobs::new().job("cleanup", cleanup);
//! ```

use crate::error::Error;

type Handler = Box<dyn Fn() -> Result<(), Error>>;

/// The module's job handlers, by name.
#[derive(Default)]
pub struct Jobs {
    handlers: Vec<(String, Handler)>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Jobs {
    /// No handlers yet.
    pub fn new() -> Self {
        Jobs::default()
    }

    /// Run `handler` for the job `name`. An error asks the host to retry
    /// the run with backoff; the job has no user, so it acts for the tenant.
    pub fn job<F>(mut self, name: &str, handler: F) -> Self
    where
        F: Fn() -> Result<(), Error> + 'static,
    {
        self.handlers.push((name.to_string(), Box::new(handler)));
        self
    }

    /// Run the job `name`; a job without a handler is an error.
    pub fn run(&self, name: &str) -> Result<(), Error> {
        match self.handlers.iter().find(|(n, _)| n == name) {
            Some((_, handler)) => handler(),
            None => Err(Error::internal(format!(
                "no handler for job {name}; register one in Module::jobs"
            ))),
        }
    }

    /// The names of the handled jobs.
    pub fn names(&self) -> Vec<String> {
        self.handlers.iter().map(|(n, _)| n.clone()).collect()
    }
}
