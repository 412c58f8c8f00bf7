//! Customer records.
//!
//! One path writes a customer, whoever asks (API, UI, CSV import, demo):
//! fields are merged into a [`CustomerData`], validated as a whole, and
//! written with their derived columns (normalised e-mail, sort key, search
//! text) and a timeline entry in the same transaction.

use std::collections::HashSet;

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::{check_len, clean, timeline};
use crate::auth::principal::CustomerScope;
use crate::auth::{is_plausible_email, normalize_email, Principal, Role};
use crate::clock::rfc3339;
use crate::db::args::Args;
use crate::db::{Backend, Db, Tx};
use crate::error::{Code, Error, Result};
use crate::ids::{CustomerId, TenantId};
use crate::license::Quota;

/// Most tags on one customer.
pub const MAX_TAGS: usize = 50;
/// Largest custom-field object, serialised, in bytes.
pub const MAX_CUSTOM_FIELDS_BYTES: usize = 16 * 1024;
/// Largest page of a list.
pub const MAX_PAGE: i64 = 200;

/// A customer as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Customer {
    /// Id.
    pub id: String,
    /// Company name (empty for private customers).
    pub company: Option<String>,
    /// Contact person.
    pub contact_name: Option<String>,
    /// Company, else contact person: how lists show the customer.
    pub display_name: String,
    /// E-mail (unique within the tenant).
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Street and number.
    pub street: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Region / canton / state.
    pub region: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    /// Free tags.
    pub tags: Vec<String>,
    /// Custom fields.
    #[schema(value_type = Object)]
    pub custom_fields: Map<String, Value>,
    /// `active` or `archived`.
    pub status: String,
    /// The reseller the customer is assigned to.
    pub reseller_id: Option<String>,
    /// RFC 3339, set when the customer was erased (GDPR).
    pub erased_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// Fields of a customer in a create or update request. On update an absent
/// field stays as it is and `null` clears it.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    /// Company name.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub company: Option<Option<String>>,
    /// Contact person.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub contact_name: Option<Option<String>>,
    /// E-mail.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// Phone.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    /// Street.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub street: Option<Option<String>>,
    /// Postal code.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub postal_code: Option<Option<String>>,
    /// City.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub city: Option<Option<String>>,
    /// Region.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub region: Option<Option<String>>,
    /// ISO 3166-1 alpha-2 country code, e.g. `CH`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub country: Option<Option<String>>,
    /// Tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Custom fields (a JSON object).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<Map<String, Value>>,
    /// `active` or `archived`.
    #[serde(default)]
    pub status: Option<String>,
    /// Reseller user to assign the customer to.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub reseller_id: Option<Option<String>>,
}

impl CustomerInput {
    /// The input as JSON, absent fields left out and cleared ones `null`
    /// (what filter hooks of modules see).
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        let mut put = |k: &str, v: &Option<Option<String>>| {
            if let Some(v) = v {
                map.insert(
                    k.to_string(),
                    v.clone().map(Value::String).unwrap_or(Value::Null),
                );
            }
        };
        put("company", &self.company);
        put("contact_name", &self.contact_name);
        put("email", &self.email);
        put("phone", &self.phone);
        put("street", &self.street);
        put("postal_code", &self.postal_code);
        put("city", &self.city);
        put("region", &self.region);
        put("country", &self.country);
        put("reseller_id", &self.reseller_id);
        if let Some(t) = &self.tags {
            map.insert("tags".into(), serde_json::json!(t));
        }
        if let Some(c) = &self.custom_fields {
            map.insert("custom_fields".into(), Value::Object(c.clone()));
        }
        if let Some(s) = &self.status {
            map.insert("status".into(), Value::String(s.clone()));
        }
        Value::Object(map)
    }
}

/// `Some(None)` for an explicit null, `None` (via `default`) when absent.
fn present<'de, D, T>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The complete, validated content of a customer record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerData {
    /// Company name.
    pub company: Option<String>,
    /// Contact person.
    pub contact_name: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Street.
    pub street: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Country code.
    pub country: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Custom fields.
    pub custom_fields: Map<String, Value>,
    /// `active` or `archived`.
    pub status: String,
    /// Assigned reseller.
    pub reseller_id: Option<String>,
}

