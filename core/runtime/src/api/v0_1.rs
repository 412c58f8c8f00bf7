//! Bindings of `kontor:module@0.1.0` (`sdk/wit/0.1.0`).

use semver::Version;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::Engine;

use crate::call::{self, CallState};
use crate::host;

/// The contract version of this binding.
pub const VERSION: Version = Version::new(0, 1, 0);

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../sdk/wit/0.1.0",
        world: "module",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

use bindings::kontor::module::{crm, events, log, notify, records, secrets, settings, types};
pub(crate) use bindings::{Module, ModulePre};

/// A linker with WASI (deny-all context), `wasi:http` (under the call's
/// outbound policy) and this version's imports.
pub(crate) fn linker(engine: &Engine) -> anyhow::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    // Outbound HTTP: every request goes through the call's policy
    // (`host::http_send`), refused unless the module may use it.
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    Module::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;
    Ok(linker)
}

impl types::Host for CallState {}

impl log::Host for CallState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Trace => host::LogLevel::Trace,
            log::Level::Debug => host::LogLevel::Debug,
            log::Level::Info => host::LogLevel::Info,
            log::Level::Warn => host::LogLevel::Warn,
            log::Level::Error => host::LogLevel::Error,
        };
        // Bound what one call can write to the log.
        let message: String = message.chars().take(8 * 1024).collect();
        self.caps.log(level, &message);
        Ok(())
    }
}

fn record_out(r: host::Record) -> records::Record {
    records::Record {
        id: r.id,
        version: r.version,
        data: r.data,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

fn error_out(e: host::RecordError) -> records::Error {
    match e {
        host::RecordError::UnknownCollection(c) => records::Error::UnknownCollection(c),
        host::RecordError::Conflict(v) => records::Error::Conflict(v),
        host::RecordError::Invalid(m) => records::Error::Invalid(m),
        host::RecordError::QuotaExceeded(m) => records::Error::QuotaExceeded(m),
        host::RecordError::ReadOnly(m) => records::Error::ReadOnly(m),
        host::RecordError::Internal(m) => records::Error::Internal(m),
    }
}

impl records::Host for CallState {
    async fn get(
        &mut self,
        collection: String,
        id: String,
    ) -> wasmtime::Result<Result<Option<records::Record>, records::Error>> {
        Ok(self
            .caps
            .record_get(&collection, &id)
            .await
            .map(|r| r.map(record_out))
            .map_err(error_out))
    }

    async fn put(
        &mut self,
        collection: String,
        id: String,
        data: String,
        expected_version: Option<u64>,
    ) -> wasmtime::Result<Result<records::Record, records::Error>> {
        Ok(self
            .caps
            .record_put(&collection, &id, &data, expected_version)
            .await
            .map(record_out)
            .map_err(error_out))
    }

    async fn delete(
        &mut self,
        collection: String,
        id: String,
        expected_version: Option<u64>,
    ) -> wasmtime::Result<Result<bool, records::Error>> {
        Ok(self
            .caps
            .record_delete(&collection, &id, expected_version)
            .await
            .map_err(error_out))
    }

    async fn query(
        &mut self,
        q: records::QuerySpec,
    ) -> wasmtime::Result<Result<records::QueryPage, records::Error>> {
        let query = host::Query {
            collection: q.collection,
            conditions: q
                .conditions
                .into_iter()
                .map(|c| host::Condition {
                    field: c.field,
                    op: match c.op {
                        records::Op::Eq => host::Op::Eq,
                        records::Op::Lt => host::Op::Lt,
                        records::Op::Lte => host::Op::Lte,
                        records::Op::Gt => host::Op::Gt,
                        records::Op::Gte => host::Op::Gte,
                    },
                    value: c.value,
                })
                .collect(),
            order_by: q.order_by,
            descending: q.descending,
            limit: q.limit,
            cursor: q.cursor,
        };
        Ok(self
            .caps
            .record_query(query)
            .await
            .map(|p| records::QueryPage {
                records: p.records.into_iter().map(record_out).collect(),
                next_cursor: p.next_cursor,
            })
            .map_err(error_out))
    }

    async fn batch(
        &mut self,
        ops: Vec<records::BatchOp>,
    ) -> wasmtime::Result<Result<Vec<Option<records::Record>>, records::Error>> {
        let ops = ops
            .into_iter()
            .map(|op| match op {
                records::BatchOp::Put((collection, id, data, expected_version)) => {
                    host::BatchOp::Put {
                        collection,
                        id,
                        data,
                        expected_version,
                    }
                }
                records::BatchOp::Delete((collection, id, expected_version)) => {
                    host::BatchOp::Delete {
                        collection,
                        id,
                        expected_version,
                    }
                }
            })
            .collect();
        Ok(self
            .caps
            .record_batch(ops)
            .await
            .map(|rs| rs.into_iter().map(|r| r.map(record_out)).collect())
            .map_err(error_out))
    }

    async fn next_sequence(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<u64, records::Error>> {
        Ok(self.caps.next_sequence(&name).await.map_err(error_out))
    }
}

impl events::Host for CallState {
    async fn emit(
        &mut self,
        name: String,
        payload: String,
    ) -> wasmtime::Result<Result<(), String>> {
        Ok(self.caps.emit_event(&name, &payload).await)
    }
}

impl settings::Host for CallState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.caps.setting(&key).await)
    }
}

