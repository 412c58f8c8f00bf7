//! The capabilities a module gets in one call, bound to one caller (a user
//! of a tenant, or the tenant alone) and one module: its own records,
//! events, settings and log always; secrets, the CRM and outbound HTTP
//! when its manifest declares them and an administrator accepted them
//! ([`super::capabilities::check`]). Nothing here takes a tenant or module
//! from the guest.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use kontor_runtime::host::{
    BatchOp, Capabilities, Contact, CrmError, Customer, CustomerPage, CustomerQuery, Email,
    LogLevel, NewCustomer, NotifyError, OutboundPolicy, Query, QueryPage, Record, RecordError,
    TimelineEntry, User,
};
use tokio::sync::OnceCell;

use super::capabilities::{self, Capability, Refusal};
use super::crm_access;
use super::host::Loaded;
use super::records::{self, Quota, RecordScope};
use super::secret_key::SecretKeys;
use crate::auth::Principal;
use crate::clock::SharedClock;
use crate::db::Db;
use crate::ids::TenantId;

/// The `tracing` target of every line a module logs (fields `module` and
/// `tenant`): filter on it to follow modules (`KONTOR_LOG=kontor::module=debug`).
pub const LOG_TARGET: &str = "kontor::module";

/// On whose behalf a module call runs.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A signed-in user (routes, pages): capabilities see what they may see.
    User(Arc<Principal>),
    /// No user (events, jobs, filters): the tenant as a whole.
    Tenant(TenantId),
}

impl Caller {
    /// The tenant every capability of the call is bound to.
    pub fn tenant(&self) -> &TenantId {
        match self {
            Caller::User(p) => &p.tenant_id,
            Caller::Tenant(t) => t,
        }
    }
}

impl From<&Principal> for Caller {
    fn from(p: &Principal) -> Self {
        Caller::User(Arc::new(p.clone()))
    }
}

impl From<&TenantId> for Caller {
    fn from(t: &TenantId) -> Self {
        Caller::Tenant(t.clone())
    }
}

/// A call's caller, and whether the module may change anything in it.
#[derive(Debug, Clone)]
pub struct CallContext {
    caller: Caller,
    /// Set when the module is read-only for the tenant: every write
    /// (records, sequences, events, CRM entries, e-mail) is refused with it.
    read_only: Option<String>,
}

impl CallContext {
    /// Read-only when `access` is: a module whose license or subscription
    /// ended shows its data on GET routes and pages, but a GET handler
    /// cannot write either.
    pub fn under(mut self, access: &super::entitlements::Access) -> Self {
        if let super::entitlements::Access::ReadOnly { reason } = access {
            self.read_only = Some(reason.clone());
        }
        self
    }
}

impl From<Caller> for CallContext {
    fn from(caller: Caller) -> Self {
        CallContext {
            caller,
            read_only: None,
        }
    }
}

impl From<&Principal> for CallContext {
    fn from(p: &Principal) -> Self {
        Caller::from(p).into()
    }
}

impl From<&TenantId> for CallContext {
    fn from(t: &TenantId) -> Self {
        Caller::from(t).into()
    }
}

/// Capabilities of one call.
pub struct HostCaps {
    db: Db,
    clock: SharedClock,
    caller: Caller,
    tenant: TenantId,
    module: Arc<Loaded>,
    secret_keys: Arc<SecretKeys>,
    /// Why writes are refused in this call, if they are.
    read_only: Option<String>,
    /// Sends module e-mail (`notify`).
    mailer: Option<crate::mail::Mailer>,
    /// The host the call runs in: its `customer.before_save` filters and
    /// licensing apply to a customer the module creates.
    host: Option<super::host::ModuleHost>,
    /// What the administrator accepted for the module, read at most once per call.
    accepted: OnceCell<BTreeSet<Capability>>,
}