impl CustomerData {
    /// Apply an input on top of this record (a new record starts from default).
    pub fn merged(&self, input: &CustomerInput) -> CustomerData {
        let pick = |new: &Option<Option<String>>, old: &Option<String>| match new {
            Some(v) => clean(v.as_deref()),
            None => old.clone(),
        };
        CustomerData {
            company: pick(&input.company, &self.company),
            contact_name: pick(&input.contact_name, &self.contact_name),
            email: pick(&input.email, &self.email),
            phone: pick(&input.phone, &self.phone),
            street: pick(&input.street, &self.street),
            postal_code: pick(&input.postal_code, &self.postal_code),
            city: pick(&input.city, &self.city),
            region: pick(&input.region, &self.region),
            country: pick(&input.country, &self.country).map(|c| c.to_uppercase()),
            tags: match &input.tags {
                Some(tags) => normalize_tags(tags),
                None => self.tags.clone(),
            },
            custom_fields: input
                .custom_fields
                .clone()
                .unwrap_or_else(|| self.custom_fields.clone()),
            status: input.status.clone().unwrap_or_else(|| {
                if self.status.is_empty() {
                    "active".into()
                } else {
                    self.status.clone()
                }
            }),
            reseller_id: pick(&input.reseller_id, &self.reseller_id),
        }
    }

    /// Check every field; the first problem is returned, naming its field.
    pub fn validate(&self) -> Result<()> {
        if self.company.is_none() && self.contact_name.is_none() {
            return Err(Error::invalid(
                "company",
                "a customer needs a company or a contact name",
            ));
        }
        check_len("company", self.company.as_deref(), 200)?;
        check_len("contact_name", self.contact_name.as_deref(), 200)?;
        check_len("email", self.email.as_deref(), 254)?;
        check_len("phone", self.phone.as_deref(), 50)?;
        check_len("street", self.street.as_deref(), 200)?;
        check_len("postal_code", self.postal_code.as_deref(), 20)?;
        check_len("city", self.city.as_deref(), 100)?;
        check_len("region", self.region.as_deref(), 100)?;
        if let Some(email) = &self.email {
            if !is_plausible_email(email) {
                return Err(Error::invalid("email", "is not a valid e-mail address"));
            }
        }
        if let Some(phone) = &self.phone {
            if !phone
                .chars()
                .all(|c| c.is_ascii_digit() || " +-()/.".contains(c))
                || !phone.chars().any(|c| c.is_ascii_digit())
            {
                return Err(Error::invalid(
                    "phone",
                    "may contain digits, spaces and + - ( ) / . only",
                ));
            }
        }
        if let Some(country) = &self.country {
            if country.len() != 2 || !country.chars().all(|c| c.is_ascii_uppercase()) {
                return Err(Error::invalid(
                    "country",
                    "expected a two-letter ISO 3166 code such as CH",
                ));
            }
        }
        if self.tags.len() > MAX_TAGS {
            return Err(Error::invalid("tags", format!("at most {MAX_TAGS} tags")));
        }
        if let Some(t) = self.tags.iter().find(|t| t.chars().count() > 50) {
            return Err(Error::invalid(
                "tags",
                format!("tag `{t}` is longer than 50 characters"),
            ));
        }
        if Value::Object(self.custom_fields.clone()).to_string().len() > MAX_CUSTOM_FIELDS_BYTES {
            return Err(Error::invalid(
                "custom_fields",
                format!("must be at most {MAX_CUSTOM_FIELDS_BYTES} bytes"),
            ));
        }
        if self.status != "active" && self.status != "archived" {
            return Err(Error::invalid("status", "expected active or archived"));
        }
        Ok(())
    }

    /// How lists show the customer.
    pub fn display_name(&self) -> String {
        self.company
            .clone()
            .or_else(|| self.contact_name.clone())
            .unwrap_or_default()
    }

    /// The lower-cased key lists sort by.
    pub(crate) fn sort_key(&self) -> String {
        self.display_name().to_lowercase()
    }