impl secrets::Host for CallState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<Option<String>, String>> {
        Ok(self.caps.secret(&name).await)
    }
}

impl notify::Host for CallState {
    async fn send(
        &mut self,
        email: notify::Email,
    ) -> wasmtime::Result<Result<String, notify::Error>> {
        let email = host::Email {
            to: email.to,
            template: email.template,
            data: email.data,
            reply_to: email.reply_to,
            in_reply_to: email.in_reply_to,
        };
        Ok(self.caps.notify_send(email).await.map_err(|e| match e {
            host::NotifyError::Denied(m) => notify::Error::Denied(m),
            host::NotifyError::Invalid(m) => notify::Error::Invalid(m),
            host::NotifyError::Internal(m) => notify::Error::Internal(m),
        }))
    }
}

fn crm_error_out(e: host::CrmError) -> crm::Error {
    match e {
        host::CrmError::Denied(m) => crm::Error::Denied(m),
        host::CrmError::Forbidden(m) => crm::Error::Forbidden(m),
        host::CrmError::NotFound(m) => crm::Error::NotFound(m),
        host::CrmError::Invalid(m) => crm::Error::Invalid(m),
        host::CrmError::Internal(m) => crm::Error::Internal(m),
    }
}

fn customer_out(c: host::Customer) -> crm::Customer {
    crm::Customer {
        id: c.id,
        company: c.company,
        contact_name: c.contact_name,
        display_name: c.display_name,
        email: c.email,
        phone: c.phone,
        street: c.street,
        postal_code: c.postal_code,
        city: c.city,
        region: c.region,
        country: c.country,
        tags: c.tags,
        custom_fields: c.custom_fields,
        status: c.status,
        reseller_id: c.reseller_id,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

impl crm::Host for CallState {
    async fn get_customer(
        &mut self,
        id: String,
    ) -> wasmtime::Result<Result<Option<crm::Customer>, crm::Error>> {
        Ok(self
            .caps
            .crm_customer(&id)
            .await
            .map(|c| c.map(customer_out))
            .map_err(crm_error_out))
    }

    async fn list_customers(
        &mut self,
        q: crm::CustomerQuery,
    ) -> wasmtime::Result<Result<crm::CustomerPage, crm::Error>> {
        let query = host::CustomerQuery {
            search: q.search,
            status: q.status,
            limit: q.limit,
            cursor: q.cursor,
        };
        Ok(self
            .caps
            .crm_customers(query)
            .await
            .map(|p| crm::CustomerPage {
                customers: p.customers.into_iter().map(customer_out).collect(),
                next_cursor: p.next_cursor,
            })
            .map_err(crm_error_out))
    }

    async fn list_contacts(
        &mut self,
        customer_id: String,
    ) -> wasmtime::Result<Result<Vec<crm::Contact>, crm::Error>> {
        Ok(self
            .caps
            .crm_contacts(&customer_id)
            .await
            .map(|list| {
                list.into_iter()
                    .map(|c| crm::Contact {
                        id: c.id,
                        customer_id: c.customer_id,
                        name: c.name,
                        email: c.email,
                        phone: c.phone,
                        position: c.position,
                        is_primary: c.is_primary,
                    })
                    .collect()
            })
            .map_err(crm_error_out))
    }

    async fn list_users(&mut self) -> wasmtime::Result<Result<Vec<crm::User>, crm::Error>> {
        Ok(self
            .caps
            .crm_users()
            .await
            .map(|list| {
                list.into_iter()
                    .map(|u| crm::User {
                        id: u.id,
                        name: u.name,
                        email: u.email,
                        role: u.role,
                        active: u.active,
                    })
                    .collect()
            })
            .map_err(crm_error_out))
    }

    async fn add_timeline_entry(
        &mut self,
        e: crm::TimelineEntry,
    ) -> wasmtime::Result<Result<String, crm::Error>> {
        let entry = host::TimelineEntry {
            customer_id: e.customer_id,
            kind: e.kind,
            summary: e.summary,
            data: e.data,
        };
        Ok(self
            .caps
            .crm_add_timeline_entry(entry)
            .await
            .map_err(crm_error_out))
    }

    async fn add_note(
        &mut self,
        customer_id: String,
        body: String,
    ) -> wasmtime::Result<Result<String, crm::Error>> {
        Ok(self
            .caps
            .crm_add_note(&customer_id, &body)
            .await
            .map_err(crm_error_out))
    }

    async fn create_customer(
        &mut self,
        c: crm::NewCustomer,
    ) -> wasmtime::Result<Result<crm::Customer, crm::Error>> {
        let customer = host::NewCustomer {
            company: c.company,
            contact_name: c.contact_name,
            email: c.email,
            phone: c.phone,
            tags: c.tags,
        };
        Ok(self
            .caps
            .crm_create_customer(customer)
            .await
            .map(customer_out)
            .map_err(crm_error_out))
    }
}

pub(crate) fn request_in(r: call::HttpRequest) -> types::HttpRequest {
    types::HttpRequest {
        method: r.method,
        path: r.path,
        query: r.query,
        headers: r
            .headers
            .into_iter()
            .map(|(name, value)| types::Header { name, value })
            .collect(),
        body: r.body,
        principal: r.principal.map(|p| types::Principal {
            user_id: p.user_id,
            role: p.role,
            permissions: p.permissions,
            locale: p.locale,
        }),
    }
}

pub(crate) fn response_out(r: types::HttpResponse) -> call::HttpResponse {
    call::HttpResponse {
        status: r.status,
        headers: r.headers.into_iter().map(|h| (h.name, h.value)).collect(),
        body: r.body,
    }
}

pub(crate) fn page_out(p: types::Page) -> call::Page {
    call::Page {
        title: p.title,
        html: p.html,
    }
}

pub(crate) fn event_in(e: call::Event) -> types::Event {
    types::Event {
        id: e.id,
        name: e.name,
        payload: e.payload,
        occurred_at: e.occurred_at,
    }
}

pub(crate) fn filter_out(f: types::FilterResult) -> call::FilterResult {
    match f {
        types::FilterResult::Pass => call::FilterResult::Pass,
        types::FilterResult::Modify(p) => call::FilterResult::Modify(p),
        types::FilterResult::Reject(m) => call::FilterResult::Reject(m),
    }
}

pub(crate) fn handlers_out(h: types::Handlers) -> call::Handlers {
    call::Handlers {
        routes: h.routes.into_iter().map(|r| (r.method, r.path)).collect(),
        pages: h.pages,
        events: h.events,
        filters: h.filters,
        jobs: h.jobs,
    }
}