impl HostCaps {
    /// Bind a call to `caller` and `module`.
    pub fn new(
        db: Db,
        clock: SharedClock,
        caller: Caller,
        module: Arc<Loaded>,
        secret_keys: Arc<SecretKeys>,
    ) -> Self {
        HostCaps {
            db,
            clock,
            tenant: caller.tenant().clone(),
            caller,
            module,
            secret_keys,
            mailer: None,
            host: None,
            read_only: None,
            accepted: OnceCell::new(),
        }
    }

    /// The same capabilities for `context`'s caller, refusing writes when
    /// it is read-only.
    pub fn for_context(
        db: Db,
        clock: SharedClock,
        context: CallContext,
        module: Arc<Loaded>,
        secret_keys: Arc<SecretKeys>,
    ) -> Self {
        let mut caps = HostCaps::new(db, clock, context.caller, module, secret_keys);
        caps.read_only = context.read_only;
        caps
    }

    /// `Err` with why, when the call may not write.
    fn writable(&self) -> Result<(), String> {
        match &self.read_only {
            Some(reason) => Err(format!(
                "module `{}` is read-only for this tenant, so it cannot change data: {reason}",
                self.module_id()
            )),
            None => Ok(()),
        }
    }

    /// The same capabilities able to send e-mail (`notify`) through `mailer`.
    pub fn with_mailer(mut self, mailer: crate::mail::Mailer) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// The same capabilities able to create customers under `host`'s
    /// filters and licensing.
    pub fn with_host(mut self, host: super::host::ModuleHost) -> Self {
        self.host = Some(host);
        self
    }

    /// `Ok` if the module may use `capability` in this call.
    async fn grant(&self, capability: Capability) -> Result<(), Refusal> {
        capabilities::check(&self.db, &self.module.manifest, capability, &self.accepted).await
    }

    /// The CRM principal of the call: the user, or the tenant's system
    /// principal when there is none — only once the capability is granted.
    async fn crm_principal(&self) -> Result<Principal, CrmError> {
        self.grant(Capability::Crm)
            .await
            .map_err(|r| CrmError::Denied(r.0))?;
        Ok(match &self.caller {
            Caller::User(p) => (**p).clone(),
            Caller::Tenant(t) => crm_access::system_principal(t, self.module_id()),
        })
    }

