//! Sample data for `kontor demo`: a tenant with about fifty customers of a
//! Swiss hosting business, with contacts, notes and timeline entries, plus a
//! staff member, a reseller and a portal user.

use crate::auth::roles::PermissionRegistry;
use crate::auth::users::{self, NewUser};
use crate::auth::{password, Role};
use crate::clock::Clock;
use crate::config::{Config, Mode};
use crate::crm::customers::{insert_tx, CustomerData};
use crate::crm::timeline;
use crate::db::Db;
use crate::error::{Code, Error, Result};
use crate::ids::{new_id, TenantId};

/// Slug of the demo tenant.
pub const DEMO_SLUG: &str = "demo";
/// E-mail of the demo owner.
pub const DEMO_EMAIL: &str = "admin@demo.kontor.test";

/// How to log in to the demo.
#[derive(Debug)]
pub struct DemoLogin {
    /// E-mail.
    pub email: String,
    /// Password (new on every start).
    pub password: String,
}

const PREFIXES: &[&str] = &[
    "Alpen", "Berg", "Rhein", "Limmat", "Aare", "Jura", "Säntis", "Pilatus", "Rigi", "Reuss",
    "Emmen", "Thur", "Zuger", "Linth", "Gotthard", "Seeland", "Bodensee", "Engadin",
];
const TRADES: &[&str] = &[
    "Treuhand",
    "Bäckerei",
    "Garage",
    "Architekten",
    "Zahnarztpraxis",
    "Druckerei",
    "Schreinerei",
    "Immobilien",
    "Informatik",
    "Physiotherapie",
    "Weinhandel",
    "Elektro",
    "Reisen",
    "Verlag",
    "Consulting",
];
const FORMS: &[&str] = &["AG", "GmbH", "& Partner", "Genossenschaft", "KLG"];
const CITIES: &[(&str, &str, &str)] = &[
    ("8001", "Zürich", "ZH"),
    ("3011", "Bern", "BE"),
    ("4051", "Basel", "BS"),
    ("6003", "Luzern", "LU"),
    ("9000", "St. Gallen", "SG"),
    ("5000", "Aarau", "AG"),
    ("6300", "Zug", "ZG"),
    ("8400", "Winterthur", "ZH"),
    ("2502", "Biel/Bienne", "BE"),
    ("7000", "Chur", "GR"),
];
const FIRST: &[&str] = &[
    "Anna", "Luca", "Sarah", "Marco", "Laura", "David", "Nina", "Simon", "Lea", "Jonas", "Mia",
    "Reto", "Sandra", "Urs", "Claudia", "Beat",
];
const LAST: &[&str] = &[
    "Müller",
    "Meier",
    "Schmid",
    "Keller",
    "Weber",
    "Huber",
    "Schneider",
    "Steiner",
    "Fischer",
    "Brunner",
    "Baumann",
    "Gerber",
    "Frei",
    "Moser",
];
const STREETS: &[&str] = &[
    "Bahnhofstrasse",
    "Hauptgasse",
    "Seestrasse",
    "Dorfstrasse",
    "Industriestrasse",
    "Marktplatz",
];
const NOTES: &[&str] = &[
    "Wants to move their shop to a managed server before Christmas.",
    "Asked for a quote for 20 additional mailboxes.",
    "Pays reliably; prefers invoices by e-mail.",
    "Had DNS trouble after the domain transfer; solved by phone.",
    "Interested in daily off-site backups.",
    "Contract renewal due in spring; offer loyalty discount.",
];
const TAGS: &[&str] = &[
    "hosting",
    "vip",
    "webshop",
    "mail",
    "reseller-lead",
    "backup",
    "domains",
];

