//! Shared by the installer's tests: temp installs, the server process, and
//! a full dump of the database to compare before and after.

#![allow(dead_code, reason = "each test binary uses part of this")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use sqlx::Connection;

/// Which database an installation uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A file in the data dir.
    Sqlite,
    /// Its own database on the test PostgreSQL server.
    Postgres,
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn pg_base() -> String {
    std::env::var("KONTOR_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

fn pg_url_for(database: &str) -> String {
    let mut url = url::Url::parse(&pg_base()).unwrap();
    url.set_query(None);
    url.set_path(&format!("/{database}"));
    url.to_string()
}

/// A temp dir for one installation.
pub struct TestEnv {
    /// The temp dir.
    pub dir: PathBuf,
    /// `dir/kontor.toml`.
    pub config: PathBuf,
    /// `dir/data`.
    pub data_dir: PathBuf,
    /// `dir/bin/kontor`: the server binary.
    pub kontor_bin: PathBuf,
    /// The backend.
    pub backend: Backend,
    /// PostgreSQL: the database made for this test.
    pub pg_database: Option<String>,
}

impl TestEnv {
    /// A fresh environment; `None` when PostgreSQL is not there outside CI.
    pub async fn new(backend: Backend) -> Option<TestEnv> {
        let dir =
            std::env::temp_dir().join(format!("kontor-install-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        let kontor_bin = dir.join("bin").join("kontor");
        if std::fs::hard_link(installer_bin(), &kontor_bin).is_err() {
            std::fs::copy(installer_bin(), &kontor_bin).unwrap();
        }
        let pg_database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                match sqlx::PgConnection::connect(&pg_url_for("postgres")).await {
                    Ok(c) => {
                        let _ = c.close().await;
                    }
                    Err(e) if !in_ci() => {
                        eprintln!("NOTICE: PostgreSQL not reachable ({e}); skipping the PostgreSQL run of this test");
                        let _ = std::fs::remove_dir_all(&dir);
                        return None;
                    }
                    Err(e) => panic!("PostgreSQL is required in CI: {e}"),
                }
                Some(format!("kontor_install_{}", uuid::Uuid::new_v4().simple()))
            }
        };
        Some(TestEnv {
            config: dir.join("kontor.toml"),
            data_dir: dir.join("data"),
            kontor_bin,
            dir,
            backend,
            pg_database,
        })
    }

    /// `--non-interactive` install flags into this environment, with
    /// `owner@example.com` as the first admin.
    pub fn install_args(&self) -> Vec<String> {
        vec![
            "--non-interactive".into(),
            "--config".into(),
            self.config.display().to_string(),
            "--data-dir".into(),
            self.data_dir.display().to_string(),
            "--admin-email".into(),
            "owner@example.com".into(),
        ]
    }

    /// The installer flags that choose this backend.
    pub fn database_args(&self) -> Vec<String> {
        match &self.pg_database {
            None => vec![],
            Some(name) => vec![
                "--database".into(),
                "postgres".into(),
                "--database-url".into(),
                pg_url_for(name),
            ],
        }
    }

    /// The database URL the installation uses (from its config file).
    pub fn database_url(&self) -> String {
        let table: toml::Table = std::fs::read_to_string(&self.config)
            .unwrap()
            .parse()
            .unwrap();
        table["database_url"].as_str().unwrap().to_string()
    }

    /// Every row of every table, as text, sorted: compared, not sampled.
    pub async fn snapshot(&self) -> BTreeMap<String, Vec<String>> {
        dump(&self.database_url()).await
    }

    /// Remove the dir and drop the PostgreSQL database.
    pub async fn cleanup(self) {
        if let Some(name) = &self.pg_database {
            if let Ok(mut c) = sqlx::PgConnection::connect(&pg_url_for("postgres")).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut c)
                    .await;
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every row of every table of the database at `url`, as sorted text.
pub async fn dump(url: &str) -> BTreeMap<String, Vec<String>> {
    let db = kontor::db::Db::connect(url).await.unwrap();
    let out = kontor::db::testing::dump_tables(&db).await.unwrap();
    db.close().await;
    out
}

/// The installer binary.
pub fn installer_bin() -> &'static str {
    env!("CARGO_BIN_EXE_kontor-install")
}

/// Drop `KONTOR_*` variables of the test's environment from `cmd`.
pub fn clean_env(cmd: &mut Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("KONTOR_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("KONTOR_LOG", "warn");
}

/// A finished installer run.
pub struct Output {
    /// Exit code 0.
    pub ok: bool,
    /// stdout, then stderr.
    pub text: String,
}

/// Run the installer with `args` and extra environment.
pub fn run_installer(args: &[String], env: &[(&str, &str)]) -> Output {
    run(Path::new(installer_bin()), args, env)
}

/// Run `bin` with `args` and extra environment.
pub fn run(bin: &Path, args: &[String], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args).stdin(Stdio::null());
    clean_env(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Output {
        ok: out.status.success(),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The password the summary prints, if one was generated.
pub fn generated_password(text: &str) -> Option<String> {
    text.lines()
        .find(|l| l.trim_start().starts_with("Password "))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(str::to_string)
}

/// Unix permission bits of a file.
pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A running `kontor serve`.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    client: reqwest::Client,
}

impl Server {
    /// Start the server of `env` on `port` and wait until it is ready.
    pub async fn start(env: &TestEnv, port: u16) -> Server {
        Self::start_bin(&env.kontor_bin, &env.config, port).await
    }

    /// Start `bin serve --config config` and wait until it is ready.
    pub async fn start_bin(bin: &Path, config: &Path, port: u16) -> Server {
        let mut cmd = Command::new(bin);
        cmd.arg("serve").arg("--config").arg(config);
        clean_env(&mut cmd);
        let child = cmd.spawn().unwrap();
        let mut server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        // Poll until ready; give up only when the process has died.
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("the server exited before it was ready: {status}");
            }
            if let Ok(r) = server
                .client
                .get(format!("{}/health/ready", server.base))
                .send()
                .await
            {
                if r.status().is_success() {
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        server
    }

    /// Log in; the session token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let r = self
            .client
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&serde_json::json!({ "email": email, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login as {email}");
        let body: serde_json::Value = r.json().await.unwrap();
        body["token"].as_str().unwrap().to_string()
    }

    /// GET a JSON document with a bearer token.
    pub async fn get_json(&self, path: &str, token: &str) -> serde_json::Value {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// POST JSON with a bearer token; the answer.
    pub async fn post_json(
        &self,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "POST {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// The status of an anonymous GET.
    pub async fn get_status(&self, path: &str) -> reqwest::StatusCode {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Stop it the way Ctrl-C does, and wait for it.
    pub fn stop(mut self) {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
