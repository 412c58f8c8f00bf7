//! The install, step by step. First every answer is settled and checked
//! (nothing written yet), then preflight, then the steps that change
//! things, each through the `kontor` library: database and migrations,
//! first admin, base settings, license, modules, `kontor.toml`, smoke test,
//! systemd unit, summary.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kontor::auth::roles::PermissionRegistry;
use kontor::auth::users::NewUser;
use kontor::auth::Role;
use kontor::clock::{SharedClock, SystemClock};
use kontor::config::Mode;
use kontor::db::Db;
use kontor::ids::TenantId;
use kontor::license::{store, KeySet};
use kontor::modules::manifest::Manifest;
use kontor::modules::registry;
use serde_json::json;

use crate::answers::{Answers, DbKind};
use crate::database;
use crate::detect::{self, Existing};
use crate::preflight;
use crate::prompt::Ui;
use crate::write_config;

/// How the installer was asked to run (the non-answer flags).
#[derive(Debug, Clone)]
pub struct Options {
    /// Where `kontor.toml` goes.
    pub config: PathBuf,
    /// Change settings, license, modules and addresses of an installation.
    pub reconfigure: bool,
    /// Re-run migrations, the license row, bundled modules and the smoke test.
    pub repair: bool,
    /// Write a systemd unit.
    pub systemd: bool,
    /// Where the unit goes.
    pub systemd_dir: PathBuf,
    /// The `kontor` binary the unit starts.
    pub kontor_bin: PathBuf,
    /// The user the unit runs as.
    pub service_user: String,
    /// Skip starting the server at the end.
    pub skip_smoke_test: bool,
    /// Least free disk space, in MiB.
    pub min_free_mb: u64,
}

/// What an install did, for the summary and for tests.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Nothing was changed (an existing install, not asked to change).
    pub unchanged: bool,
    /// The URL to open.
    pub url: String,
    /// The admin's e-mail, when one was created.
    pub admin_email: Option<String>,
    /// The generated password, when one was generated (printed once).
    pub generated_password: Option<String>,
}

