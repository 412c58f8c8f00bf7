//! `kontor backup` → wipe → `kontor restore` gives back every row of every
//! table — customers, module records, the license, settings, secrets —
//! compared in full, not sampled, on SQLite and on PostgreSQL.

use std::collections::{BTreeMap, HashMap};

use kontor::backup::{BackupOptions, RestoreOptions};
use kontor::db::{Backend, Db};
use kontor::ids::TenantId;
use kontor::license::payload::FORMAT_VERSION;
use kontor::license::{Edition, LicensePayload, Licensee, Limits, ModuleGrant};
use kontor::modules::manifest::CollectionDecl;
use kontor::modules::records::{self, Quota, RecordScope};
use serde_json::json;

use crate::both;

/// Every row of every table as sorted text.
async fn dump(url: &str) -> BTreeMap<String, Vec<String>> {
    let db = Db::connect(url).await.unwrap();
    let out = kontor::db::testing::dump_tables(&db).await.unwrap();
    db.close().await;
    out
}

async fn wipe(db: &Db, url: &str) {
    match db.backend() {
        Backend::Sqlite => {
            let file = url.trim_start_matches("sqlite://");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{file}{suffix}"));
            }
        }
        Backend::Postgres => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
            )
            .fetch_all(db.pool())
            .await
            .unwrap();
            let list: Vec<String> = tables.iter().map(|t| format!("\"{t}\"")).collect();
            sqlx::query(&format!("DROP TABLE {} CASCADE", list.join(", ")))
                .execute(db.pool())
                .await
                .unwrap();
        }
    }
}

both!(
    self_hosted,
    backup_wipe_restore_gives_back_every_row,
    |app| {
        let db = app.state.db().clone();
        let now = app.state.now_ms();
        let url = app.state.config().database_url.clone();
        let me = app
            .call(
                reqwest::Method::GET,
                "/api/v1/auth/me",
                Some(&app.owner),
                None,
            )
            .await
            .1;
        let tenant = TenantId::from_trusted(me["tenant_id"].as_str().unwrap().to_string());

        for i in 0..5 {
            app.customer(
            &app.owner,
            json!({ "company": format!("Kunde {i} AG"), "email": format!("k{i}@example.com"), "tags": ["vip", "line\nbreak"] }),
        )
        .await;
        }
        let collections = vec![CollectionDecl {
            name: "notes".into(),
            indexes: vec![],
        }];
        let scope = RecordScope {
            tenant: &tenant,
            module_id: "hello",
            collections: &collections,
            quota: Quota::default(),
        };
        for i in 0..3 {
            records::put(
                &db,
                &scope,
                "notes",
                &format!("n{i}"),
                &json!({ "text": format!("note {i} with 'quotes' and \\ backslash") }).to_string(),
                None,
                now,
            )
            .await
            .unwrap();
        }
        kontor::settings::set(&db, &tenant, "company.name", &json!("Backup AG"), now)
            .await
            .unwrap();
        kontor::settings::set(&db, &tenant, "billing.currency", &json!("EUR"), now)
            .await
            .unwrap();
        let key =
            kontor::modules::trust::decode_signing_key(include_str!("../../keys/license-test.key"))
                .unwrap()
                .1;
        let license = kontor::license::issue(
            &key,
            &LicensePayload {
                format_version: FORMAT_VERSION,
                license_id: "L-BACKUP-1".into(),
                licensee: Licensee {
                    name: "Backup Test".into(),
                    email: "backup@example.com".into(),
                    company: None,
                },
                edition: Edition::Professional,
                issued_at: now - 86_400_000,
                valid_from: now - 86_400_000,
                expires_at: Some(now + 365 * 86_400_000),
                updates_until: None,
                instance: None,
                modules: vec![ModuleGrant {
                    id: "hello".into(),
                    version: None,
                    expires_at: None,
                }],
                limits: Limits::default(),
                grace_days: 14,
            },
        )
        .unwrap();
        kontor::license::store::install(
            &db,
            &kontor::license::KeySet::with_test_key(),
            None,
            license.as_bytes(),
            now,
        )
        .await
        .unwrap();

        let before = dump(&url).await;
        for table in [
            "customers",
            "module_records",
            "settings",
            "license_installation",
            "users",
        ] {
            assert!(!before[table].is_empty(), "{table} has rows to compare");
        }

        let dir = std::env::temp_dir().join(format!("kontor-backup-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut env = HashMap::new();
        env.insert("KONTOR_DATABASE_URL".to_string(), url.clone());
        env.insert(
            "KONTOR_DATA_DIR".to_string(),
            dir.join("data").display().to_string(),
        );
        let config = kontor::config::Config::from_sources(None, &env).unwrap();
        let archive = dir.join("backup.tar");
        let manifest =
            kontor::backup::create(&config, None, &archive, BackupOptions::default(), now)
                .await
                .unwrap();
        assert_eq!(manifest.tables["customers"], 5);

        wipe(&db, &url).await;
        assert_ne!(dump(&url).await, before, "the wipe removed the data");

        kontor::backup::restore(&config, &archive, RestoreOptions::default())
            .await
            .unwrap();
        let after = dump(&url).await;
        assert_eq!(
            after.keys().collect::<Vec<_>>(),
            before.keys().collect::<Vec<_>>()
        );
        for (table, rows) in &before {
            assert_eq!(&after[table], rows, "table {table} after restore");
        }

        // A second restore over data is refused without --force.
        let again = kontor::backup::restore(&config, &archive, RestoreOptions::default()).await;
        assert!(again.unwrap_err().to_string().contains("--force"));
        std::fs::remove_dir_all(&dir).ok();
    }
);
