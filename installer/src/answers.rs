//! Every question the installer asks has a flag and a key in the answers
//! file (`--answers answers.toml`, same names with `_`), so an install can
//! be scripted completely. Flags win over the file; what neither gives is
//! asked (interactive) or takes its documented default (non-interactive).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Which database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DbKind {
    /// A file in the data dir; nothing else to run.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// The answers. `None` means "not given": asked or defaulted later.
#[derive(Debug, Clone, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Answers {
    /// Where Kontor keeps its SQLite file, module cache and keys.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// `sqlite` or `postgres`.
    #[arg(long, value_enum)]
    pub database: Option<DbKind>,
    /// PostgreSQL: `postgres://user:password@host:5432/kontor`. The database
    /// is created when it is missing and the role may create databases.
    #[arg(long, env = "KONTOR_INSTALL_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Address the server listens on (default 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<String>,
    /// The URL users open (default http://<listen>/).
    #[arg(long)]
    pub public_url: Option<String>,
    /// The first administrator's e-mail.
    #[arg(long)]
    pub admin_email: Option<String>,
    /// The first administrator's name (default Administrator).
    #[arg(long)]
    pub admin_name: Option<String>,
    /// The first administrator's password; without it one is generated and
    /// printed once.
    #[arg(long, env = "KONTOR_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Company name.
    #[arg(long)]
    pub company: Option<String>,
    /// Default UI language: de or en (default de).
    #[arg(long)]
    pub language: Option<String>,
    /// Time zone (default Europe/Zurich).
    #[arg(long)]
    pub timezone: Option<String>,
    /// Currency (default CHF).
    #[arg(long)]
    pub currency: Option<String>,
    /// A license file to install (verified first); without it the trial starts.
    #[arg(long)]
    pub license: Option<PathBuf>,
    /// Bundled modules to enable, comma-separated (default: all); `none`
    /// for none. Their dependencies are enabled too.
    #[arg(long, value_delimiter = ',')]
    pub modules: Option<Vec<String>>,
    /// SMTP host for outgoing e-mail; without it e-mail is not set up.
    #[arg(long)]
    pub smtp_host: Option<String>,
    /// SMTP port (default 587).
    #[arg(long)]
    pub smtp_port: Option<u16>,
    /// SMTP TLS: starttls, tls or none (default starttls).
    #[arg(long)]
    pub smtp_tls: Option<String>,
    /// SMTP user name.
    #[arg(long)]
    pub smtp_username: Option<String>,
    /// SMTP password.
    #[arg(long, env = "KONTOR_SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<String>,
    /// Sender address of Kontor's e-mail.
    #[arg(long)]
    pub smtp_from: Option<String>,
    /// Where the test e-mail goes (default: the admin's address).
    #[arg(long)]
    pub smtp_test_to: Option<String>,
}

impl Answers {
    /// Read an answers file (TOML, the flag names with `_`).
    pub fn from_file(path: &Path) -> anyhow::Result<Answers> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read answers file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("answers file {}: {e}", path.display()))
    }

    /// `self` with every unset answer taken from `base` (flags over file).
    pub fn over(self, base: Answers) -> Answers {
        macro_rules! pick {
            ($($f:ident),*) => { Answers { $($f: self.$f.or(base.$f)),* } };
        }
        pick!(
            data_dir,
            database,
            database_url,
            listen,
            public_url,
            admin_email,
            admin_name,
            admin_password,
            company,
            language,
            timezone,
            currency,
            license,
            modules,
            smtp_host,
            smtp_port,
            smtp_tls,
            smtp_username,
            smtp_password,
            smtp_from,
            smtp_test_to
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_answers_file_and_unknown_keys_are_refused() {
        let file: Answers =
            toml::from_str("company = \"File AG\"\nlanguage = \"en\"\nmodules = [\"hello\"]\n")
                .unwrap();
        let flags = Answers {
            company: Some("Flag GmbH".into()),
            ..Answers::default()
        };
        let merged = flags.over(file);
        assert_eq!(merged.company.as_deref(), Some("Flag GmbH"));
        assert_eq!(merged.language.as_deref(), Some("en"));
        assert_eq!(merged.modules, Some(vec!["hello".to_string()]));
        assert!(toml::from_str::<Answers>("compnay = \"x\"\n").is_err());
    }
}
