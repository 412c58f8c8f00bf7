//! The `kontor-install` binary: everything lives in the library; see
//! `kontor_install::cli`.

fn main() -> std::process::ExitCode {
    kontor::quiet_error_backtraces();
    // Test builds only: started under the name `kontor`, be the server's
    // command line (see the `multicall` feature in Cargo.toml).
    #[cfg(feature = "multicall")]
    if std::env::args_os()
        .next()
        .and_then(|a| std::path::Path::new(&a).file_name().map(|n| n == "kontor"))
        .unwrap_or(false)
    {
        // A copy with a release trailer stands for another release (the
        // upgrade tests' "next versions"; see `kontor::release`).
        if let Err(e) = kontor::release::trailer::adopt_own() {
            eprintln!("kontor: {e}");
            return std::process::ExitCode::from(2);
        }
        return kontor::cli::main();
    }
    kontor_install::cli::main()
}