/// Seed the demo tenant (once) and set a fresh owner password.
pub async fn seed(db: &Db, config: &Config, clock: &dyn Clock) -> Result<DemoLogin> {
    let now = clock.now_ms();
    let password = crate::auth::random_secret()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect::<String>();
    if let Some(t) = crate::tenants::find(db, DEMO_SLUG).await? {
        let hash = password::hash(&password).await?;
        sqlx::query("UPDATE users SET password_hash = $3, status = 'active' WHERE tenant_id = $1 AND email_norm = $2")
            .bind(&t.id)
            .bind(DEMO_EMAIL)
            .bind(&hash)
            .execute(db.pool())
            .await?;
        return Ok(DemoLogin {
            email: DEMO_EMAIL.into(),
            password,
        });
    }
    if config.mode == Mode::SelfHosted && !crate::tenants::list(db).await?.is_empty() {
        return Err(Error::new(
            Code::Conflict,
            "this database already holds a tenant; run the demo on a fresh data dir (KONTOR_DATA_DIR)",
        ));
    }
    let registry = PermissionRegistry::default();
    let owner = NewUser {
        email: DEMO_EMAIL.into(),
        name: "Demo Admin".into(),
        role: Role::Owner,
        password: password.clone(),
        locale: None,
        customer_id: None,
    };
    let (tenant, _) =
        crate::tenants::create(db, &registry, config.mode, "Demo", owner, now).await?;
    // The tenant is created as "Demo" so that its slug is `demo`; show a nicer name.
    sqlx::query("UPDATE tenants SET name = 'Demo Hosting AG' WHERE id = $1")
        .bind(&tenant.id)
        .execute(db.pool())
        .await?;
    let tenant_id = TenantId::from_trusted(tenant.id);
    let mut tx = db.begin().await?;
    let staff_pw = format!("{password}-staff");
    users::create(
        &mut tx,
        &tenant_id,
        &NewUser {
            email: "staff@demo.kontor.test".into(),
            name: "Petra Staff".into(),
            role: Role::Staff,
            password: staff_pw.clone(),
            locale: Some("de".into()),
            customer_id: None,
        },
        now,
    )
    .await?;
    let reseller = users::create(
        &mut tx,
        &tenant_id,
        &NewUser {
            email: "reseller@demo.kontor.test".into(),
            name: "Rolf Reseller".into(),
            role: Role::Reseller,
            password: staff_pw.clone(),
            locale: Some("en".into()),
            customer_id: None,
        },
        now,
    )
    .await?;

    let mut first_customer = None;
    for i in 0..50usize {
        let (zip, city, region) = CITIES[i % CITIES.len()];
        let first = FIRST[(i * 7) % FIRST.len()];
        let last = LAST[(i * 5 + 3) % LAST.len()];
        let company = (i % 6 != 5).then(|| {
            format!(
                "{} {} {}",
                PREFIXES[i % PREFIXES.len()],
                TRADES[(i * 3) % TRADES.len()],
                FORMS[(i / 3) % FORMS.len()]
            )
        });
        let domain = company
            .as_deref()
            .map(|c| crate::tenants::slugify(c).replace('-', ""))
            .unwrap_or_else(|| format!("{}{}", first.to_lowercase(), i));
        let data = CustomerData {
            company: company.clone(),
            contact_name: Some(format!("{first} {last}")),
            email: Some(format!("info@{domain}.ch")),
            phone: Some(format!("+41 {} {:03} {:02} {:02}", [44, 31, 61, 41, 71][i % 5], 100 + i * 13 % 900, i % 100, (i * 7) % 100)),
            street: Some(format!("{} {}", STREETS[i % STREETS.len()], 1 + i % 80)),
            postal_code: Some(zip.into()),
            city: Some(city.into()),
            region: Some(region.into()),
            country: Some("CH".into()),
            tags: vec![TAGS[i % TAGS.len()].to_string(), TAGS[(i * 3 + 1) % TAGS.len()].to_string()]
                .into_iter()
                .fold(Vec::new(), |mut v, t| {
                    if !v.contains(&t) {
                        v.push(t);
                    }
                    v
                }),
            custom_fields: serde_json::json!({ "customer_since": 2015 + (i % 11) as i64, "plan": (["Basic", "Business", "Premium"][i % 3]) })
                .as_object()
                .cloned()
                .unwrap_or_default(),
            status: if i % 13 == 12 { "archived".into() } else { "active".into() },
            reseller_id: (i % 8 == 0).then(|| reseller.id.clone()),
        };
        let created = now - ((50 - i as i64) * 86_400_000 * 7);
        let id = insert_tx(&mut tx, &tenant_id, &data, None, "core", "demo", created).await?;
        first_customer.get_or_insert_with(|| id.clone());
        for c in 0..(1 + i % 3) {
            let cf = FIRST[(i + c * 5) % FIRST.len()];
            sqlx::query(
                "INSERT INTO contacts (id, tenant_id, customer_id, name, email, phone, position, is_primary, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
            )
            .bind(new_id())
            .bind(tenant_id.as_str())
            .bind(id.as_str())
            .bind(format!("{cf} {last}"))
            .bind(format!("{}.{}@{domain}.ch", cf.to_lowercase(), last.to_lowercase().replace('ü', "ue")))
            .bind(format!("+41 79 {:03} {:02} {:02}", 200 + i, c * 11, i % 90))
            .bind(["Geschäftsführung", "Buchhaltung", "IT", "Marketing"][(i + c) % 4])
            .bind(i64::from(c == 0))
            .bind(created)
            .execute(&mut *tx)
            .await?;
        }
        for n in 0..(1 + i % 2) {
            let at = created + (n as i64 + 1) * 86_400_000;
            sqlx::query(
                "INSERT INTO notes (id, tenant_id, customer_id, author_id, body, created_at, updated_at) VALUES ($1, $2, $3, NULL, $4, $5, $5)",
            )
            .bind(new_id())
            .bind(tenant_id.as_str())
            .bind(id.as_str())
            .bind(NOTES[(i + n) % NOTES.len()])
            .bind(at)
            .execute(&mut *tx)
            .await?;
            timeline::add_tx(
                &mut tx,
                &tenant_id,
                &id,
                timeline::Entry {
                    source: "core",
                    kind: "note.added",
                    summary: format!("Note: {}", NOTES[(i + n) % NOTES.len()]),
                    data: serde_json::json!({}),
                    actor_id: None,
                },
                at,
            )
            .await?;
        }
        timeline::add_tx(
            &mut tx,
            &tenant_id,
            &id,
            timeline::Entry {
                source: "core",
                kind: "call.logged",
                summary: format!("Phone call with {first} {last}"),
                data: serde_json::json!({ "minutes": 5 + i % 20 }),
                actor_id: None,
            },
            created + 3 * 86_400_000,
        )
        .await?;
    }
    if let Some(cid) = first_customer {
        users::create(
            &mut tx,
            &tenant_id,
            &NewUser {
                email: "portal@demo.kontor.test".into(),
                name: "Portal Customer".into(),
                role: Role::Customer,
                password: staff_pw,
                locale: Some("de".into()),
                customer_id: Some(cid.to_string()),
            },
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(DemoLogin {
        email: DEMO_EMAIL.into(),
        password,
    })
}
