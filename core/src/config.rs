//! Configuration: `kontor.toml`, then `KONTOR_*` environment variables on top.
//!
//! Every value is validated when the host starts; a bad one stops the start
//! with a message that names the key, so a typo never turns into a surprise
//! at run time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Single-tenant self-hosted install, or many tenants on one install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// One tenant; modules unlocked by an offline license.
    SelfHosted,
    /// Many tenants; modules unlocked by subscription.
    Saas,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Validated configuration of a Kontor host.
#[derive(Debug, Clone)]
pub struct Config {
    /// `sqlite://...` or `postgres://...`.
    pub database_url: String,
    /// Where the SQLite file, module packages and keys live.
    pub data_dir: PathBuf,
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Self-hosted or SaaS.
    pub mode: Mode,
    /// Log format.
    pub log_format: LogFormat,
    /// The public URL (used for links and to decide on `Secure` cookies).
    pub public_url: Option<url::Url>,
    /// How long a login session lives without use, in hours.
    pub session_idle_hours: i64,
    /// Run the job worker inside `serve`.
    pub run_worker: bool,
    /// Behind a reverse proxy: take the client address from the last entry
    /// of `X-Forwarded-For` (login limits are per client address).
    pub trust_proxy: bool,
    /// Development mode: unsigned module packages and the SDK's dev key are accepted.
    pub dev: bool,
    /// The key that encrypts module secrets; without it, the key file in
    /// the data dir (made on first use). Never printed.
    pub secret_key: Option<crate::modules::secret_key::MasterKey>,
    /// SaaS: the secret the payment provider signs webhook events with
    /// (`Kontor-Signature`); without it the payment webhook refuses events.
    pub payment_webhook_secret: Option<crate::subscriptions::Secret>,
    /// SaaS: the bearer token of the platform operator's billing system for
    /// `POST /api/v1/subscriptions/{id}/activate` across tenants; unset: none.
    pub operator_token: Option<crate::subscriptions::Secret>,
    /// SaaS: days a past-due subscription keeps its modules working before
    /// they go read-only.
    pub payment_grace_days: i64,
    /// The SMTP relay Kontor sends e-mail through (`smtp_*`, `mail_from`);
    /// none: nothing is sent, and queued mail fails visibly in the e-mail log.
    pub smtp: Option<crate::mail::SmtpSettings>,
}

/// A configuration value that is not acceptable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed.
    #[error("cannot read config file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A key has a bad value.
    #[error("invalid configuration: `{key}` = {value:?}: {message}")]
    Invalid {
        /// The key, as the file and the environment name it.
        key: String,
        /// The offending value.
        value: String,
        /// What is expected.
        message: String,
    },
}

/// The file form: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<String>,
    data_dir: Option<String>,
    listen: Option<String>,
    mode: Option<String>,
    log_format: Option<String>,
    public_url: Option<String>,
    session_idle_hours: Option<i64>,
    run_worker: Option<bool>,
    trust_proxy: Option<bool>,
    dev: Option<bool>,
    secret_key: Option<String>,
    payment_webhook_secret: Option<String>,
    operator_token: Option<String>,
    payment_grace_days: Option<i64>,
    smtp_host: Option<String>,
    smtp_port: Option<u16>,
    smtp_tls: Option<String>,
    smtp_username: Option<String>,
    smtp_password: Option<String>,
    mail_from: Option<String>,
}