    fn module_id(&self) -> &str {
        &self.module.manifest.id
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
    /// A guest's log line goes to the host's log under the target
    /// [`LOG_TARGET`], with the module id and the tenant of the call (so an
    /// operator sees whose call logged it, and a test harness can pick its
    /// own tenant's lines out of a shared log).
    fn log(&self, level: LogLevel, message: &str) {
        let module = self.module.manifest.id.as_str();
        let tenant = self.tenant.as_str();
        match level {
            LogLevel::Trace => tracing::trace!(target: LOG_TARGET, module, tenant, "{message}"),
            LogLevel::Debug => tracing::debug!(target: LOG_TARGET, module, tenant, "{message}"),
            LogLevel::Info => tracing::info!(target: LOG_TARGET, module, tenant, "{message}"),
            LogLevel::Warn => tracing::warn!(target: LOG_TARGET, module, tenant, "{message}"),
            LogLevel::Error => tracing::error!(target: LOG_TARGET, module, tenant, "{message}"),
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
        self.writable().map_err(RecordError::ReadOnly)?;
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
        self.writable().map_err(RecordError::ReadOnly)?;
        records::delete(&self.db, &self.scope(), collection, id, expected_version).await
    }

    async fn record_query(&self, query: Query) -> Result<QueryPage, RecordError> {
        records::query(&self.db, &self.scope(), &query).await
    }

    async fn record_batch(&self, ops: Vec<BatchOp>) -> Result<Vec<Option<Record>>, RecordError> {
        self.writable().map_err(RecordError::ReadOnly)?;
        records::batch(&self.db, &self.scope(), &ops, self.clock.now_ms()).await
    }

    async fn next_sequence(&self, name: &str) -> Result<u64, RecordError> {
        self.writable().map_err(RecordError::ReadOnly)?;
        records::next_sequence(&self.db, &self.scope(), name).await
    }

    async fn emit_event(&self, name: &str, payload: &str) -> Result<(), String> {
        self.writable()?;
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
        super::settings::value(
            &self.db,
            &self.tenant,
            &self.module.manifest,
            key,
            self.clock.now_ms(),
        )
        .await
    }

    async fn secret(&self, name: &str) -> Result<Option<String>, String> {
        self.grant(Capability::Secrets).await.map_err(|r| r.0)?;
        // Errors of the store name the secret and the key, never a value.
        super::secrets::read(
            &self.db,
            &self.secret_keys,
            &self.tenant,
            &self.module.manifest,
            name,
        )
        .await
        .map(|v| v.map(|v| v.expose().to_string()))
        .map_err(|e| match e {
            crate::Error::Api { message, .. } => message,
            other => {
                let error_id = uuid::Uuid::new_v4().simple().to_string();
                tracing::error!(module = %self.module_id(), error_id = %error_id, error = %other, "reading a module secret failed");
                format!("the host could not read the secret; reference {error_id} in the server log")
            }
        })
    }

    async fn notify_send(&self, email: Email) -> Result<String, NotifyError> {
        self.writable().map_err(NotifyError::Denied)?;
        self.grant(Capability::Notify)
            .await
            .map_err(|r| NotifyError::Denied(r.0))?;
        let Some(mailer) = &self.mailer else {
            return Err(NotifyError::Denied(format!(
                "module `{}`: this host sends no e-mail",
                self.module_id()
            )));
        };
        super::notify::send(
            &self.db,
            mailer,
            &self.tenant,
            &self.module.manifest,
            email,
            self.clock.now_ms(),
        )
        .await
    }

    async fn crm_customer(&self, id: &str) -> Result<Option<Customer>, CrmError> {
        let who = self.crm_principal().await?;
        crm_access::customer(&self.db, &who, self.module_id(), id).await
    }

    async fn crm_customers(&self, query: CustomerQuery) -> Result<CustomerPage, CrmError> {
        let who = self.crm_principal().await?;
        crm_access::customer_page(&self.db, &who, self.module_id(), query).await
    }

    async fn crm_contacts(&self, customer_id: &str) -> Result<Vec<Contact>, CrmError> {
        let who = self.crm_principal().await?;
        crm_access::contact_list(&self.db, &who, self.module_id(), customer_id).await
    }

    async fn crm_users(&self) -> Result<Vec<User>, CrmError> {
        let who = self.crm_principal().await?;
        crm_access::user_list(&self.db, &who, self.module_id()).await
    }

    async fn crm_add_timeline_entry(&self, entry: TimelineEntry) -> Result<String, CrmError> {
        self.writable().map_err(CrmError::Forbidden)?;
        let who = self.crm_principal().await?;
        crm_access::add_timeline_entry(&self.db, &who, self.module_id(), entry, self.clock.now_ms())
            .await
    }

    async fn crm_add_note(&self, customer_id: &str, body: &str) -> Result<String, CrmError> {
        self.writable().map_err(CrmError::Forbidden)?;
        let who = self.crm_principal().await?;
        crm_access::add_note(
            &self.db,
            &who,
            self.module_id(),
            customer_id,
            body,
            self.clock.now_ms(),
        )
        .await
    }

    async fn crm_create_customer(&self, customer: NewCustomer) -> Result<Customer, CrmError> {
        self.writable().map_err(CrmError::Forbidden)?;
        let who = self.crm_principal().await?;
        let Some(host) = &self.host else {
            return Err(CrmError::Denied(format!(
                "module `{}`: this host creates no customers",
                self.module_id()
            )));
        };
        crm_access::create_customer(
            &self.db,
            host,
            &who,
            self.module_id(),
            customer,
            self.clock.now_ms(),
        )
        .await
    }

    async fn outbound_http(&self) -> Result<Arc<OutboundPolicy>, String> {
        self.grant(Capability::Http).await.map_err(|r| r.0)?;
        super::outbound::policy_for_call(&self.db, &self.module.manifest).await
    }

    /// The module's `SystemTime::now()` is the host's clock.
    fn now_ms(&self) -> Option<i64> {
        Some(self.clock.now_ms())
    }
}