    /// The lower-cased text search matches against.
    pub(crate) fn search_text(&self) -> String {
        let digits: String = self
            .phone
            .as_deref()
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        [
            self.company.as_deref(),
            self.contact_name.as_deref(),
            self.email.as_deref(),
            self.phone.as_deref(),
            Some(digits.as_str()),
            self.city.as_deref(),
        ]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
    }
}

fn normalize_tags(tags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        let t = t.trim();
        if !t.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(t)) {
            out.push(t.to_string());
        }
    }
    out
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CustomerRow {
    pub id: String,
    company: Option<String>,
    contact_name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    street: Option<String>,
    postal_code: Option<String>,
    city: Option<String>,
    region: Option<String>,
    country: Option<String>,
    tags: String,
    custom_fields: String,
    status: String,
    reseller_id: Option<String>,
    pub sort_key: String,
    erased_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

pub(crate) const CUSTOMER_COLUMNS: &str = "id, company, contact_name, email, phone, street, postal_code, city, \
     region, country, tags, custom_fields, status, reseller_id, sort_key, erased_at, created_at, updated_at";

impl CustomerRow {
    pub(crate) fn data(&self) -> CustomerData {
        CustomerData {
            company: self.company.clone(),
            contact_name: self.contact_name.clone(),
            email: self.email.clone(),
            phone: self.phone.clone(),
            street: self.street.clone(),
            postal_code: self.postal_code.clone(),
            city: self.city.clone(),
            region: self.region.clone(),
            country: self.country.clone(),
            tags: serde_json::from_str(&self.tags).unwrap_or_default(),
            custom_fields: serde_json::from_str(&self.custom_fields).unwrap_or_default(),
            status: self.status.clone(),
            reseller_id: self.reseller_id.clone(),
        }
    }

    pub(crate) fn to_api(&self) -> Customer {
        let d = self.data();
        Customer {
            id: self.id.clone(),
            display_name: d.display_name(),
            company: d.company,
            contact_name: d.contact_name,
            email: d.email,
            phone: d.phone,
            street: d.street,
            postal_code: d.postal_code,
            city: d.city,
            region: d.region,
            country: d.country,
            tags: d.tags,
            custom_fields: d.custom_fields,
            status: d.status,
            reseller_id: d.reseller_id,
            erased_at: self.erased_at.map(rfc3339),
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
        }
    }
}

/// SQL condition (with its arguments) restricting customers to a scope.
pub(crate) fn scope_sql(scope: &CustomerScope, args: &mut Args) -> String {
    match scope {
        CustomerScope::All => String::new(),
        CustomerScope::Reseller(user) => format!(" AND reseller_id = {}", args.text(user.as_str())),
        CustomerScope::Own(customer) => format!(" AND id = {}", args.text(customer.as_str())),
    }
}

/// Load a customer the principal may see, or `not_found` — the same answer
/// for a customer of another tenant, outside the scope, or nonexistent.
pub(crate) async fn fetch_visible<'e, E>(
    exec: E,
    who: &Principal,
    id: &CustomerId,
    lock: &str,
) -> Result<CustomerRow>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let mut args = Args::new();
    let t = args.text(who.tenant_id.as_str());
    let i = args.text(id.as_str());
    let scope = scope_sql(&who.customer_scope(), &mut args);
    let sql = format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE tenant_id = {t} AND id = {i}{scope}{lock}"
    );
    args.bind_as(sqlx::query_as::<_, CustomerRow>(&sql))
        .fetch_optional(exec)
        .await?
        .ok_or_else(|| Error::not_found("customer"))
}

/// Check that `reseller_id` names an active reseller of the tenant.
async fn check_reseller(
    tx: &mut Tx,
    tenant: &TenantId,
    reseller_id: &Option<String>,
) -> Result<()> {
    if let Some(rid) = reseller_id {
        let role: Option<String> = sqlx::query_scalar(
            "SELECT role FROM users WHERE tenant_id = $1 AND id = $2 AND status = 'active'",
        )
        .bind(tenant.as_str())
        .bind(rid)
        .fetch_optional(&mut **tx)
        .await?;
        if role.as_deref() != Some(Role::Reseller.as_str()) {
            return Err(Error::invalid(
                "reseller_id",
                "is not an active reseller of this tenant",
            ));
        }
    }
    Ok(())
}

