//! The installer end to end: `kontor-install` runs as a real process into a
//! temp dir (SQLite, and PostgreSQL with its own database), then the real
//! server starts from the written `kontor.toml` and the new admin logs in
//! over HTTP; a second run changes nothing. The interactive installer is
//! driven through a pseudo-terminal, answers typed at its prompts.
//!
//! The server binary is the installer binary started under the name
//! `kontor` (the test-only `multicall` feature), so these tests do not need
//! a second build of the core.

mod support;

use std::process::Command;

use support::*;

async fn install_log_in_and_rerun(backend: Backend) {
    let Some(env) = TestEnv::new(backend).await else {
        return;
    };
    let port = free_port();
    let sink = kontor_smtp_sink::SmtpSink::start().unwrap();
    let answers = env.dir.join("answers.toml");
    std::fs::write(
        &answers,
        format!(
            "company = \"Muster AG\"\nlanguage = \"en\"\ntimezone = \"Europe/Berlin\"\ncurrency = \"EUR\"\nmodules = [\"hello\"]\nlisten = \"127.0.0.1:{port}\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nsmtp_tls = \"none\"\nsmtp_username = \"relay-user\"\nsmtp_from = \"Muster AG <kontor@example.com>\"\n",
            sink.port()
        ),
    )
    .unwrap();
    let mut args = env.install_args();
    args.extend(["--answers".into(), answers.display().to_string()]);
    args.extend(env.database_args());
    let out = run_installer(&args, &[("KONTOR_SMTP_PASSWORD", "relay-secret-42")]);
    assert!(out.ok, "install failed:\n{}", out.text);
    // The SMTP step sent its test message over a real SMTP conversation.
    let mail = sink.messages();
    assert_eq!(mail.len(), 1, "one test e-mail");
    assert_eq!(mail[0].to, vec!["owner@example.com".to_string()]);
    assert_eq!(mail[0].subject().as_deref(), Some("Kontor test e-mail"));
    assert_eq!(mail[0].auth_user.as_deref(), Some("relay-user"));
    assert_eq!(mail[0].auth_password.as_deref(), Some("relay-secret-42"));
    assert!(
        !out.text.contains("relay-secret-42"),
        "the SMTP password is not echoed"
    );
    let password = generated_password(&out.text).expect("a generated password is printed");
    assert_eq!(
        out.text.matches(&password).count(),
        1,
        "the generated password is printed exactly once"
    );
    // The database password never appears (PostgreSQL URLs carry none here,
    // but the redaction is what prints them).
    let config_text = std::fs::read_to_string(&env.config).unwrap();
    assert!(config_text.contains(&format!("127.0.0.1:{port}")));
    assert!(config_text.contains("smtp_host") && config_text.contains("mail_from"));
    assert_eq!(mode_of(&env.config), 0o600, "kontor.toml is private");

    // The real server, from the written file, and the admin logs in.
    let server = Server::start(&env, port).await;
    let token = server.login("owner@example.com", &password).await;
    let settings = server.get_json("/api/v1/settings", &token).await;
    let text = settings.to_string();
    for expected in ["Muster AG", "\"en\"", "Europe/Berlin", "EUR"] {
        assert!(text.contains(expected), "{expected} missing in {text}");
    }
    let modules = server.get_json("/api/v1/modules", &token).await.to_string();
    assert!(
        modules.contains("\"hello\"") && modules.contains("enabled"),
        "{modules}"
    );
    assert!(server.get_status("/login").await.is_success());
    server.stop();

    // A second run detects the install and changes nothing.
    let before = env.snapshot().await;
    let config_before = std::fs::read(&env.config).unwrap();
    let again = run_installer(&args, &[("KONTOR_SMTP_PASSWORD", "relay-secret-42")]);
    assert!(again.ok, "second run failed:\n{}", again.text);
    assert!(again.text.contains("already installed"), "{}", again.text);
    assert!(!again.text.contains("Password "), "{}", again.text);
    assert_eq!(std::fs::read(&env.config).unwrap(), config_before);
    assert_eq!(env.snapshot().await, before, "the database is unchanged");
    assert_eq!(sink.messages().len(), 1, "no second test e-mail");

    // Asked to, it changes what it was given — and nothing else.
    let mut reconfigure = args.clone();
    reconfigure.extend(["--reconfigure".into(), "--currency".into(), "USD".into()]);
    let out = run_installer(&reconfigure, &[("KONTOR_SMTP_PASSWORD", "relay-secret-42")]);
    assert!(out.ok, "reconfigure failed:\n{}", out.text);
    let after = env.snapshot().await;
    assert!(after["settings"]
        .iter()
        .any(|r| r.contains("billing.currency") && r.contains("USD")));
    assert!(
        after["settings"].iter().any(|r| r.contains("Muster AG")),
        "other settings kept"
    );
    assert_eq!(after["users"], before["users"], "users untouched");
    assert_eq!(after["customers"], before["customers"]);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_interactive_install_on_sqlite_serves_the_new_admin_and_a_rerun_changes_nothing() {
    install_log_in_and_rerun(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_interactive_install_on_postgres_creates_the_database_serves_the_new_admin_and_a_rerun_changes_nothing(
) {
    install_log_in_and_rerun(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_refuses_a_busy_port_and_a_weak_password_before_writing_anything() {
    let env = TestEnv::new(Backend::Sqlite).await.unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let base = |listen: String, password: &str| {
        let mut args = env.install_args();
        args.extend([
            "--admin-password".into(),
            password.into(),
            "--listen".into(),
            listen,
        ]);
        args
    };
    let out = run_installer(
        &base(format!("127.0.0.1:{port}"), "long enough password"),
        &[],
    );
    assert!(!out.ok);
    assert!(
        out.text
            .contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{}",
        out.text
    );
    assert!(
        out.text.contains("--listen"),
        "the fix is named: {}",
        out.text
    );
    assert!(!env.config.exists(), "nothing written");
    let out = run_installer(&base(format!("127.0.0.1:{}", free_port()), "short"), &[]);
    assert!(!out.ok);
    assert!(out.text.contains("--admin-password"), "{}", out.text);
    assert!(!env.config.exists(), "nothing written");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_install_through_a_terminal_takes_typed_answers() {
    let env = TestEnv::new(Backend::Sqlite).await.unwrap();
    let port = free_port();
    let mut cmd = Command::new(installer_bin());
    cmd.arg("--config").arg(&env.config);
    clean_env(&mut cmd);
    let mut p = rexpect::session::spawn_command(cmd, Some(60_000)).unwrap();
    let data_dir = env.data_dir.display().to_string();
    let listen = format!("127.0.0.1:{port}");
    let answers: &[(&str, &str)] = &[
        ("Data directory", &data_dir),
        ("Database", "sqlite"),
        ("Listen address", &listen),
        ("Public URL", ""),
        ("Administrator e-mail", "typed@example.com"),
        ("Administrator name", "Typed Admin"),
        ("Administrator password", "typed password 123"),
        ("Repeat it", "typed password 123"),
        ("Company name", "Tippfehler GmbH"),
        ("Language", "en"),
        ("Time zone", ""),
        ("Currency", ""),
        ("License file", ""),
        ("Modules to enable", "hello"),
        ("SMTP host", ""),
    ];
    for (prompt, typed) in answers {
        p.exp_string(prompt)
            .unwrap_or_else(|e| panic!("prompt {prompt}: {e}"));
        p.send(&format!("{typed}\r")).unwrap();
        p.flush().unwrap();
    }
    let rest = p.exp_eof().unwrap();
    assert!(rest.contains("Kontor is installed"), "{rest}");
    assert!(
        !rest.contains("typed password 123"),
        "the password is not echoed"
    );
    let server = Server::start(&env, port).await;
    let token = server
        .login("typed@example.com", "typed password 123")
        .await;
    let settings = server
        .get_json("/api/v1/settings", &token)
        .await
        .to_string();
    assert!(
        settings.contains("Tippfehler GmbH") && settings.contains("CHF"),
        "{settings}"
    );
    server.stop();
    env.cleanup().await;
}