/// Every answer settled and checked.
#[derive(Debug, Clone)]
struct Plan {
    data_dir: PathBuf,
    kind: DbKind,
    database_url: String,
    listen: SocketAddr,
    public_url: url::Url,
    admin: Option<AdminPlan>,
    settings: Vec<(&'static str, String)>,
    company: Option<String>,
    license: Option<PathBuf>,
    modules: Option<Vec<String>>,
    smtp: Option<SmtpPlan>,
}

/// The relay to test and write to `kontor.toml`, and where the test goes.
#[derive(Debug, Clone)]
struct SmtpPlan {
    settings: kontor::mail::SmtpSettings,
    test_to: String,
}

#[derive(Debug, Clone)]
struct AdminPlan {
    email: String,
    name: String,
    password: String,
    generated: bool,
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

/// A random password the policy accepts: 20 letters and digits (~119 bits).
pub fn generate_password() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    (0..20)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// Ask (interactive) or take the default; `flag` names the flag in errors.
fn answer(
    ui: &Ui,
    given: Option<String>,
    prompt: &str,
    default: Option<&str>,
    flag: &str,
) -> anyhow::Result<String> {
    match (given, ui.interactive, default) {
        (Some(v), _, _) => Ok(v),
        (None, true, d) => ui.text(prompt, d),
        (None, false, Some(d)) => Ok(d.to_string()),
        (None, false, None) => anyhow::bail!("{flag} is required with --non-interactive"),
    }
}

fn check_setting(key: &str, value: &str, flag: &str) -> anyhow::Result<()> {
    kontor::settings::validate(key, &json!(value)).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
}

/// Settle every answer: given, asked or defaulted; then checked, so a bad
/// value stops the run before anything is written.
fn plan(
    a: Answers,
    ui: &Ui,
    existing: Option<&Existing>,
    with_admin: bool,
) -> anyhow::Result<Plan> {
    let a_smtp = SmtpAnswers {
        host: a.smtp_host.clone(),
        port: a.smtp_port,
        tls: a.smtp_tls.clone(),
        username: a.smtp_username.clone(),
        password: a.smtp_password.clone(),
        from: a.smtp_from.clone(),
        test_to: a.smtp_test_to.clone(),
    };
    let admin_email_answer = a.admin_email.clone();
    let old = existing.map(|e| &e.config);
    let data_dir_default = old
        .map(|c| c.data_dir.display().to_string())
        .unwrap_or_else(|| "kontor-data".to_string());
    let data_dir = match a.data_dir {
        Some(d) => d,
        None => PathBuf::from(answer(
            ui,
            None,
            "Data directory",
            Some(&data_dir_default),
            "--data-dir",
        )?),
    };
    let data_dir = absolute(&data_dir)?;

    let old_kind = old.map(|c| {
        if c.database_url.starts_with("sqlite:") {
            DbKind::Sqlite
        } else {
            DbKind::Postgres
        }
    });
    let kind = match (a.database, &a.database_url) {
        (Some(k), _) => k,
        (None, Some(url)) if url.starts_with("postgres") => DbKind::Postgres,
        (None, _) if old_kind.is_some() => old_kind.unwrap_or(DbKind::Sqlite),
        (None, _) if ui.interactive => {
            match ui
                .text("Database (sqlite or postgres)", Some("sqlite"))?
                .as_str()
            {
                "postgres" | "postgresql" | "pg" => DbKind::Postgres,
                "sqlite" => DbKind::Sqlite,
                other => anyhow::bail!("unknown database `{other}`: answer sqlite or postgres"),
            }
        }
        (None, _) => DbKind::Sqlite,
    };
    let database_url = match kind {
        DbKind::Sqlite => match a.database_url {
            Some(u) if u.starts_with("sqlite:") => u,
            Some(_) => anyhow::bail!("--database sqlite with a non-sqlite --database-url"),
            None => format!("sqlite://{}", data_dir.join("kontor.db").display()),
        },
        DbKind::Postgres => {
            let default = old.map(|c| c.database_url.clone());
            let url = match (a.database_url, default) {
                (Some(u), _) => u,
                (None, Some(u)) if u.starts_with("postgres") => u,
                (None, _) => answer(
                    ui,
                    None,
                    "PostgreSQL URL",
                    Some("postgres://kontor@127.0.0.1:5432/kontor"),
                    "--database-url",
                )?,
            };
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                anyhow::bail!("--database-url must start with postgres://");
            }
            database::pg_target(&url)?;
            url
        }
    };

