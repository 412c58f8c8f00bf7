//! `kontor-install upgrade <package>`: verify, refuse what must not run
//! (including a binary that is not the version its manifest names), stop,
//! back up, swap the binary, migrate, start, check — and on any failure
//! after the backup, put the old binary back, let it restore the backup,
//! check that the old version serves again, and say which step failed.
//!
//! Versions: the installed version is the one the installer recorded in
//! the data dir (`installed-version`), else what the binary reports. A
//! package that is not newer is refused (rollback protection: an attacker
//! with an old, validly signed package cannot bring back old bugs); one
//! whose `min_from_version` is above the installed version is refused with
//! the version to go through first. Versions may be skipped otherwise: the
//! new binary's migrations run in order from whatever is installed.

pub mod package;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use kontor::license::KeySet;

use crate::detect;

/// `kontor-install upgrade` flags.
#[derive(Debug, clap::Args)]
pub struct UpgradeArgs {
    /// The signed update package (`kontor-<version>.kupd`).
    pub package: PathBuf,
    /// The installation's `kontor.toml`.
    #[arg(long, default_value = "kontor.toml")]
    pub config: PathBuf,
    /// The installed `kontor` binary, replaced by the package's.
    #[arg(long, default_value = "/usr/bin/kontor")]
    pub binary: PathBuf,
    /// The systemd unit to stop and start. Without it the server must be
    /// stopped already; the installer then starts the new version only to
    /// check it, and stops it again.
    #[arg(long)]
    pub service: Option<String>,
    /// Where the pre-upgrade backup and the old binary are kept (default:
    /// `backups/` in the data dir).
    #[arg(long)]
    pub backup_dir: Option<PathBuf>,
    /// How long the new version may take to answer `/health/ready`, in seconds.
    #[arg(long, default_value_t = 120)]
    pub ready_timeout: u64,
}

/// `kontor-install pack-update` flags (vendor side; the release script).
#[derive(Debug, clap::Args)]
pub struct PackArgs {
    /// The release binary.
    #[arg(long)]
    pub binary: PathBuf,
    /// The version it is.
    #[arg(long)]
    pub version: semver::Version,
    /// The oldest version it upgrades from.
    #[arg(long)]
    pub min_from: semver::Version,
    /// The vendor signing key (`kontor-signing-key:v1:...`).
    #[arg(long)]
    pub key: PathBuf,
    /// The package to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// Build and sign an update package.
pub fn pack(args: PackArgs) -> anyhow::Result<()> {
    let binary = std::fs::read(&args.binary)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.binary.display()))?;
    let (_, key) = kontor::modules::trust::read_signing_key(&args.key)?;
    let bytes = package::pack(
        &package::UpdateManifest {
            product: "kontor".into(),
            version: args.version.clone(),
            min_from_version: args.min_from,
        },
        &binary,
        &key,
    )?;
    std::fs::write(&args.out, bytes)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", args.out.display()))?;
    println!("wrote {} (kontor {})", args.out.display(), args.version);
    Ok(())
}

/// What the version of the binary at `path` says (`kontor 0.1.0`).
fn binary_version(path: &Path) -> Option<semver::Version> {
    let out = Command::new(path).arg("--version").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .last()
        .and_then(|v| v.parse().ok())
}