fn email_conflict(e: sqlx::Error) -> Error {
    Error::from(e).on_unique(
        "customers_tenant_email_key",
        Code::EmailTaken,
        "another customer already uses this e-mail address",
    )
}

/// Insert a validated customer inside `tx`; used by the API, CSV import,
/// demo and modules. `via` says how it came (`api`, `demo`, `module`);
/// `source` is the timeline's (`core`, or the module that created it).
pub async fn insert_tx(
    tx: &mut Tx,
    tenant: &TenantId,
    data: &CustomerData,
    actor: Option<&str>,
    source: &str,
    via: &str,
    now: i64,
) -> Result<CustomerId> {
    let id = CustomerId::generate();
    sqlx::query(
        "INSERT INTO customers (id, tenant_id, company, contact_name, email, email_norm, phone, street, \
         postal_code, city, region, country, tags, custom_fields, status, reseller_id, sort_key, search_text, \
         created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $19)",
    )
    .bind(id.as_str())
    .bind(tenant.as_str())
    .bind(&data.company)
    .bind(&data.contact_name)
    .bind(&data.email)
    .bind(data.email.as_deref().map(normalize_email))
    .bind(&data.phone)
    .bind(&data.street)
    .bind(&data.postal_code)
    .bind(&data.city)
    .bind(&data.region)
    .bind(&data.country)
    .bind(serde_json::to_string(&data.tags).unwrap_or_else(|_| "[]".into()))
    .bind(Value::Object(data.custom_fields.clone()).to_string())
    .bind(&data.status)
    .bind(&data.reseller_id)
    .bind(data.sort_key())
    .bind(data.search_text())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(email_conflict)?;
    crate::modules::events::publish_tx(
        tx,
        tenant,
        "customer.created",
        &event_payload(&id, data),
        now,
    )
    .await?;
    timeline::add_tx(
        tx,
        tenant,
        &id,
        timeline::Entry {
            source,
            kind: "customer.created",
            summary: format!("Customer created ({via})"),
            data: serde_json::json!({ "via": via }),
            actor_id: actor.map(str::to_string),
        },
        now,
    )
    .await?;
    Ok(id)
}

/// What `customer.*` events carry.
pub(crate) fn event_payload(id: &CustomerId, data: &CustomerData) -> Value {
    serde_json::json!({
        "id": id.as_str(),
        "display_name": data.display_name(),
        "company": data.company,
        "contact_name": data.contact_name,
        "email": data.email,
        "status": data.status,
    })
}

/// Create a customer as `who`, within the license's `quota` of customers.
pub async fn create(
    db: &Db,
    who: &Principal,
    input: &CustomerInput,
    quota: &Quota,
    now: i64,
) -> Result<Customer> {
    create_from(db, who, input, quota, "core", now).await
}

/// Create a customer on behalf of `source` (`core` or a module id, recorded
/// on the timeline entry). The actor is `who`'s user; a system caller (a
/// module in an event, job or signed inbound route) creates it without one.
pub async fn create_from(
    db: &Db,
    who: &Principal,
    input: &CustomerInput,
    quota: &Quota,
    source: &str,
    now: i64,
) -> Result<Customer> {
    who.require("customers.write")?;
    let mut data = CustomerData::default().merged(input);
    match who.customer_scope() {
        CustomerScope::All => {}
        // A reseller's new customers are theirs, whatever the body says.
        CustomerScope::Reseller(me) => data.reseller_id = Some(me.to_string()),
        CustomerScope::Own(_) => return Err(Error::forbidden("customers.write")),
    }
    data.validate()?;
    let mut tx = db.begin().await?;
    quota.check_tx(&mut tx).await?;
    check_reseller(&mut tx, &who.tenant_id, &data.reseller_id).await?;
    let via = if source == "core" { "api" } else { "module" };
    let id = insert_tx(
        &mut tx,
        &who.tenant_id,
        &data,
        who.user().map(|u| u.as_str()),
        source,
        via,
        now,
    )
    .await?;
    let row = fetch_visible(&mut *tx, who, &id, "").await?;
    tx.commit().await?;
    Ok(row.to_api())
}

