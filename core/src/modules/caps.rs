//! The capabilities a module gets in one call, bound to one tenant and one
//! module: its own records, its own events, its own settings, the log.
//! Nothing here takes a tenant or module from the guest.

use std::sync::Arc;

use async_trait::async_trait;
use kontor_runtime::host::{
    BatchOp, Capabilities, LogLevel, Query, QueryPage, Record, RecordError,
};

use super::host::Loaded;
use super::records::{self, Quota, RecordScope};
use crate::clock::SharedClock;
use crate::db::Db;
use crate::ids::TenantId;

/// Capabilities of one call.
pub struct HostCaps {
    db: Db,
    clock: SharedClock,
    tenant: TenantId,
    module: Arc<Loaded>,
}

impl HostCaps {
    /// Bind a call to `tenant` and `module`.
    pub fn new(db: Db, clock: SharedClock, tenant: TenantId, module: Arc<Loaded>) -> Self {
        HostCaps {
            db,
            clock,
            tenant,
            module,
        }
    }

    fn scope(&self) -> RecordScope<'_> {
        RecordScope {
            tenant: &self.tenant,
            module_id: &self.module.manifest.id,
            collections: &self.module.manifest.collections,
            quota: Quota::default(),
        }
    }
}

#[async_trait]
impl Capabilities for HostCaps {
    fn log(&self, level: LogLevel, message: &str) {
        let module = self.module.manifest.id.as_str();
        match level {
            LogLevel::Trace => tracing::trace!(target: "kontor::module", module, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "kontor::module", module, "{message}"),
            LogLevel::Info => tracing::info!(target: "kontor::module", module, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "kontor::module", module, "{message}"),
            LogLevel::Error => tracing::error!(target: "kontor::module", module, "{message}"),
        }
    }

    async fn record_get(&self, collection: &str, id: &str) -> Result<Option<Record>, RecordError> {
        records::get(&self.db, &self.scope(), collection, id).await
    }

    async fn record_put(
        &self,
        collection: &str,
        id: &str,
        data: &str,
        expected_version: Option<u64>,
    ) -> Result<Record, RecordError> {
        records::put(
            &self.db,
            &self.scope(),
            collection,
            id,
            data,
            expected_version,
            self.clock.now_ms(),
        )
        .await
    }

    async fn record_delete(
        &self,
        collection: &str,
        id: &str,
        expected_version: Option<u64>,
    ) -> Result<bool, RecordError> {
        records::delete(&self.db, &self.scope(), collection, id, expected_version).await
    }

    async fn record_query(&self, query: Query) -> Result<QueryPage, RecordError> {
        records::query(&self.db, &self.scope(), &query).await
    }

    async fn record_batch(&self, ops: Vec<BatchOp>) -> Result<Vec<Option<Record>>, RecordError> {
        records::batch(&self.db, &self.scope(), &ops, self.clock.now_ms()).await
    }

    async fn next_sequence(&self, name: &str) -> Result<u64, RecordError> {
        records::next_sequence(&self.db, &self.scope(), name).await
    }

    async fn emit_event(&self, name: &str, payload: &str) -> Result<(), String> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_');
        if !valid {
            return Err(format!(
                "`{name}` is not an event name (lower-case letters, digits, `.` and `_`)"
            ));
        }
        let value: serde_json::Value =
            serde_json::from_str(payload).map_err(|e| format!("payload is not JSON: {e}"))?;
        let full = format!("{}.{name}", self.module.manifest.id);
        super::events::publish(&self.db, &self.tenant, &full, &value, self.clock.now_ms())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn setting(&self, key: &str) -> Option<String> {
        let decl = self
            .module
            .manifest
            .settings
            .iter()
            .find(|s| s.key == key)?;
        let key = format!("module.{}.{key}", self.module.manifest.id);
        let stored = crate::settings::stored(&self.db, &self.tenant, self.clock.now_ms())
            .await
            .ok()
            .and_then(|all| all.get(&key).cloned());
        stored.or_else(|| {
            decl.default
                .as_ref()
                .and_then(|d| serde_json::to_string(d).ok())
        })
    }
}