/// Run an upgrade; the version now installed.
pub async fn run(args: UpgradeArgs) -> anyhow::Result<semver::Version> {
    let bytes = std::fs::read(&args.package)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.package.display()))?;
    let pkg = package::open(&bytes, &KeySet::builtin())
        .map_err(|e| anyhow::anyhow!("refused: {e}. Nothing was changed."))?;
    let new = pkg.manifest.version.clone();
    let config_path = if args.config.is_absolute() {
        args.config.clone()
    } else {
        std::env::current_dir()?.join(&args.config)
    };
    let config = detect::load_config(&config_path)?;
    let current = detect::recorded_version(&config.data_dir)
        .or_else(|| binary_version(&args.binary))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "cannot tell which version is installed (no {} in {} and {} does not say); nothing was changed",
                detect::VERSION_FILE,
                config.data_dir.display(),
                args.binary.display()
            )
        })?;
    if new <= current {
        anyhow::bail!(
            "refused: the package brings Kontor {new}, and {current} is installed; downgrades and reinstalls are refused (rollback protection). Nothing was changed."
        );
    }
    if current < pkg.manifest.min_from_version {
        anyhow::bail!(
            "refused: Kontor {current} cannot be upgraded to {new} directly; this package upgrades from {} on. Upgrade to {} (or any version from it on) first. Nothing was changed.",
            pkg.manifest.min_from_version,
            pkg.manifest.min_from_version
        );
    }
    // The binary must be the release its signed manifest names: run it
    // before anything is stopped (a mislabelled or foreign binary is
    // refused here, not found out after the swap).
    let staged = Staged::write(&args.binary, &pkg.binary)
        .map_err(|e| anyhow::anyhow!("{e:#}; nothing was changed"))?;
    match binary_version(&staged.path) {
        Some(v) if v == new => {}
        said => {
            let said = said.map_or_else(
                || "does not run here or does not say its version".to_string(),
                |v| format!("says it is Kontor {v}"),
            );
            anyhow::bail!(
                "refused: the package's manifest names Kontor {new}, but its binary {said}. Nothing was changed."
            );
        }
    }
    println!(
        "==> Upgrading Kontor {current} -> {new} (signed by key {})",
        pkg.key_id
    );

    // Stop.
    match &args.service {
        Some(unit) => systemctl("stop", unit)?,
        None => {
            if std::net::TcpStream::connect_timeout(&config.listen, Duration::from_secs(1)).is_ok()
            {
                anyhow::bail!(
                    "Kontor answers on {}: stop it first, or name its systemd unit with --service kontor. Nothing was changed.",
                    config.listen
                );
            }
        }
    }

    // Back up the data and the old binary.
    let backup_dir = args
        .backup_dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("backups"));
    std::fs::create_dir_all(&backup_dir)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let backup = backup_dir.join(format!("pre-upgrade-{current}-to-{new}-{now}.tar"));
    // The installed binary backs up its own data: the archive then names
    // the version that wrote it, and that binary can restore it.
    run_kontor(
        &args.binary,
        &config_path,
        &[
            "backup".as_ref(),
            "--include-config-secrets".as_ref(),
            "--out".as_ref(),
            backup.as_os_str(),
        ],
    )
    .map_err(|e| {
        anyhow::anyhow!("the backup before upgrading failed: {e:#}; nothing was changed")
    })?;
    let old_binary = backup_dir.join(format!("kontor-{current}"));
    std::fs::copy(&args.binary, &old_binary).map_err(|e| {
        anyhow::anyhow!(
            "cannot keep a copy of {}: {e}; nothing was changed",
            args.binary.display()
        )
    })?;
    println!("    backup: {}", backup.display());

    // Swap, migrate, start, check.
    let mut started: Option<Child> = None;
    let result = async {
        staged
            .swap_into(&args.binary)
            .map_err(|e| ("swapping the binary", e))?;
        run_kontor(&args.binary, &config_path, &["migrate".as_ref()])
            .map_err(|e| ("migrating", e))?;
        started = start(&args, &config_path).map_err(|e| ("starting", e))?;
        wait_ready(&config.listen, started.as_mut(), args.ready_timeout)
            .await
            .map_err(|e| ("checking /health/ready", e))
    }
    .await;
    stop(&args, started.take());

    match result {
        Ok(()) => {
            detect::record_version(&config.data_dir, &new)?;
            if let Some(unit) = &args.service {
                systemctl("start", unit)?;
            }
            println!(
                "==> Kontor {new} is installed and answers /health/ready. The backup stays in {}",
                backup.display()
            );
            Ok(new)
        }
        Err((step, error)) => {
            eprintln!("    {step} failed: {error:#}; rolling back");
            let rollback = rollback(&args, &config, &config_path, &old_binary, &backup).await;
            match rollback {
                Ok(()) => anyhow::bail!(
                    "the upgrade to {new} failed while {step}: {error:#}. Rolled back: the old binary and the backup {} are restored, and Kontor {current} answers /health/ready again.",
                    backup.display()
                ),
                Err(e) => anyhow::bail!(
                    "the upgrade to {new} failed while {step}: {error:#}; and the rollback failed too: {e:#}. The old binary is at {} and the backup at {}: restore by hand with `kontor restore --force {}`.",
                    old_binary.display(),
                    backup.display(),
                    backup.display()
                ),
            }
        }
    }
}

