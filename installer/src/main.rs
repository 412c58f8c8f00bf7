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
        return kontor::cli::main();
    }
    kontor_install::cli::main()
}
