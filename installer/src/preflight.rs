//! Checks before anything is written. Every problem found says what to do
//! about it, and all of them are reported at once, so a self-hoster fixes
//! the machine in one go instead of one failed run per problem.

use std::net::SocketAddr;
use std::path::Path;

/// One failed check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub what: String,
    /// What to do about it.
    pub fix: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n      -> {}", self.what, self.fix)
    }
}

/// The data dir exists (or can be made) and this user can write in it.
pub fn data_dir_writable(dir: &Path) -> Option<Problem> {
    let fix = format!(
        "create it and give the user that runs Kontor write access (e.g. `sudo install -d -o kontor -g kontor -m 0750 {}`), or choose another with --data-dir",
        dir.display()
    );
    folder_writable(dir, "data dir", fix)
}

/// The folder of the config file can be written.
pub fn config_dir_writable(config: &Path) -> Option<Problem> {
    let dir = config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fix = format!(
        "run the installer as a user who may write {} (e.g. with sudo), or choose another place with --config",
        dir.display()
    );
    folder_writable(dir, "config folder", fix)
}

/// `dir` (the `what` of the messages) exists or can be made, and a file
/// can be written in it; else the problem with `fix`.
fn folder_writable(dir: &Path, what: &str, fix: String) -> Option<Problem> {
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Some(Problem {
            what: format!("the {what} {} cannot be created: {e}", dir.display()),
            fix,
        });
    }
    let probe = dir.join(format!(".kontor-install-probe-{}", std::process::id()));
    match std::fs::write(&probe, b"probe") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => Some(Problem {
            what: format!("the {what} {} is not writable: {e}", dir.display()),
            fix,
        }),
    }
}

/// Nothing else listens on the address.
pub fn port_free(listen: SocketAddr) -> Option<Problem> {
    match std::net::TcpListener::bind(listen) {
        Ok(_) => None,
        Err(e) => Some(Problem {
            what: format!("cannot listen on {listen}: {e}"),
            fix: format!(
                "another program uses port {} (see `ss -ltnp 'sport = :{}'`); stop it, or choose another address with --listen 127.0.0.1:{}",
                listen.port(),
                listen.port(),
                listen.port().wrapping_add(1).max(1024)
            ),
        }),
    }
}

/// Free space in bytes on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `path` is a valid NUL-terminated string and `stat` a plain
    // struct statvfs fills in; both outlive the call.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(
        clippy::unnecessary_cast,
        reason = "the field types differ between platforms"
    )]
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

/// At least `min_mb` MiB are free where the data dir is.
pub fn disk_space(dir: &Path, min_mb: u64) -> Option<Problem> {
    match free_bytes(dir) {
        Ok(free) if free >= min_mb * 1024 * 1024 => None,
        Ok(free) => Some(Problem {
            what: format!(
                "only {} MiB free on the file system of {} (at least {min_mb} MiB needed)",
                free / 1024 / 1024,
                dir.display()
            ),
            fix: "free some space, or put the data dir on a larger disk with --data-dir"
                .to_string(),
        }),
        Err(e) => Some(Problem {
            what: format!("cannot read the free space of {}: {e}", dir.display()),
            fix: "check that the data dir is on a mounted file system".to_string(),
        }),
    }
}
