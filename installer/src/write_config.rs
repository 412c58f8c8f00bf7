//! Writing `kontor.toml`: mode 0600 from the first byte (it may hold a
//! database password), replaced atomically, and keys the installer does not
//! manage (a `secret_key`, tuning) kept as they were on a re-run.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The keys the installer sets.
#[derive(Debug, Clone)]
pub struct Managed {
    /// `database_url`.
    pub database_url: String,
    /// `data_dir` (absolute).
    pub data_dir: String,
    /// `listen`.
    pub listen: String,
    /// `public_url`.
    pub public_url: String,
    /// `smtp_*` and `mail_from`, when e-mail was set up (else kept as they were).
    pub smtp: Option<kontor::mail::SmtpSettings>,
}

/// Write `path`, keeping unmanaged keys of an existing file.
pub fn write(path: &Path, managed: &Managed) -> anyhow::Result<()> {
    let mut table: toml::Table = match std::fs::read_to_string(path) {
        Ok(text) => text
            .parse()
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?,
        Err(_) => toml::Table::new(),
    };
    fn set(table: &mut toml::Table, k: &str, v: &str) {
        table.insert(k.to_string(), toml::Value::String(v.to_string()));
    }
    set(&mut table, "database_url", &managed.database_url);
    set(&mut table, "data_dir", &managed.data_dir);
    set(&mut table, "listen", &managed.listen);
    set(&mut table, "public_url", &managed.public_url);
    set(&mut table, "mode", "self-hosted");
    if let Some(smtp) = &managed.smtp {
        set(&mut table, "smtp_host", &smtp.host);
        set(&mut table, "smtp_tls", smtp.tls.as_str());
        set(&mut table, "mail_from", &smtp.from);
        for key in ["smtp_username", "smtp_password"] {
            table.remove(key);
        }
        if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
            table.insert("smtp_username".into(), toml::Value::String(user.clone()));
            table.insert(
                "smtp_password".into(),
                toml::Value::String(password.expose().to_string()),
            );
        }
        table.insert(
            "smtp_port".into(),
            toml::Value::Integer(i64::from(smtp.port)),
        );
    }
    let body = toml::to_string(&table)?;
    let text = format!(
        "# Kontor configuration, written by kontor-install. Every key is described in\n# packaging/kontor.toml.example. Holds secrets: keep it mode 0600.\n{body}"
    );
    let tmp = path.with_extension("toml.tmp");
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(())
}