async fn rollback(
    args: &UpgradeArgs,
    config: &kontor::config::Config,
    config_path: &Path,
    old_binary: &Path,
    backup: &Path,
) -> anyhow::Result<()> {
    if let Some(unit) = &args.service {
        let _ = systemctl("stop", unit);
    }
    let old = std::fs::read(old_binary)?;
    install_binary(&args.binary, &old)?;
    // The old binary restores its own backup: it knows every migration the
    // backup has, which this installer (maybe older than the server it
    // upgrades) need not.
    run_kontor(
        &args.binary,
        config_path,
        &["restore".as_ref(), "--force".as_ref(), backup.as_os_str()],
    )?;
    let mut child = start(args, config_path)?;
    let ready = wait_ready(&config.listen, child.as_mut(), args.ready_timeout).await;
    if args.service.is_none() {
        stop(args, child);
    }
    ready
}

/// A binary written beside the one it will replace, under the same file
/// name (in a folder of its own), so it can be run before the swap and the
/// swap is one rename: the installed binary is never half-written.
struct Staged {
    dir: PathBuf,
    path: PathBuf,
}

impl Staged {
    fn write(target: &Path, bytes: &[u8]) -> anyhow::Result<Staged> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let parent = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = target
            .file_name()
            .ok_or_else(|| anyhow::anyhow!("{} is not a file path", target.display()))?;
        let dir = parent.join(".kontor-upgrade");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        let staged = Staged {
            path: dir.join(name),
            dir,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(&staged.path)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", staged.path.display()))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", staged.path.display()))?;
        Ok(staged)
    }

    fn swap_into(&self, target: &Path) -> anyhow::Result<()> {
        std::fs::rename(&self.path, target)
            .map_err(|e| anyhow::anyhow!("cannot replace {}: {e}", target.display()))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Run `binary COMMAND... --config CONFIG` to its end; an exit other than
/// 0 is an error that quotes what it wrote to stderr.
fn run_kontor(binary: &Path, config: &Path, command: &[&std::ffi::OsStr]) -> anyhow::Result<()> {
    let out = Command::new(binary)
        .args(command)
        .arg("--config")
        .arg(config)
        .env_remove("KONTOR_CONFIG")
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", binary.display()))?;
    if !out.status.success() {
        anyhow::bail!(
            "{} {} exited with {}: {}",
            binary.display(),
            command[0].to_string_lossy(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Put `bytes` in place of `target` (write beside it, rename over).
fn install_binary(target: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    Staged::write(target, bytes)?.swap_into(target)
}

fn systemctl(action: &str, unit: &str) -> anyhow::Result<()> {
    let status = Command::new("systemctl")
        .arg(action)
        .arg(unit)
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run systemctl {action} {unit}: {e}"))?;
    if !status.success() {
        anyhow::bail!("systemctl {action} {unit} failed ({status})");
    }
    Ok(())
}

/// Start the server: through systemd, or as a child to check it.
fn start(args: &UpgradeArgs, config_path: &Path) -> anyhow::Result<Option<Child>> {
    match &args.service {
        Some(unit) => {
            systemctl("start", unit)?;
            Ok(None)
        }
        None => Ok(Some(
            Command::new(&args.binary)
                .arg("serve")
                .arg("--config")
                .arg(config_path)
                .env_remove("KONTOR_CONFIG")
                .spawn()
                .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", args.binary.display()))?,
        )),
    }
}

/// Stop a server this run started as a child (the way Ctrl-C does).
fn stop(args: &UpgradeArgs, child: Option<Child>) {
    if let Some(mut child) = child {
        if args.service.is_none() {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: a signal to our own child process.
                unsafe {
                    libc::kill(pid, libc::SIGINT);
                }
            }
            let _ = child.wait();
        }
    }
}

/// Poll `/health/ready` until it answers 200, the child exits, or the
/// time is up.
async fn wait_ready(
    listen: &std::net::SocketAddr,
    mut child: Option<&mut Child>,
    timeout_secs: u64,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let url = format!("http://{listen}/health/ready");
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    loop {
        if let Some(c) = child.as_mut() {
            if let Some(status) = c.try_wait()? {
                anyhow::bail!("the server exited ({status}) before it was ready");
            }
        }
        if let Ok(r) = client.get(&url).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            anyhow::bail!("{url} did not answer 200 within {timeout_secs} s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
