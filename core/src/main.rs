//! The `kontor` binary: everything lives in the library; see `kontor::cli`.

fn main() -> std::process::ExitCode {
    // wasmtime creates an error value on every store drop (once per module
    // call); with RUST_BACKTRACE set, each one walks the stack (~5 µs).
    // Panics still follow RUST_BACKTRACE; only error values stop capturing.
    // Edition 2021 and before any thread starts, so this is sound.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    kontor::cli::main()
}