impl Config {
    /// Load from an optional file and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("KONTOR_"))
            .collect();
        Self::from_sources(file, &env)
    }

    /// Load from an optional file and the given `KONTOR_*` variables.
    pub fn from_sources(
        file: Option<&Path>,
        env: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let file_path = file
            .map(Path::to_path_buf)
            .or_else(|| env.get("KONTOR_CONFIG").map(PathBuf::from))
            .or_else(|| {
                let default = PathBuf::from("kontor.toml");
                default.exists().then_some(default)
            });
        let fc = match &file_path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::File {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            }
            None => FileConfig::default(),
        };

        let pick = |key: &str, file_value: Option<String>| -> Option<(String, String)> {
            let env_key = format!("KONTOR_{}", key.to_uppercase());
            match env.get(&env_key) {
                Some(v) => Some((env_key, v.clone())),
                None => file_value.map(|v| (key.to_string(), v)),
            }
        };
        let invalid = |(key, value): (String, String), message: &str| ConfigError::Invalid {
            key,
            value,
            message: message.to_string(),
        };

        let data_dir = PathBuf::from(
            pick("data_dir", fc.data_dir)
                .map(|(_, v)| v)
                .unwrap_or_else(|| "kontor-data".to_string()),
        );

        let database_url = match pick("database_url", fc.database_url) {
            Some((key, v)) => {
                if !(v.starts_with("sqlite:")
                    || v.starts_with("postgres://")
                    || v.starts_with("postgresql://"))
                {
                    return Err(invalid((key, v), "expected a sqlite:// or postgres:// URL"));
                }
                v
            }
            None => format!("sqlite://{}", data_dir.join("kontor.db").display()),
        };

        let listen = match pick("listen", fc.listen) {
            Some(kv) => {
                kv.1.parse::<SocketAddr>()
                    .map_err(|_| invalid(kv.clone(), "expected host:port, e.g. 127.0.0.1:8080"))?
            }
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };

        let mode = match pick("mode", fc.mode) {
            Some(kv) => match kv.1.as_str() {
                "self-hosted" => Mode::SelfHosted,
                "saas" => Mode::Saas,
                _ => return Err(invalid(kv, "expected `self-hosted` or `saas`")),
            },
            None => Mode::SelfHosted,
        };

        let log_format = match pick("log_format", fc.log_format) {
            Some(kv) => match kv.1.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(invalid(kv, "expected `text` or `json`")),
            },
            None => LogFormat::Text,
        };

        let public_url = match pick("public_url", fc.public_url) {
            Some(kv) => Some(
                url::Url::parse(&kv.1)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| invalid(kv, "expected an http:// or https:// URL"))?,
            ),
            None => None,
        };

        let session_idle_hours = match pick(
            "session_idle_hours",
            fc.session_idle_hours.map(|v| v.to_string()),
        ) {
            Some(kv) => {
                kv.1.parse::<i64>()
                    .ok()
                    .filter(|h| (1..=24 * 90).contains(h))
                    .ok_or_else(|| invalid(kv, "expected whole hours between 1 and 2160"))?
            }
            None => 24 * 7,
        };

        let boolean = |kv: Option<(String, String)>, default: bool| match kv {
            Some(kv) => match kv.1.as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(invalid(kv, "expected true or false")),
            },
            None => Ok(default),
        };
        let run_worker = boolean(
            pick("run_worker", fc.run_worker.map(|v| v.to_string())),
            true,
        )?;
        let trust_proxy = boolean(
            pick("trust_proxy", fc.trust_proxy.map(|v| v.to_string())),
            false,
        )?;
        let dev = boolean(pick("dev", fc.dev.map(|v| v.to_string())), false)?;

        let secret_key = match pick("secret_key", fc.secret_key) {
            Some((key, v)) => Some(crate::modules::secret_key::MasterKey::parse(&v).map_err(
                |m| {
                    // The value is a key: the error must not repeat it.
                    invalid((key, "(hidden)".into()), m)
                },
            )?),
            None => None,
        };

        // Secrets: an error names the key, never the value.
        let secret = |kv: Option<(String, String)>| {
            kv.map(|(key, v)| {
                crate::subscriptions::Secret::parse(&v)
                    .map_err(|m| invalid((key, "(hidden)".into()), &m))
            })
            .transpose()
        };
        let payment_webhook_secret =
            secret(pick("payment_webhook_secret", fc.payment_webhook_secret))?;
        let operator_token = secret(pick("operator_token", fc.operator_token))?;
        let payment_grace_days = match pick(
            "payment_grace_days",
            fc.payment_grace_days.map(|v| v.to_string()),
        ) {
            Some(kv) => {
                kv.1.parse::<i64>()
                    .ok()
                    .filter(|d| (0..=90).contains(d))
                    .ok_or_else(|| invalid(kv, "expected whole days between 0 and 90"))?
            }
            None => crate::subscriptions::access::DEFAULT_GRACE_DAYS,
        };

        let smtp = match pick("smtp_host", fc.smtp_host) {
            Some((_, host)) if host.trim().is_empty() => None,
            Some((_, host)) => {
                let tls = match pick("smtp_tls", fc.smtp_tls) {
                    Some(kv) => crate::mail::SmtpTls::parse(&kv.1)
                        .ok_or_else(|| invalid(kv, "expected `none`, `starttls` or `tls`"))?,
                    None => crate::mail::SmtpTls::StartTls,
                };
                let port = match pick("smtp_port", fc.smtp_port.map(|p| p.to_string())) {
                    Some(kv) => {
                        kv.1.parse::<u16>()
                            .ok()
                            .filter(|p| *p > 0)
                            .ok_or_else(|| invalid(kv, "expected a port number, e.g. 587"))?
                    }
                    None => tls.default_port(),
                };
                let from = match pick("mail_from", fc.mail_from) {
                    Some(kv) => crate::mail::parse_mailbox(&kv.1).map_err(|m| invalid(kv, &m))?,
                    None => {
                        return Err(invalid(
                            ("mail_from".into(), String::new()),
                            "required with smtp_host: the sender address, e.g. \"Example Hosting <billing@example.com>\"",
                        ))
                    }
                };
                let username = pick("smtp_username", fc.smtp_username)
                    .map(|(_, v)| v)
                    .filter(|v| !v.is_empty());
                // A password: an error never repeats it.
                let password = pick("smtp_password", fc.smtp_password)
                    .map(|(_, v)| crate::mail::SmtpPassword::new(v));
                if username.is_some() != password.is_some() {
                    return Err(invalid(
                        ("smtp_username".into(), username.clone().unwrap_or_default()),
                        "smtp_username and smtp_password go together: set both or neither",
                    ));
                }
                Some(crate::mail::SmtpSettings {
                    host,
                    port,
                    tls,
                    username,
                    password,
                    from,
                })
            }
            None => None,
        };

        Ok(Config {
            smtp,
            database_url,
            data_dir,
            listen,
            mode,
            log_format,
            public_url,
            session_idle_hours,
            run_worker,
            trust_proxy,
            dev,
            secret_key,
            payment_webhook_secret,
            operator_token,
            payment_grace_days,
        })
    }

    /// Cookies get `Secure` when the public URL is https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url
            .as_ref()
            .is_some_and(|u| u.scheme() == "https")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_sqlite_in_data_dir_on_localhost_8080() {
        let c = Config::from_sources(None, &env(&[("KONTOR_DATA_DIR", "/srv/k")])).unwrap();
        assert_eq!(c.database_url, "sqlite:///srv/k/kontor.db");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.mode, Mode::SelfHosted);
    }

    #[test]
    fn bad_values_name_the_key() {
        for (key, value) in [
            ("KONTOR_LISTEN", "nowhere"),
            ("KONTOR_MODE", "cloud"),
            ("KONTOR_DATABASE_URL", "mysql://x"),
            ("KONTOR_LOG_FORMAT", "xml"),
        ] {
            let err = Config::from_sources(None, &env(&[(key, value)])).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn smtp_settings_are_validated_by_key_and_the_password_never_shown() {
        let c = Config::from_sources(None, &env(&[])).unwrap();
        assert!(c.smtp.is_none(), "no relay unless configured");
        let c = Config::from_sources(
            None,
            &env(&[
                ("KONTOR_SMTP_HOST", "mail.example.com"),
                ("KONTOR_SMTP_USERNAME", "kontor"),
                ("KONTOR_SMTP_PASSWORD", "relay-pass-123"),
                ("KONTOR_MAIL_FROM", "Example <billing@example.com>"),
            ]),
        )
        .unwrap();
        let smtp = c.smtp.as_ref().unwrap();
        assert_eq!((smtp.port, smtp.tls), (587, crate::mail::SmtpTls::StartTls));
        assert!(!format!("{c:?}").contains("relay-pass-123"));
        let tls = Config::from_sources(
            None,
            &env(&[
                ("KONTOR_SMTP_HOST", "mail.example.com"),
                ("KONTOR_SMTP_TLS", "tls"),
                ("KONTOR_MAIL_FROM", "billing@example.com"),
            ]),
        )
        .unwrap();
        assert_eq!(tls.smtp.unwrap().port, 465);
        for (pairs, key) in [
            (vec![("KONTOR_SMTP_HOST", "h")], "mail_from"),
            (
                vec![
                    ("KONTOR_SMTP_HOST", "h"),
                    ("KONTOR_MAIL_FROM", "not an address"),
                ],
                "KONTOR_MAIL_FROM",
            ),
            (
                vec![
                    ("KONTOR_SMTP_HOST", "h"),
                    ("KONTOR_MAIL_FROM", "a@b.c"),
                    ("KONTOR_SMTP_TLS", "ssl"),
                ],
                "KONTOR_SMTP_TLS",
            ),
            (
                vec![
                    ("KONTOR_SMTP_HOST", "h"),
                    ("KONTOR_MAIL_FROM", "a@b.c"),
                    ("KONTOR_SMTP_PORT", "0"),
                ],
                "KONTOR_SMTP_PORT",
            ),
            (
                vec![
                    ("KONTOR_SMTP_HOST", "h"),
                    ("KONTOR_MAIL_FROM", "a@b.c"),
                    ("KONTOR_SMTP_PASSWORD", "only-a-pass"),
                ],
                "smtp_username",
            ),
        ] {
            let err = Config::from_sources(None, &env(&pairs))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{pairs:?}: {err}");
            assert!(!err.contains("only-a-pass"), "{err}");
        }
    }

    #[test]
    fn the_secret_key_is_validated_and_never_repeated() {
        let key = "c2VjcmV0LWtleS1mb3ItY29uZmlnLXRlc3RzLTEyMzQ=";
        let c = Config::from_sources(None, &env(&[("KONTOR_SECRET_KEY", key)])).unwrap();
        assert!(c.secret_key.is_some());
        assert!(!format!("{c:?}").contains(key), "Debug hides the key");
        let bad = "not-a-key-but-a-password";
        let err = Config::from_sources(None, &env(&[("KONTOR_SECRET_KEY", bad)])).unwrap_err();
        assert!(err.to_string().contains("KONTOR_SECRET_KEY"), "{err}");
        assert!(!err.to_string().contains(bad), "{err}");
    }

    #[test]
    fn file_values_apply_and_environment_wins() {
        let dir = std::env::temp_dir().join(format!("kontor-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kontor.toml");
        std::fs::write(&path, "mode = \"saas\"\nlisten = \"0.0.0.0:9000\"\n").unwrap();
        let c = Config::from_sources(Some(&path), &env(&[("KONTOR_LISTEN", "127.0.0.1:7000")]))
            .unwrap();
        assert_eq!(c.mode, Mode::Saas);
        assert_eq!(c.listen.to_string(), "127.0.0.1:7000");

        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let err = Config::from_sources(Some(&path), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
        std::fs::remove_dir_all(dir).ok();
    }
}