    let listen_default = old
        .map(|c| c.listen.to_string())
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let listen_text = answer(
        ui,
        a.listen,
        "Listen address",
        Some(&listen_default),
        "--listen",
    )?;
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        anyhow::anyhow!("--listen {listen_text}: expected host:port, e.g. 127.0.0.1:8080")
    })?;
    let url_default = old
        .and_then(|c| c.public_url.as_ref().map(|u| u.to_string()))
        .unwrap_or_else(|| format!("http://{listen}/"));
    let public_text = answer(
        ui,
        a.public_url,
        "Public URL",
        Some(&url_default),
        "--public-url",
    )?;
    let public_url = url::Url::parse(&public_text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| {
            anyhow::anyhow!("--public-url {public_text}: expected an http:// or https:// URL")
        })?;

    let admin = if with_admin {
        let email = answer(
            ui,
            a.admin_email,
            "Administrator e-mail",
            None,
            "--admin-email",
        )?;
        if !email.contains('@') || email.len() < 3 {
            anyhow::bail!("--admin-email {email}: not an e-mail address");
        }
        let name = answer(
            ui,
            a.admin_name,
            "Administrator name",
            Some("Administrator"),
            "--admin-name",
        )?;
        let given = match a.admin_password {
            Some(p) => Some(p),
            None if ui.interactive => Some(ui.password(
                "Administrator password (at least 10 characters; empty: generate one)",
                true,
            )?)
            .filter(|p| !p.is_empty()),
            None => None,
        };
        let (password, generated) = match given {
            Some(p) => {
                kontor::auth::password::check_policy(&p)
                    .map_err(|e| anyhow::anyhow!("--admin-password: {e}"))?;
                (p, false)
            }
            None => (generate_password(), true),
        };
        Some(AdminPlan {
            email,
            name,
            password,
            generated,
        })
    } else {
        None
    };

    // Settings: on a reconfigure only what was given (or asked) changes.
    let ask_settings = with_admin || ui.interactive;
    let mut settings = Vec::new();
    let company = match a.company {
        Some(c) => Some(c),
        None if ui.interactive => Some(ui.text("Company name", Some("Kontor"))?),
        None if with_admin => Some("Kontor".to_string()),
        None => None,
    };
    if let Some(c) = &company {
        check_setting("company.name", c, "--company")?;
        if c.trim().is_empty() {
            anyhow::bail!("--company must not be empty");
        }
        settings.push(("company.name", c.clone()));
    }
    for (given, key, prompt, default, flag) in [
        (
            a.language,
            "locale.default",
            "Language (de or en)",
            "de",
            "--language",
        ),
        (
            a.timezone,
            "locale.timezone",
            "Time zone",
            "Europe/Zurich",
            "--timezone",
        ),
        (
            a.currency,
            "billing.currency",
            "Currency",
            "CHF",
            "--currency",
        ),
    ] {
        let value = match given {
            Some(v) => Some(v),
            None if ask_settings => Some(answer(ui, None, prompt, Some(default), flag)?),
            None => None,
        };
        if let Some(v) = value {
            check_setting(key, &v, flag)?;
            settings.push((key, v));
        }
    }

    let license = match a.license {
        Some(p) => Some(p),
        None if ui.interactive => {
            let p = ui.optional_text("License file (empty: start the 30-day trial)")?;
            (!p.is_empty()).then(|| PathBuf::from(p))
        }
        None => None,
    };
    if let Some(p) = &license {
        if !p.is_file() {
            anyhow::bail!("--license {}: no such file", p.display());
        }
    }

    let bundled = bundled_manifests()?;
    let modules = match a.modules {
        Some(m) => Some(m),
        None if ui.interactive && !bundled.is_empty() => {
            let all: Vec<&str> = bundled.iter().map(|m| m.id.as_str()).collect();
            let text = ui.text(
                "Modules to enable (comma-separated, `none` for none)",
                Some(&all.join(",")),
            )?;
            Some(text.split(',').map(|s| s.trim().to_string()).collect())
        }
        None => None,
    };
    let modules = modules.map(|m| {
        m.into_iter()
            .filter(|s| !s.is_empty() && s != "none")
            .collect::<Vec<_>>()
    });
    if let Some(list) = &modules {
        for id in list {
            if !bundled.iter().any(|m| &m.id == id) {
                anyhow::bail!(
                    "--modules: `{id}` is not a bundled module; bundled: {}",
                    bundled
                        .iter()
                        .map(|m| m.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
    }

    let admin_email = admin
        .as_ref()
        .map(|x| x.email.clone())
        .or(admin_email_answer);
    let smtp = plan_smtp(&a_smtp, ui, admin_email.as_deref())?;

    Ok(Plan {
        smtp,
        data_dir,
        kind,
        database_url,
        listen,
        public_url,
        admin,
        settings,
        company,
        license,
        modules,
    })
}

struct SmtpAnswers {
    host: Option<String>,
    port: Option<u16>,
    tls: Option<String>,
    username: Option<String>,
    password: Option<String>,
    from: Option<String>,
    test_to: Option<String>,
}

/// The SMTP answers: none (skipped) unless a host is given or typed.
fn plan_smtp(
    a: &SmtpAnswers,
    ui: &Ui,
    admin_email: Option<&str>,
) -> anyhow::Result<Option<SmtpPlan>> {
    let host = match &a.host {
        Some(h) => h.clone(),
        None if ui.interactive => {
            ui.optional_text("SMTP host for outgoing e-mail (empty: skip)")?
        }
        None => String::new(),
    };
    if host.trim().is_empty() {
        return Ok(None);
    }
    let tls_text = answer(
        ui,
        a.tls.clone(),
        "SMTP TLS (starttls, tls or none)",
        Some("starttls"),
        "--smtp-tls",
    )?;
    let tls = kontor::mail::SmtpTls::parse(&tls_text)
        .ok_or_else(|| anyhow::anyhow!("--smtp-tls {tls_text}: expected starttls, tls or none"))?;
    let port = match a.port {
        Some(p) => p,
        None if ui.interactive => {
            let text = ui.text("SMTP port", Some(&tls.default_port().to_string()))?;
            text.parse()
                .map_err(|_| anyhow::anyhow!("--smtp-port {text}: expected a port number"))?
        }
        None => tls.default_port(),
    };
    let username = match &a.username {
        Some(u) => Some(u.clone()),
        None if ui.interactive => Some(ui.optional_text("SMTP user name (empty: no login)")?),
        None => None,
    }
    .filter(|u| !u.is_empty());
    let password = match (&username, &a.password) {
        (None, _) => None,
        (Some(_), Some(p)) => Some(p.clone()),
        (Some(_), None) if ui.interactive => Some(ui.password("SMTP password", false)?),
        (Some(_), None) => {
            anyhow::bail!("--smtp-username needs --smtp-password (or KONTOR_SMTP_PASSWORD)")
        }
    };
    let from_text = answer(
        ui,
        a.from.clone(),
        "Sender address (Name <address>)",
        None,
        "--smtp-from",
    )?;
    let from = kontor::mail::parse_mailbox(&from_text)
        .map_err(|e| anyhow::anyhow!("--smtp-from {from_text}: {e}"))?;
    let test_to = match (&a.test_to, admin_email) {
        (Some(t), _) => t.clone(),
        (None, Some(admin)) if !ui.interactive => admin.to_string(),
        (None, admin) => answer(
            ui,
            None,
            "Send the test e-mail to",
            admin,
            "--smtp-test-to (or --admin-email)",
        )?,
    };
    Ok(Some(SmtpPlan {
        settings: kontor::mail::SmtpSettings {
            host: host.trim().to_string(),
            port,
            tls,
            username,
            password: password.map(kontor::mail::SmtpPassword::new),
            from,
        },
        test_to,
    }))
}

/// The modules built into this installer's (and the server's) binary.
pub fn bundled_manifests() -> anyhow::Result<Vec<Manifest>> {
    kontor_runtime::bundled::ALL
        .iter()
        .map(|(text, _)| {
            Manifest::parse("bundled module.toml", text).map_err(|e| anyhow::anyhow!("{e}"))
        })
        .collect()
}

/// Run the installer.
pub async fn run(answers: Answers, options: Options, ui: Ui) -> anyhow::Result<Outcome> {
    let config_path = absolute(&options.config)?;
    let existing = detect::find(&config_path).await?;
    if let Some(e) = &existing {
        if e.is_complete() && !options.reconfigure && !options.repair {
            let url = e
                .config
                .public_url
                .as_ref()
                .map(|u| u.to_string())
                .unwrap_or_else(|| format!("http://{}/", e.config.listen));
            println!(
                "Kontor is already installed here ({}, {} user(s), database {}).\nNothing was changed. Run again with --reconfigure to change settings, license, modules or addresses, or with --repair to re-run migrations and checks. Data is never wiped.\nOpen {url}",
                config_path.display(),
                e.users,
                database::redact(&e.config.database_url)
            );
            return Ok(Outcome {
                unchanged: true,
                url,
                ..Outcome::default()
            });
        }
    }
    let installed = existing.as_ref().is_some_and(Existing::is_complete);
    if options.repair && installed {
        return repair(existing, &options, &ui).await;
    }
    let clock: SharedClock = Arc::new(SystemClock);

    ui.step(if installed {
        "Reconfiguring Kontor"
    } else {
        "Installing Kontor"
    });
    let plan = plan(answers, &ui, existing.as_ref(), !installed)?;

    ui.step("Preflight");
    let mut problems = Vec::new();
    problems.extend(preflight::data_dir_writable(&plan.data_dir));
    if problems.is_empty() {
        problems.extend(preflight::disk_space(&plan.data_dir, options.min_free_mb));
    }
    problems.extend(preflight::config_dir_writable(&config_path));
    let same_listen = existing
        .as_ref()
        .is_some_and(|e| e.config.listen == plan.listen);
    if !options.skip_smoke_test && !same_listen {
        problems.extend(preflight::port_free(plan.listen));
    }
    if plan.kind == DbKind::Postgres {
        problems.extend(database::check_postgres(&plan.database_url).await);
    }
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(|p| format!("  * {p}")).collect();
        anyhow::bail!(
            "preflight found {} problem(s); nothing was changed:\n{}",
            problems.len(),
            list.join("\n")
        );
    }
    ui.note("data dir writable, port free, disk space and database reachable");

    // Before anything is written: a relay that does not work changes nothing.
    if let Some(smtp) = &plan.smtp {
        ui.step("E-mail (SMTP)");
        let bar = ui.spinner("sending a test e-mail");
        let sent = kontor::mail::send_test(&smtp.settings, &smtp.test_to).await;
        bar.finish_and_clear();
        sent.map_err(|e| {
            anyhow::anyhow!(
                "the test e-mail through {}:{} ({}) failed: {e}. Nothing was changed; correct the --smtp-* answers, or leave out --smtp-host to set e-mail up later",
                smtp.settings.host,
                smtp.settings.port,
                smtp.settings.tls.as_str()
            )
        })?;
        ui.note(&format!(
            "test e-mail sent to {} through {}:{}",
            smtp.test_to, smtp.settings.host, smtp.settings.port
        ));
    }

    ui.step("Database");
    if plan.kind == DbKind::Postgres {
        match database::ensure_postgres(&plan.database_url).await? {
            database::PgDatabase::Created => ui.note(&format!(
                "created database {}",
                database::pg_target(&plan.database_url)?.database
            )),
            database::PgDatabase::Existing => ui.note("database exists"),
        }
    }
    let bar = ui.spinner("applying migrations");
    let db = Db::connect(&plan.database_url).await?;
    db.migrate().await?;
    bar.finish_and_clear();
    ui.note(&format!(
        "migrations applied ({})",
        database::redact(&plan.database_url)
    ));

    // The config comes before the steps that read it (licensing binds to
    // the public URL's host), written exactly as the server will read it.
    ui.step("Configuration");
    write_config::write(
        &config_path,
        &write_config::Managed {
            database_url: plan.database_url.clone(),
            data_dir: plan.data_dir.display().to_string(),
            listen: plan.listen.to_string(),
            public_url: plan.public_url.to_string(),
            smtp: plan.smtp.as_ref().map(|s| s.settings.clone()),
        },
    )?;
    let config = detect::load_config(&config_path)?;
    ui.note(&format!("wrote {} (mode 0600)", config_path.display()));

    let now = clock.now_ms();
    let mut outcome = Outcome {
        url: plan.public_url.to_string(),
        ..Outcome::default()
    };
    let tenant = match &plan.admin {
        Some(admin) => {
            ui.step("First administrator");
            let owner = NewUser {
                email: admin.email.clone(),
                name: admin.name.clone(),
                role: Role::Owner,
                password: admin.password.clone(),
                locale: plan
                    .settings
                    .iter()
                    .find(|(k, _)| *k == "locale.default")
                    .map(|(_, v)| v.clone()),
                customer_id: None,
            };
            let existing_tenant = kontor::tenants::list(&db).await?.into_iter().next();
            let tenant = match existing_tenant {
                Some(t) => {
                    // A half-finished earlier run made the tenant; add the admin.
                    let id = TenantId::from_trusted(t.id.clone());
                    let mut tx = db.begin().await?;
                    kontor::auth::users::create(&mut tx, &id, &owner, now).await?;
                    tx.commit().await?;
                    id
                }
                None => {
                    let name = plan.company.clone().unwrap_or_else(|| "Kontor".into());
                    let (t, _) = kontor::tenants::create(
                        &db,
                        &PermissionRegistry::default(),
                        Mode::SelfHosted,
                        &name,
                        owner,
                        now,
                    )
                    .await?;
                    TenantId::from_trusted(t.id)
                }
            };
            ui.note(&format!("created {} (owner)", admin.email));
            outcome.admin_email = Some(admin.email.clone());
            if admin.generated {
                outcome.generated_password = Some(admin.password.clone());
            }
            tenant
        }
        None => {
            let t = kontor::tenants::list(&db)
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| anyhow::anyhow!("the installation has users but no tenant"))?;
            TenantId::from_trusted(t.id)
        }
    };

    if !plan.settings.is_empty() {
        ui.step("Base settings");
        for (key, value) in &plan.settings {
            kontor::settings::set(&db, &tenant, key, &json!(value), now).await?;
            ui.note(&format!("{key} = {value}"));
        }
    }

    ui.step("License");
    let keys = KeySet::builtin();
    let hostname = plan.public_url.host_str().map(str::to_string);
    match &plan.license {
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            let status = store::install(&db, &keys, hostname.as_deref(), &bytes, now)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "the license {} was refused: {e} [{}]; nothing about the license changed",
                        path.display(),
                        e.code().as_str()
                    )
                })?;
            if let Some(license) = &status.license {
                for (label, value) in kontor::license::describe::describe(license) {
                    ui.note(&format!("{:<14}{value}", format!("{label}:")));
                }
            }
            ui.note(&status.explanation());
        }
        None => {
            store::ensure(&db, now).await?;
            let status = store::status(&db, &keys, hostname.as_deref(), now).await?;
            ui.note(&status.explanation());
        }
    }

    ui.step("Modules");
    let enabled = apply_modules(&db, &config, clock.clone(), plan.modules.as_deref(), &ui).await?;
    ui.note(&format!(
        "enabled: {}",
        if enabled.is_empty() {
            "none".to_string()
        } else {
            enabled.join(", ")
        }
    ));
    db.close().await;
    detect::record_version(&plan.data_dir, &kontor::VERSION.parse()?)?;

    if !options.skip_smoke_test {
        ui.step("Smoke test");
        let bar = ui.spinner("starting the server");
        let result = if same_listen
            && crate::smoke::check_running(&base(&config.listen))
                .await
                .is_ok()
        {
            Ok(())
        } else {
            crate::smoke::run(config.clone()).await
        };
        bar.finish_and_clear();
        result.map_err(|e| {
            anyhow::anyhow!("smoke test failed: {e:#}. The install is in place; fix the cause and run `kontor-install --repair`")
        })?;
        ui.note("/health/ready and the login page answer");
    }

    if options.systemd {
        ui.step("systemd");
        let unit = crate::systemd::write(
            &options.systemd_dir,
            &absolute(&options.kontor_bin)?,
            &config_path,
            &plan.data_dir,
            &options.service_user,
        )?;
        ui.note(&format!(
            "wrote {}; start it with `systemctl daemon-reload && systemctl enable --now kontor`",
            unit.display()
        ));
    }

    summary(&outcome, &config_path, &plan);
    Ok(outcome)
}

