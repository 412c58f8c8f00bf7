//! `dev`: a local Kontor host for the module being written. It builds the
//! module, serves a host in this process (SQLite in `.kontor-dev/` of the
//! module folder, so data stays between runs) with the module installed
//! from its build folder, reinstalls it whenever the built `.wasm` or
//! `module.toml` changes, and prints every line the module logs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;

use crate::test::built_wasm;

/// The folder, inside the module folder, that holds the dev host's data.
pub const DATA_DIR: &str = ".kontor-dev";

/// Arguments of `dev`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The module folder and the profile, as for `build`.
    #[command(flatten)]
    build: crate::build::Args,
    /// Where the host listens.
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// Start from an empty database (removes `.kontor-dev/` first).
    #[arg(long)]
    fresh: bool,
    /// Serve what is built already, without building first.
    #[arg(long)]
    no_build: bool,
}

/// Build, serve, watch and reload until Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.no_build {
        crate::build::run(args.build.clone())?;
    }
    let wasm = built_wasm(&args.build.dir, args.build.release)?;
    let data = args.build.dir.join(DATA_DIR);
    if args.fresh && data.exists() {
        std::fs::remove_dir_all(&data).with_context(|| format!("removing {}", data.display()))?;
    }
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let password = admin_password(&data)?;
    init_logging();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(args, wasm, data, password))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: Args, wasm: PathBuf, data: PathBuf, password: String) -> anyhow::Result<()> {
    let harness = kontor_test::Harness::builder()
        .module_dir(&args.build.dir)
        .wasm(&wasm)
        .data_dir(&data)
        .listen(args.listen)
        .system_clock()
        .background(true)
        .admin("admin@example.com", password)
        .try_start()
        .await?;
    let id = harness.module_id().to_string();
    println!();
    println!("  Kontor dev host: {}/", harness.base_url());
    println!(
        "  Log in as {}  password: {}",
        harness.admin_email(),
        harness.admin_password()
    );
    println!(
        "  Module {id}: routes under {base}/api/v1/{id}/, pages under {base}/app/{id}/",
        base = harness.base_url()
    );
    if let Some(token) = harness.client().token() {
        println!("  API token: {token}");
    }
    println!("  Data in {}; watching {}", data.display(), wasm.display());
    println!("  Rebuild with `kontor-module build` to reload; Ctrl-C stops.");
    println!();
    let manifest = args.build.dir.join("module.toml");
    let mut seen = stamp(&wasm, &manifest);
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = ticker.tick() => {}
        }
        let now = stamp(&wasm, &manifest);
        if now == seen {
            continue;
        }
        // Let the writer finish: reload once the files stop changing.
        tokio::time::sleep(Duration::from_millis(300)).await;
        if stamp(&wasm, &manifest) != now {
            continue;
        }
        seen = now;
        match harness.reinstall().await {
            Ok(info) => println!("reloaded {} {}", info.id, info.version),
            Err(e) => {
                eprintln!("not reloaded (the previous build keeps serving): {e:#}")
            }
        }
    }
    println!("stopped");
    Ok(())
}

/// What changes when a file is rewritten.
type Stamp = Vec<Option<(SystemTime, u64)>>;

fn stamp(wasm: &Path, manifest: &Path) -> Stamp {
    [wasm, manifest]
        .iter()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

/// The dev administrator's password: made once, kept beside the database
/// (the folder is the developer's own), so the login stays the same
/// between runs.
fn admin_password(data: &Path) -> anyhow::Result<String> {
    let file = data.join("admin-password");
    if let Ok(text) = std::fs::read_to_string(&file) {
        let text = text.trim();
        if text.len() >= 10 {
            return Ok(text.to_string());
        }
    }
    let password = format!("dev-{}", uuid_like());
    std::fs::write(&file, &password).with_context(|| format!("writing {}", file.display()))?;
    Ok(password)
}

/// 16 random hex characters: the random end of a fresh core id (a UUIDv7,
/// whose start is the time).
fn uuid_like() -> String {
    let id = kontor::ids::new_id().replace('-', "");
    id[id.len() - 16..].to_string()
}

/// Module lines at every level, the host's own from `warn` up (or what
/// `KONTOR_LOG` says), on stderr.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KONTOR_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "warn,{}=trace",
            kontor::modules::caps::LOG_TARGET
        ))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
