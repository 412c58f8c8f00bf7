//! The systemd unit `--systemd` writes: the hardened unit of
//! `packaging/kontor.service`, with this install's paths filled in.

use std::path::Path;

/// The unit text for a binary, config file, data dir and service user.
pub fn unit(binary: &Path, config: &Path, data_dir: &Path, user: &str) -> String {
    format!(
        "[Unit]
Description=Kontor CRM
Documentation=https://example.invalid/kontor
After=network-online.target postgresql.service
Wants=network-online.target

[Service]
Type=simple
User={user}
Group={user}
Environment=KONTOR_CONFIG={config}
ExecStart={binary} serve
Restart=on-failure
RestartSec=5s
# Hardening: the server writes only its data dir.
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
ReadWritePaths={data_dir}

[Install]
WantedBy=multi-user.target
",
        binary = binary.display(),
        config = config.display(),
        data_dir = data_dir.display(),
    )
}

/// Write the unit to `dir/kontor.service`.
pub fn write(
    dir: &Path,
    binary: &Path,
    config: &Path,
    data_dir: &Path,
    user: &str,
) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("kontor.service");
    std::fs::write(&path, unit(binary, config, data_dir, user))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}