fn base(listen: &SocketAddr) -> String {
    format!("http://{listen}")
}

fn summary(outcome: &Outcome, config_path: &Path, plan: &Plan) {
    println!("\n==> Done\n");
    println!("    Kontor is installed. Open {}", outcome.url);
    if let Some(email) = &outcome.admin_email {
        println!("    Log in as     {email}");
    }
    if let Some(password) = &outcome.generated_password {
        println!("    Password      {password}");
        println!("                  (generated; shown only now — store it in a password manager)");
    }
    println!("    Config        {}", config_path.display());
    println!("    Data          {}", plan.data_dir.display());
    println!("    Database      {}", database::redact(&plan.database_url));
    println!(
        "    Start it      kontor serve --config {}   (or the systemd unit)",
        config_path.display()
    );
}

/// `--repair`: migrations, the license row, bundled modules, smoke test.
/// Touches no setting, user or license choice.
async fn repair(existing: Option<Existing>, options: &Options, ui: &Ui) -> anyhow::Result<Outcome> {
    let Some(e) = existing else {
        anyhow::bail!("nothing to repair: no installation found");
    };
    let clock: SharedClock = Arc::new(SystemClock);
    ui.step("Repair");
    let db = Db::connect(&e.config.database_url).await?;
    db.migrate().await?;
    ui.note("migrations applied");
    store::ensure(&db, clock.now_ms()).await?;
    let host = module_host(&db, &e.config, clock.clone())?;
    registry::sync_bundled(&db, &host, Mode::SelfHosted, clock.now_ms()).await?;
    ui.note("bundled modules present");
    db.close().await;
    if detect::recorded_version(&e.config.data_dir).is_none() {
        detect::record_version(&e.config.data_dir, &kontor::VERSION.parse()?)?;
    }
    if !options.skip_smoke_test {
        let running = crate::smoke::check_running(&base(&e.config.listen)).await;
        if running.is_err() {
            crate::smoke::run(e.config.clone()).await?;
        }
        ui.note("/health/ready and the login page answer");
    }
    let url = e
        .config
        .public_url
        .as_ref()
        .map(|u| u.to_string())
        .unwrap_or_else(|| format!("http://{}/", e.config.listen));
    println!("\nRepaired. Open {url}");
    Ok(Outcome {
        url,
        ..Outcome::default()
    })
}

