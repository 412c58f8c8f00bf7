//! The `kontor` binary: everything lives in the library; see `kontor::cli`.

fn main() -> std::process::ExitCode {
    kontor::quiet_error_backtraces();
    kontor::cli::main()
}
