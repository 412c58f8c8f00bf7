//! The `kontor` command line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::auth::roles::PermissionRegistry;
use crate::auth::users::{self, NewUser};
use crate::auth::Role;
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::config::{Config, LogFormat, Mode};
use crate::db::Db;
use crate::web::AppState;

/// Kontor: the modular CRM for service and hosting businesses.
#[derive(Debug, Parser)]
#[command(name = "kontor", version, about)]
pub struct Cli {
    /// Configuration file (default: `kontor.toml` in the working directory, if present).
    #[arg(long, global = true, env = "KONTOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (API, UI, job worker).
    Serve,
    /// Run the server with a demo tenant and sample data; prints the admin login.
    Demo,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage administrators.
    Admin {
        /// What to do.
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Manage tenants (SaaS mode).
    Tenant {
        /// What to do.
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage modules (install-wide).
    Module {
        /// What to do.
        #[command(subcommand)]
        command: ModuleCommand,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Issue, inspect and install signed license files (self-hosted).
    License {
        /// What to do.
        #[command(subcommand)]
        command: LicenseCommand,
    },
    /// Offer, list and archive the plans tenants subscribe to (SaaS operator).
    Plan {
        /// What to do.
        #[command(subcommand)]
        command: crate::subscriptions::cli::PlanCommand,
    },
    /// Tenants' subscriptions: list, activate (SaaS operator).
    Subscription {
        /// What to do.
        #[command(subcommand)]
        command: crate::subscriptions::cli::SubscriptionCommand,
    },
    /// Write a backup archive: a consistent database snapshot, the license,
    /// the encrypted module secrets and the config (secrets only if asked).
    Backup(crate::backup::cli::BackupArgs),
    /// Restore a backup archive into the configured database (server stopped).
    Restore(crate::backup::cli::RestoreArgs),
}

/// `kontor license ...`
#[derive(Debug, Subcommand)]
pub enum LicenseCommand {
    /// Vendor side: sign a license with a private key and print or write it.
    Issue(Box<LicenseIssueArgs>),
    /// Verify a license file and explain every field, or say exactly why it
    /// is invalid (exit code 1).
    Inspect {
        /// The license file.
        file: PathBuf,
    },
    /// Verify a license file and make it this installation's license; a
    /// refused file changes nothing.
    Install {
        /// The license file.
        file: PathBuf,
    },
    /// Show the installed license, the state (trial, active, grace,
    /// expired) and what it means.
    Status,
}

/// `kontor license issue ...`
#[derive(Debug, clap::Args)]
pub struct LicenseIssueArgs {
    /// The private key file (`kontor-signing-key:v1:...`).
    #[arg(long)]
    pub key: PathBuf,
    /// Licensee's name.
    #[arg(long)]
    pub licensee_name: String,
    /// Licensee's e-mail.
    #[arg(long)]
    pub email: String,
    /// Licensee's company.
    #[arg(long)]
    pub company: Option<String>,
    /// starter, professional or enterprise.
    #[arg(long)]
    pub edition: crate::license::Edition,
    /// End: RFC 3339 or YYYY-MM-DD (00:00 UTC), or `never` for a perpetual
    /// license (then --updates-until is required).
    #[arg(long)]
    pub expires: String,
    /// Perpetual licenses: until when updates are included.
    #[arg(long)]
    pub updates_until: Option<String>,
    /// Start of validity (default: now).
    #[arg(long)]
    pub valid_from: Option<String>,
    /// Modules, comma-separated: `id[@version requirement][/expiry]`, or `*`
    /// for every module.
    #[arg(long, value_delimiter = ',')]
    pub modules: Vec<crate::license::ModuleGrant>,
    /// Most users allowed.
    #[arg(long)]
    pub max_users: Option<u64>,
    /// Most customers allowed.
    #[arg(long)]
    pub max_customers: Option<u64>,
    /// Most tenants allowed.
    #[arg(long)]
    pub max_tenants: Option<u64>,
    /// Days modules keep working after expiry.
    #[arg(long, default_value_t = crate::license::payload::DEFAULT_GRACE_DAYS)]
    pub grace_days: u32,
    /// Bind to this installation id (`kontor license status` shows it).
    #[arg(long)]
    pub instance_id: Option<String>,
    /// Bind to this host name (of the installation's public URL).
    #[arg(long)]
    pub hostname: Option<String>,
    /// License id (default: a new UUID).
    #[arg(long)]
    pub license_id: Option<String>,
    /// Write the license here instead of printing it.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `kontor module ...`
#[derive(Debug, Subcommand)]
pub enum ModuleCommand {
    /// List installed modules.
    List,
    /// Install or upgrade a module from a signed `.kmod` package. The
    /// capabilities it requests (secrets, crm...) stay refused to it until
    /// accepted here or with `kontor module accept`.
    Install {
        /// The package file.
        package: PathBuf,
        /// Capabilities of the package to accept, comma-separated
        /// (`secrets,crm`).
        #[arg(long, value_delimiter = ',')]
        accept: Vec<String>,
    },
    /// Set the capabilities of an installed module an administrator
    /// accepts (replacing the earlier answer); the module can use only these.
    Accept {
        /// Module id.
        id: String,
        /// Capabilities to accept, comma-separated; none to withdraw all.
        #[arg(value_delimiter = ',')]
        capabilities: Vec<String>,
    },
    /// Enable an installed module.
    Enable {
        /// Module id.
        id: String,
    },
    /// Disable a module (its data stays).
    Disable {
        /// Module id.
        id: String,
    },
    /// Remove a module; its records stay unless `--purge`.
    Uninstall {
        /// Module id.
        id: String,
        /// Also delete the module's records.
        #[arg(long)]
        purge: bool,
    },
    /// Entitle a tenant to a module by hand (operators; licenses and
    /// subscriptions do this otherwise).
    Entitle {
        /// Module id.
        id: String,
        /// Tenant id or slug.
        #[arg(long)]
        tenant: String,
        /// Days until it ends (default: no end).
        #[arg(long)]
        days: Option<i64>,
    },
    /// Trust a publisher key (a `kontor-public-key:v1:...` file).
    Trust {
        /// The public key file.
        key: PathBuf,
    },
}

/// `kontor admin ...`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an administrator. On a self-hosted install without a tenant,
    /// this creates the tenant too, with this user as its owner.
    Create {
        /// Login e-mail.
        #[arg(long)]
        email: String,
        /// Password (at least 10 characters).
        #[arg(long, env = "KONTOR_ADMIN_PASSWORD")]
        password: String,
        /// Display name.
        #[arg(long, default_value = "Administrator")]
        name: String,
        /// Tenant id or slug (needed in SaaS mode).
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// `kontor tenant ...`
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant with its owner.
    Create {
        /// Tenant name.
        #[arg(long)]
        name: String,
        /// Owner's e-mail.
        #[arg(long)]
        admin_email: String,
        /// Owner's password.
        #[arg(long, env = "KONTOR_ADMIN_PASSWORD")]
        admin_password: String,
        /// Owner's name.
        #[arg(long, default_value = "Owner")]
        admin_name: String,
    },
    /// List tenants.
    List,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    // The version is the release's (see `crate::release`), not only Cargo's.
    let matches = Cli::command()
        .version(crate::release::version())
        .get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kontor: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(config.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kontor: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Backup(args) => runtime.block_on(crate::backup::cli::backup(
            &config,
            cli.config.as_deref(),
            args,
            SystemClock.now_ms(),
        )),
        Command::Restore(args) => runtime.block_on(crate::backup::cli::restore(&config, args)),
        command => runtime.block_on(run(command, config)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kontor: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each said once: many errors
/// already quote their cause (sqlx's migration errors do, at every level),
/// and `{:#}` would repeat it.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KONTOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

async fn open_db(config: &Config) -> anyhow::Result<Db> {
    let db = Db::connect(&config.database_url).await?;
    db.migrate().await?;
    Ok(db)
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    let clock: SharedClock = Arc::new(SystemClock);
    match command {
        Command::Serve => {
            let db = open_db(&config).await?;
            serve(db, config, clock).await
        }
        Command::Demo => {
            let db = open_db(&config).await?;
            let login = crate::demo::seed(&db, &config, clock.as_ref()).await?;
            // Written, not println!: a closed stdout (`kontor demo | head`)
            // must not take the server down with a panic.
            let banner = format!(
                "\n  Kontor demo is running: http://{}/\n  Log in as {}  password: {}\n",
                config.listen, login.email, login.password
            );
            let _ = writeln!(std::io::stdout(), "{banner}");
            serve(db, config, clock).await
        }
        Command::Migrate => {
            open_db(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Admin {
            command:
                AdminCommand::Create {
                    email,
                    password,
                    name,
                    tenant,
                },
        } => {
            let db = open_db(&config).await?;
            let user = create_admin(
                &db,
                &config,
                clock.as_ref(),
                &email,
                &password,
                &name,
                tenant.as_deref(),
            )
            .await?;
            println!(
                "created {} ({}) with role {}",
                user.email, user.id, user.role
            );
            Ok(())
        }
        Command::Tenant {
            command:
                TenantCommand::Create {
                    name,
                    admin_email,
                    admin_password,
                    admin_name,
                },
        } => {
            if config.mode != Mode::Saas {
                anyhow::bail!("tenants are created in SaaS mode (KONTOR_MODE=saas); a self-hosted install has one tenant, made by `kontor admin create`");
            }
            let db = open_db(&config).await?;
            let owner = NewUser {
                email: admin_email,
                name: admin_name,
                role: Role::Owner,
                password: admin_password,
                locale: None,
                customer_id: None,
            };
            let (tenant, user) = crate::tenants::create(
                &db,
                &PermissionRegistry::default(),
                config.mode,
                &name,
                owner,
                clock.now_ms(),
            )
            .await?;
            println!(
                "created tenant {} ({}) with owner {}",
                tenant.name, tenant.slug, user.email
            );
            Ok(())
        }
        Command::Tenant {
            command: TenantCommand::List,
        } => {
            let db = open_db(&config).await?;
            for t in crate::tenants::list(&db).await? {
                println!("{}\t{}\t{}", t.id, t.slug, t.name);
            }
            Ok(())
        }
        Command::Module { command } => {
            let db = open_db(&config).await?;
            module_command(&db, &config, clock, command).await
        }
        Command::Openapi => {
            print!("{}", crate::web::openapi::document_json());
            Ok(())
        }
        Command::License { command } => license_command(&config, clock, command).await,
        Command::Plan { command } => {
            let db = open_db(&config).await?;
            crate::subscriptions::cli::plan(&db, &config, clock.as_ref(), command).await
        }
        Command::Subscription { command } => {
            let db = open_db(&config).await?;
            crate::subscriptions::cli::subscription(&db, &config, clock.as_ref(), command).await
        }
        // Handled in `main`, which knows the config file's path.
        Command::Backup(_) | Command::Restore(_) => Ok(()),
    }
}

/// Create an admin (or, on an empty self-hosted install, the tenant and its owner).
pub async fn create_admin(
    db: &Db,
    config: &Config,
    clock: &dyn Clock,
    email: &str,
    password: &str,
    name: &str,
    tenant: Option<&str>,
) -> anyhow::Result<users::User> {
    let now = clock.now_ms();
    let registry = PermissionRegistry::default();
    let tenants = crate::tenants::list(db).await?;
    let target = match tenant {
        Some(t) => Some(
            crate::tenants::find(db, t)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no tenant with id or slug `{t}`"))?,
        ),
        None if config.mode == Mode::SelfHosted => tenants.into_iter().next(),
        None => anyhow::bail!("in SaaS mode, name the tenant with --tenant"),
    };
    let new = NewUser {
        email: email.to_string(),
        name: name.to_string(),
        role: Role::Admin,
        password: password.to_string(),
        locale: None,
        customer_id: None,
    };
    match target {
        Some(t) => {
            let tenant_id = crate::ids::TenantId::from_trusted(t.id);
            let mut tx = db.begin().await?;
            let user = users::create(&mut tx, &tenant_id, &new, now).await?;
            tx.commit().await?;
            Ok(user)
        }
        None => {
            let (_, user) =
                crate::tenants::create(db, &registry, config.mode, "Kontor", new, now).await?;
            Ok(user)
        }
    }
}

async fn serve(db: Db, config: Config, clock: SharedClock) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (KONTOR_LISTEN): {e}", config.listen))?;
    let run_worker = config.run_worker;
    let mode = config.mode;
    let subscription_policy = crate::subscriptions::Policy::from_config(&config);
    let database_url = config.database_url.clone();
    let state = AppState::new(db.clone(), config, clock.clone())?;
    // A first start without any user: the browser wizard needs this token,
    // shown only here, so nobody else on the network claims the install.
    if crate::web::ui::setup::needs_setup(&state)
        .await
        .unwrap_or(false)
    {
        let base = state
            .config()
            .public_url
            .as_ref()
            .map(|u| u.to_string())
            .unwrap_or_else(|| format!("http://{}/", state.config().listen));
        let _ = writeln!(
            std::io::stdout(),
            "\n  Kontor has no administrator yet. Set it up at\n  {base}setup?token={}\n  (or run kontor-install). The wizard closes once an administrator exists.\n",
            crate::web::ui::setup::issue_token()
        );
    }
    let modules = state.modules().clone();
    crate::modules::registry::load_enabled(&db, &modules).await?;
    crate::modules::registry::sync_bundled(&db, &modules, mode, clock.now_ms()).await?;
    let licensing = state.licensing().clone();
    if mode == Mode::SelfHosted {
        // The first start records the installation's 30-day trial; every
        // start and then every hour records the time, so a clock set back
        // is noticed. The per-module `trial` rows only say which tenants
        // have a module; the license decides how long (entitlements.rs).
        licensing.record_time(&db, clock.now_ms()).await?;
        crate::modules::registry::grant_trials_for_installed(&db, clock.now_ms()).await?;
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.changed().await;
    };
    let license_clock = (mode == Mode::SelfHosted).then(|| {
        tokio::spawn(licensing.clone().keep_recording_time(
            db.clone(),
            clock.clone(),
            stopped(stop_rx.clone()),
        ))
    });
    // Self-hosted: one e-mail a day to the admins while the license needs
    // attention (the job queue delivers it, so a worker must run somewhere).
    let license_reminders = (mode == Mode::SelfHosted).then(|| {
        tokio::spawn(crate::license::reminders::run(
            db.clone(),
            licensing.clone(),
            state.mailer().clone(),
            state.config().public_url.clone(),
            clock.clone(),
            stopped(stop_rx.clone()),
        ))
    });
    let workers = run_worker.then(|| {
        let handlers = state.job_handlers();
        let worker = tokio::spawn(crate::jobs::worker::run(
            db.clone(),
            clock.clone(),
            handlers,
            stopped(stop_rx.clone()),
        ));
        let background = tokio::spawn(crate::modules::jobs::run_background(
            db.clone(),
            modules.clone(),
            clock.clone(),
            stopped(stop_rx.clone()),
        ));
        (worker, background)
    });
    // SaaS: trials, periods and graces that run out change entitlements.
    let subscription_sweep = (mode == Mode::Saas && run_worker).then(|| {
        tokio::spawn(crate::subscriptions::sync::run(
            db.clone(),
            clock.clone(),
            subscription_policy,
            stopped(stop_rx.clone()),
        ))
    });
    // Every process (worker or not) follows the registry's changes.
    let registry_sync = tokio::spawn(crate::modules::sync::run(
        db.clone(),
        modules.clone(),
        database_url,
        stopped(stop_rx.clone()),
    ));
    tracing::info!(addr = %listener.local_addr()?, version = crate::release::version(), "kontor listening");
    crate::web::serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
    .await?;
    let _ = stop_tx.send(true);
    if let Some((worker, background)) = workers {
        let _ = worker.await;
        let _ = background.await;
    }
    if let Some(license_clock) = license_clock {
        let _ = license_clock.await;
    }
    if let Some(reminders) = license_reminders {
        let _ = reminders.await;
    }
    if let Some(sweep) = subscription_sweep {
        let _ = sweep.await;
    }
    let _ = registry_sync.await;
    db.close().await;
    Ok(())
}

async fn module_command(
    db: &Db,
    config: &Config,
    clock: SharedClock,
    command: ModuleCommand,
) -> anyhow::Result<()> {
    use crate::modules::{entitlements, registry};
    let cache = Some(config.data_dir.join("cache").join("modules"));
    let host = crate::modules::host::ModuleHost::new(
        db.clone(),
        clock.clone(),
        PermissionRegistry::default(),
        cache,
    )?;
    let now = clock.now_ms();
    match command {
        ModuleCommand::List => {
            for m in registry::list(db, &host).await? {
                println!(
                    "{}\t{}\t{}\t{}\tfailures={}",
                    m.id, m.version, m.state, m.source, m.failures
                );
            }
        }
        ModuleCommand::Install { package, accept } => {
            let bytes = std::fs::read(&package)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", package.display()))?;
            let accept = crate::modules::capabilities::parse_list("accept", &accept)?;
            let info = registry::install_package_accepting(db, &host, config, &bytes, &accept, now)
                .await?;
            println!("installed {} {} (enabled)", info.id, info.version);
            let refused: Vec<&String> = info
                .capabilities
                .iter()
                .filter(|c| !info.accepted_capabilities.contains(c))
                .collect();
            if !refused.is_empty() {
                println!(
                    "requested but not accepted (refused to the module): {}; accept with `kontor module accept {} <list>`",
                    refused.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", "),
                    info.id
                );
            }
        }
        ModuleCommand::Accept { id, capabilities } => {
            let accepted = crate::modules::capabilities::parse_list("capabilities", &capabilities)?;
            registry::accept_capabilities(db, &id, &accepted, now).await?;
            let names: Vec<&str> = accepted.iter().map(|c| c.as_str()).collect();
            println!(
                "{id} may use: {}",
                if names.is_empty() {
                    "no capabilities".to_string()
                } else {
                    names.join(", ")
                }
            );
        }
        ModuleCommand::Enable { id } => {
            registry::enable(db, &host, &id, now).await?;
            println!("enabled {id}");
        }
        ModuleCommand::Disable { id } => {
            registry::disable(db, &host, &id, now).await?;
            println!("disabled {id}");
        }
        ModuleCommand::Uninstall { id, purge } => {
            registry::uninstall(db, &host, &id, purge, now).await?;
            println!(
                "uninstalled {id}{}",
                if purge {
                    " and purged its records"
                } else {
                    "; its records are kept"
                }
            );
        }
        ModuleCommand::Entitle { id, tenant, days } => {
            let t = crate::tenants::find(db, &tenant)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no tenant with id or slug `{tenant}`"))?;
            let graph = registry::graph(db).await?;
            let key = graph
                .get(&id)
                .map(|m| m.manifest.entitlement_key().to_string())
                .ok_or_else(|| anyhow::anyhow!("module {id} is not installed"))?;
            let until = days.map(|d| now + d * 86_400_000);
            entitlements::grant(
                db,
                &crate::ids::TenantId::from_trusted(t.id),
                &key,
                "manual",
                until,
                now,
            )
            .await?;
            println!("tenant {} is entitled to {id}", t.slug);
        }
        ModuleCommand::Trust { key } => {
            let public = crate::modules::trust::read_public_key(&key)?;
            registry::add_trusted_key(db, &public, now).await?;
            println!(
                "trusted key {} of publisher {}",
                public.key_id, public.publisher
            );
        }
    }
    Ok(())
}

async fn license_command(
    config: &Config,
    clock: SharedClock,
    command: LicenseCommand,
) -> anyhow::Result<()> {
    use crate::license::{describe::describe, store, KeySet};
    let keys = KeySet::builtin();
    let now = clock.now_ms();
    let hostname = config
        .public_url
        .as_ref()
        .and_then(|u| u.host_str())
        .map(str::to_string);
    // A license refusal is printed as its sentence and stable code.
    let refused = |e: crate::Error| anyhow::anyhow!("{e} [{}]", e.code().as_str());
    let print_fields = |license: &crate::license::License| {
        for (label, value) in describe(license) {
            println!("{:<14}{value}", format!("{label}:"));
        }
    };
    match command {
        LicenseCommand::Issue(args) => {
            let payload = issue_payload(&args, now)?;
            payload
                .validate()
                .map_err(|e| anyhow::anyhow!("cannot issue this license: {e}"))?;
            let (_, key) = crate::modules::trust::read_signing_key(&args.key)?;
            let text = crate::license::issue(&key, &payload).map_err(|e| refused(e.into()))?;
            match &args.out {
                Some(path) => {
                    std::fs::write(path, &text)
                        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                    println!("wrote license {} to {}", payload.license_id, path.display());
                }
                None => print!("{text}"),
            }
        }
        LicenseCommand::Inspect { file } => {
            let bytes = read_license_file(&file)?;
            let license = crate::license::verify(&bytes, &keys).map_err(|e| refused(e.into()))?;
            print_fields(&license);
            license.check_time(now).map_err(|e| refused(e.into()))?;
            println!("valid now:    yes (the signature verifies and the dates fit; an instance binding is checked on install)");
        }
        LicenseCommand::Install { file } => {
            let bytes = read_license_file(&file)?;
            let db = open_db(config).await?;
            let status = store::install(&db, &keys, hostname.as_deref(), &bytes, now)
                .await
                .map_err(refused)?;
            println!(
                "installed license {}",
                status
                    .license
                    .as_ref()
                    .map_or("", |l| l.payload().license_id.as_str())
            );
            println!("state:        {}", status.state.name());
            println!("{}", status.explanation());
        }
        LicenseCommand::Status => {
            let db = open_db(config).await?;
            store::touch_last_seen(&db, now).await?;
            let status = store::status(&db, &keys, hostname.as_deref(), now).await?;
            if keys.trusts_test_key() {
                println!("WARNING: this is a development build (feature dev-keys): it accepts licenses signed with the test key");
            }
            println!("{:<14}{}", "instance id:", status.instance_id);
            println!("{:<14}{}", "state:", status.state.name());
            match &status.license {
                Some(license) => print_fields(license),
                None => println!("{:<14}none installed", "license:"),
            }
            println!("{}", status.explanation());
        }
    }
    Ok(())
}

fn read_license_file(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}

/// The payload `kontor license issue` signs, from its arguments.
fn issue_payload(
    args: &LicenseIssueArgs,
    now: i64,
) -> anyhow::Result<crate::license::LicensePayload> {
    use crate::license::payload::{parse_time_arg, InstanceBinding, FORMAT_VERSION};
    // Whole seconds: the file is read by people, and milliseconds say nothing.
    let now = now - now.rem_euclid(1000);
    let time =
        |flag: &str, text: &str| parse_time_arg(text).map_err(|e| anyhow::anyhow!("--{flag}: {e}"));
    let expires_at = match args.expires.as_str() {
        "never" => None,
        text => Some(time("expires", text)?),
    };
    let instance =
        (args.instance_id.is_some() || args.hostname.is_some()).then(|| InstanceBinding {
            instance_id: args.instance_id.clone(),
            hostname: args.hostname.clone(),
        });
    Ok(crate::license::LicensePayload {
        format_version: FORMAT_VERSION,
        license_id: args
            .license_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        licensee: crate::license::Licensee {
            name: args.licensee_name.clone(),
            email: args.email.clone(),
            company: args.company.clone(),
        },
        edition: args.edition,
        issued_at: now,
        valid_from: args
            .valid_from
            .as_deref()
            .map(|t| time("valid-from", t))
            .transpose()?
            .unwrap_or(now),
        expires_at,
        updates_until: args
            .updates_until
            .as_deref()
            .map(|t| time("updates-until", t))
            .transpose()?,
        instance,
        modules: args.modules.clone(),
        limits: crate::license::Limits {
            users: args.max_users,
            customers: args.max_customers,
            tenants: args.max_tenants,
        },
        grace_days: args.grace_days,
    })
}
