//! `inspect`: what a package holds, and whether a server would install it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use kontor::modules::manifest::Manifest;
use kontor::modules::package::{self, OpenOptions, Size};
use kontor::modules::trust::{self, TrustStore};

/// Arguments of `inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The package.
    package: PathBuf,
    /// A public key file (`.pub`) to trust besides the built-in vendor key
    /// (repeatable).
    #[arg(long)]
    trust: Vec<PathBuf>,
    /// Judge as a server started with `--dev` would: trust the development
    /// key and accept unsigned packages.
    #[arg(long)]
    dev: bool,
}

/// Print the package; the exit status says whether a server with this trust
/// store would install it (0) or refuse it (1), like `gpg --verify`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut store = TrustStore::builtin(args.dev);
    for path in &args.trust {
        store.add_key(&trust::read_public_key(path)?)?;
    }
    let bytes = std::fs::read(&args.package)
        .with_context(|| format!("reading {}", args.package.display()))?;
    let shown = package::inspect(&bytes, &store)?;
    let m = &shown.manifest;
    println!("package:      {}", args.package.display());
    print_manifest(m);
    let files: Vec<String> = shown
        .files
        .iter()
        .map(|(path, size)| format!("{path} ({})", Size(*size)))
        .collect();
    print_list("files", &files);
    println!("digest:       sha256:{}", shown.digest);
    println!("signature:    {}", shown.signature);
    match package::open(&bytes, &store, OpenOptions { dev: args.dev }) {
        Ok(_) => {
            println!("verdict:      installable");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("verdict:      refused ({}): {e}", e.code());
            Ok(ExitCode::FAILURE)
        }
    }
}

fn print_manifest(m: &Manifest) {
    println!("id:           {}", m.id);
    println!("name:         {}", m.name);
    println!("version:      {}", m.version);
    println!("publisher:    {}", m.publisher);
    println!("api:          kontor:module {}", m.api);
    println!("entitlement:  {}", m.entitlement_key());
    let deps: Vec<String> = m
        .dependencies
        .iter()
        .map(|d| {
            let optional = if d.optional { " (optional)" } else { "" };
            format!("{} {}{optional}", d.id, d.version)
        })
        .collect();
    print_list("dependencies", &deps);
    print_list("capabilities", &m.capabilities);
    let permissions: Vec<String> = m.permissions.iter().map(|p| p.name.clone()).collect();
    print_list("permissions", &permissions);
    let routes: Vec<String> = m
        .routes
        .iter()
        .map(|r| match &r.signed_by {
            Some(secret) => format!(
                "{} /api/v1/hooks/{{tenant}}/{}{} [signed with the secret {secret}]",
                r.method, m.id, r.path
            ),
            None => {
                let permission = r.permission.as_deref().unwrap_or("any signed-in user");
                format!("{} /api/v1/{}{} [{permission}]", r.method, m.id, r.path)
            }
        })
        .collect();
    print_list("routes", &routes);
    let pages: Vec<String> = m
        .pages
        .iter()
        .map(|p| format!("/app/{}{} \"{}\"", m.id, p.path, p.title))
        .collect();
    print_list("pages", &pages);
    let events: Vec<String> = m.events.iter().map(|e| e.name.clone()).collect();
    print_list("events", &events);
    let filters: Vec<String> = m
        .filters
        .iter()
        .map(|f| format!("{} (priority {})", f.hook, f.priority))
        .collect();
    print_list("filters", &filters);
    let jobs: Vec<String> = m
        .jobs
        .iter()
        .map(|j| format!("{} ({})", j.name, j.schedule))
        .collect();
    print_list("jobs", &jobs);
}

/// `label:` and one item per line, aligned; `(none)` when empty.
fn print_list(label: &str, items: &[String]) {
    let head = format!("{label}:");
    if items.is_empty() {
        println!("{head:<14}(none)");
    }
    for (i, item) in items.iter().enumerate() {
        let head = if i == 0 { head.as_str() } else { "" };
        println!("{head:<14}{item}");
    }
}