/// One customer the principal may see.
pub async fn get(db: &Db, who: &Principal, id: &CustomerId) -> Result<Customer> {
    who.require("customers.read")?;
    Ok(fetch_visible(db.pool(), who, id, "").await?.to_api())
}

/// Change a customer; a timeline entry lists the changed fields.
pub async fn update(
    db: &Db,
    who: &Principal,
    id: &CustomerId,
    input: &CustomerInput,
    now: i64,
) -> Result<Customer> {
    who.require("customers.write")?;
    let mut tx = db.begin().await?;
    let row = fetch_visible(&mut *tx, who, id, db.for_update()).await?;
    if row.erased_at.is_some() {
        return Err(Error::new(
            Code::Conflict,
            "this customer was erased and cannot be changed",
        ));
    }
    let old = row.data();
    let mut data = old.merged(input);
    if !matches!(who.customer_scope(), CustomerScope::All) {
        // Only staff with the full view move customers between resellers.
        data.reseller_id = old.reseller_id.clone();
    }
    data.validate()?;
    if data.reseller_id != old.reseller_id {
        check_reseller(&mut tx, &who.tenant_id, &data.reseller_id).await?;
    }
    let changed = changed_fields(&old, &data);
    if !changed.is_empty() {
        write_tx(&mut tx, &who.tenant_id, id, &data, now).await?;
        let mut payload = event_payload(id, &data);
        payload["changed"] = serde_json::json!(changed);
        crate::modules::events::publish_tx(
            &mut tx,
            &who.tenant_id,
            "customer.updated",
            &payload,
            now,
        )
        .await?;
        timeline::add_tx(
            &mut tx,
            &who.tenant_id,
            id,
            timeline::Entry {
                source: "core",
                kind: "customer.updated",
                summary: format!("Changed: {}", changed.join(", ")),
                data: serde_json::json!({ "fields": changed }),
                actor_id: Some(who.user_id.to_string()),
            },
            now,
        )
        .await?;
    }
    let row = fetch_visible(&mut *tx, who, id, "").await?;
    tx.commit().await?;
    Ok(row.to_api())
}

/// Overwrite the stored fields of a customer with `data` (already validated).
pub(crate) async fn write_tx(
    tx: &mut Tx,
    tenant: &TenantId,
    id: &CustomerId,
    data: &CustomerData,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE customers SET company = $3, contact_name = $4, email = $5, email_norm = $6, phone = $7, \
         street = $8, postal_code = $9, city = $10, region = $11, country = $12, tags = $13, custom_fields = $14, \
         status = $15, reseller_id = $16, sort_key = $17, search_text = $18, updated_at = $19 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(&data.company)
    .bind(&data.contact_name)
    .bind(&data.email)
    .bind(data.email.as_deref().map(normalize_email))
    .bind(&data.phone)
    .bind(&data.street)
    .bind(&data.postal_code)
    .bind(&data.city)
    .bind(&data.region)
    .bind(&data.country)
    .bind(serde_json::to_string(&data.tags).unwrap_or_else(|_| "[]".into()))
    .bind(Value::Object(data.custom_fields.clone()).to_string())
    .bind(&data.status)
    .bind(&data.reseller_id)
    .bind(data.sort_key())
    .bind(data.search_text())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(email_conflict)?;
    Ok(())
}

fn changed_fields(old: &CustomerData, new: &CustomerData) -> Vec<&'static str> {
    let mut out = Vec::new();
    macro_rules! cmp {
        ($($f:ident),*) => { $( if old.$f != new.$f { out.push(stringify!($f)); } )* };
    }
    cmp!(
        company,
        contact_name,
        email,
        phone,
        street,
        postal_code,
        city,
        region,
        country,
        tags,
        custom_fields,
        status,
        reseller_id
    );
    out
}