fn module_host(
    db: &Db,
    config: &kontor::config::Config,
    clock: SharedClock,
) -> anyhow::Result<kontor::modules::host::ModuleHost> {
    Ok(kontor::modules::host::ModuleHost::new(
        db.clone(),
        clock,
        PermissionRegistry::default(),
        Some(config.data_dir.join("cache").join("modules")),
    )?
    .with_licensing(kontor::license::Licensing::from_config(config)))
}

/// Install the bundled modules, then enable `chosen` (all when `None`)
/// with their dependencies — shown, resolved against the installed
/// versions by semver — and disable the rest. Returns the enabled ids.
async fn apply_modules(
    db: &Db,
    config: &kontor::config::Config,
    clock: SharedClock,
    chosen: Option<&[String]>,
    ui: &Ui,
) -> anyhow::Result<Vec<String>> {
    let now = clock.now_ms();
    let host = module_host(db, config, clock)?;
    registry::sync_bundled(db, &host, Mode::SelfHosted, now).await?;
    let graph = registry::graph(db).await?;
    let Some(chosen) = chosen else {
        registry::grant_trials_for_installed(db, now).await?;
        return Ok(graph
            .iter()
            .filter(|(_, m)| m.enabled)
            .map(|(id, _)| id.clone())
            .collect());
    };
    // The closure of the chosen modules over required dependencies.
    let mut want: BTreeSet<String> = BTreeSet::new();
    let mut queue: Vec<String> = chosen.to_vec();
    while let Some(id) = queue.pop() {
        if !want.insert(id.clone()) {
            continue;
        }
        let installed = graph
            .get(&id)
            .ok_or_else(|| anyhow::anyhow!("module {id} is not installed"))?;
        for dep in installed
            .manifest
            .dependencies
            .iter()
            .filter(|d| !d.optional)
        {
            let found = graph.get(&dep.id).ok_or_else(|| {
                anyhow::anyhow!(
                    "{id} needs {} {}, which is not available",
                    dep.id,
                    dep.version
                )
            })?;
            if !dep.version.matches(&found.manifest.version) {
                anyhow::bail!(
                    "{id} needs {} {}, but {} is available",
                    dep.id,
                    dep.version,
                    found.manifest.version
                );
            }
            ui.note(&format!(
                "{id} needs {} {} -> {} {} (enabled too)",
                dep.id, dep.version, dep.id, found.manifest.version
            ));
            queue.push(dep.id.clone());
        }
    }
    // Disable what is not wanted, dependents first; enable what is,
    // dependencies first: repeat passes until nothing moves.
    let mut state: BTreeMap<String, bool> = graph
        .iter()
        .map(|(id, m)| (id.clone(), m.enabled))
        .collect();
    loop {
        let mut moved = false;
        let mut last_error = None;
        for (id, installed) in graph.iter() {
            let target = want.contains(id);
            if state.get(id) == Some(&target) {
                continue;
            }
            let result = if target {
                registry::enable(db, &host, id, now).await
            } else {
                registry::disable(db, &host, id, now).await
            };
            match result {
                Ok(()) => {
                    state.insert(id.clone(), target);
                    moved = true;
                }
                Err(e) => last_error = Some(format!("{} {}: {e}", id, installed.manifest.version)),
            }
        }
        if !moved {
            if let Some(e) = last_error {
                anyhow::bail!("cannot set the module choice: {e}");
            }
            break;
        }
    }
    registry::grant_trials_for_installed(db, now).await?;
    Ok(state
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(id, _)| id)
        .collect())
}