/// Delete a customer with its contacts, notes and timeline; its portal
/// users are disabled. Audited.
pub async fn delete(db: &Db, who: &Principal, id: &CustomerId, now: i64) -> Result<()> {
    who.require("customers.delete")?;
    let mut tx = db.begin().await?;
    fetch_visible(&mut *tx, who, id, db.for_update()).await?;
    sqlx::query("UPDATE users SET status = 'disabled', customer_id = NULL, updated_at = $3 WHERE tenant_id = $1 AND customer_id = $2")
        .bind(who.tenant_id.as_str())
        .bind(id.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    for table in ["contacts", "notes", "activities"] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE tenant_id = $1 AND customer_id = $2"
        ))
        .bind(who.tenant_id.as_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("DELETE FROM customers WHERE tenant_id = $1 AND id = $2")
        .bind(who.tenant_id.as_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    crate::modules::events::publish_tx(
        &mut tx,
        &who.tenant_id,
        "customer.deleted",
        &serde_json::json!({ "id": id.as_str() }),
        now,
    )
    .await?;
    crate::audit::record_tx(
        &mut tx,
        &crate::audit::AuditEvent::new("customer.deleted")
            .tenant(&who.tenant_id)
            .actor(who.user_id.as_str())
            .target("customer", id.as_str()),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Filters and paging of a customer list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Search in name, e-mail, phone and city.
    pub q: Option<String>,
    /// `active` or `archived`; both when absent.
    pub status: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of customers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerPage {
    /// The customers, by name.
    pub items: Vec<Customer>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

fn encode_cursor(sort_key: &str, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::json!([sort_key, id]).to_string())
}

fn decode_cursor(cursor: &str) -> Result<(String, String)> {
    let bad = || Error::invalid("cursor", "is not a cursor this API handed out");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    serde_json::from_slice::<(String, String)>(&bytes).map_err(|_| bad())
}

/// A page of the customers the principal may see, by name, with keyset
/// paging (stable and index-backed however deep the page).
pub async fn list(db: &Db, who: &Principal, query: &ListQuery) -> Result<CustomerPage> {
    who.require("customers.read")?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Error::invalid(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    let mut args = Args::new();
    let search = match query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        Some(q) => {
            check_len("q", Some(q), 200)?;
            Some(search_filter(db, &q.to_lowercase(), &mut args).await?)
        }
        None => None,
    };
    // A search with few matches is driven from the matches themselves, not
    // by walking the name index (see `search_filter`).
    let from = match &search {
        Some(Search::FewRows(_)) => "customers NOT INDEXED",
        _ => "customers",
    };
    let mut sql = format!(
        "SELECT {CUSTOMER_COLUMNS} FROM {from} WHERE tenant_id = {}",
        args.text(who.tenant_id.as_str())
    );
    sql.push_str(&scope_sql(&who.customer_scope(), &mut args));
    if let Some(status) = &query.status {
        if status != "active" && status != "archived" {
            return Err(Error::invalid("status", "expected active or archived"));
        }
        sql.push_str(&format!(" AND status = {}", args.text(status)));
    }
    if let Some(Search::FewRows(cond) | Search::Condition(cond)) = &search {
        sql.push_str(cond);
    }
    if let Some(cursor) = &query.cursor {
        let (key, id) = decode_cursor(cursor)?;
        sql.push_str(&format!(
            " AND (sort_key, id) > ({}, {})",
            args.text(key),
            args.text(id)
        ));
    }
    sql.push_str(&format!(
        " ORDER BY sort_key, id LIMIT {}",
        args.int(limit + 1)
    ));
    let mut rows = args
        .bind_as(sqlx::query_as::<_, CustomerRow>(&sql))
        .fetch_all(db.pool())
        .await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| encode_cursor(&r.sort_key, &r.id))
    } else {
        None
    };
    Ok(CustomerPage {
        items: rows.iter().map(CustomerRow::to_api).collect(),
        next_cursor,
    })
}

/// Matches up to which a SQLite search reads its matches by rowid and
/// sorts them, instead of walking the name index until a page is full.
const FEW_MATCHES: i64 = 2_000;

/// How a search narrows the customer list: a condition to append, and
/// whether the matches are few enough to drive the query.
enum Search {
    /// A condition; the query walks the name index as usual.
    Condition(String),
    /// A condition naming at most [`FEW_MATCHES`] rows by rowid; the query
    /// should read those rows and sort them.
    FewRows(String),
}

/// The search condition. Substring match on both engines: SQLite through
/// its trigram FTS5 index, PostgreSQL through a trigram GIN index; queries
/// under three characters (too short for trigrams) scan with `LIKE`.
///
/// SQLite's index holds which customers contain each trigram, not where
/// (see migrations/sqlite/…000023): it finds the customers that contain
/// every trigram of the term, and the term itself is checked against
/// `search_text` of those rows, as PostgreSQL rechecks what its index finds.
///
/// On SQLite, the planner has two ways to answer "matches, by name, first
/// 50": walk the name index and keep the rows that match (fast when many
/// rows match, a walk over the whole tenant when few do, e.g. one exact
/// e-mail), or read every match and sort (the reverse). It cannot know
/// which one a term needs, so the FTS index is asked first for at most
/// [`FEW_MATCHES`] + 1 candidates: when there are no more than that, they
/// are read by rowid and sorted.
async fn search_filter(db: &Db, q: &str, args: &mut Args) -> Result<Search> {
    let like = format!("%{}%", crate::db::like_escape(q));
    let exact = |args: &mut Args| {
        format!(
            " AND search_text LIKE {} ESCAPE '\\'",
            args.text(like.clone())
        )
    };
    if q.chars().count() < 3 || db.backend() == Backend::Postgres {
        return Ok(Search::Condition(exact(args)));
    }
    let trigrams = trigram_query(q);
    let candidates: Vec<i64> =
        sqlx::query_scalar("SELECT rowid FROM customers_fts WHERE customers_fts MATCH $1 LIMIT $2")
            .bind(&trigrams)
            .bind(FEW_MATCHES + 1)
            .fetch_all(db.pool())
            .await?;
    if candidates.len() as i64 <= FEW_MATCHES {
        if candidates.is_empty() {
            return Ok(Search::FewRows(" AND FALSE".to_string()));
        }
        // Integers read from the index, written as literals: SQLite
        // prepares thousands of `$n` parameters slowly (see `db::args`),
        // and these cannot carry anything but digits.
        let list: Vec<String> = candidates.into_iter().map(|r| r.to_string()).collect();
        return Ok(Search::FewRows(format!(
            " AND rowid IN ({}){}",
            list.join(", "),
            exact(args)
        )));
    }
    Ok(Search::Condition(format!(
        " AND rowid IN (SELECT rowid FROM customers_fts WHERE customers_fts MATCH {}){}",
        args.text(trigrams),
        exact(args)
    )))
}

/// An FTS5 query for the rows that contain every trigram (three
/// characters, spaces included, as the trigram tokenizer cuts them) of
/// `q`: each one a quoted string, side by side (FTS5's implicit AND).
fn trigram_query(q: &str) -> String {
    let chars: Vec<char> = q.chars().collect();
    let mut seen = HashSet::new();
    chars
        .windows(3)
        .map(|w| w.iter().collect::<String>())
        .filter(|t| seen.insert(t.clone()))
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_semantics_absent_keeps_null_clears() {
        let base = CustomerData {
            company: Some("ACME".into()),
            email: Some("a@acme.ch".into()),
            status: "active".into(),
            ..Default::default()
        };
        let input: CustomerInput =
            serde_json::from_str(r#"{"email": null, "city": " Bern "}"#).unwrap();
        let merged = base.merged(&input);
        assert_eq!(merged.company.as_deref(), Some("ACME"));
        assert_eq!(merged.email, None);
        assert_eq!(merged.city.as_deref(), Some("Bern"));
    }

    #[test]
    fn validation_names_the_field() {
        let mut d = CustomerData {
            company: Some("x".repeat(201)),
            status: "active".into(),
            ..Default::default()
        };
        assert!(d.validate().unwrap_err().to_string().starts_with("company"));
        d.company = Some("ok".into());
        d.country = Some("Switzerland".into());
        assert!(d.validate().unwrap_err().to_string().starts_with("country"));
    }

    #[test]
    fn trigram_query_names_each_trigram_once_quoted() {
        assert_eq!(trigram_query("abcabc"), r#""abc" "bca" "cab""#);
        assert_eq!(trigram_query("x\"yz"), r#""x""y" """yz""#);
        assert_eq!(trigram_query("44 1"), r#""44 " "4 1""#);
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = encode_cursor("acme", "id-1");
        assert_eq!(decode_cursor(&c).unwrap(), ("acme".into(), "id-1".into()));
        assert!(decode_cursor("not a cursor").is_err());
    }
}
