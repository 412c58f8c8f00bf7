//! `new`: scaffold a module crate that builds, packs and installs as is.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use kontor::modules::manifest::{Manifest, RESERVED_IDS};

use crate::wit::Contract;

/// Arguments of `new`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The module id: lower-case letters, digits and `-`, 2 to 32
    /// characters, starting with a letter. It names the crate, the URL
    /// prefix (`/api/v1/<name>`) and the permissions.
    name: String,
    /// The folder to create (default: `./<name>`). It must not exist or be
    /// empty.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A local `kontor-sdk` checkout to depend on by path (e.g.
    /// `<kontor>/sdk/kontor-sdk`); without it the crate depends on the
    /// `kontor-sdk` version of this CLI's contract.
    #[arg(long)]
    sdk_path: Option<PathBuf>,
    /// The manifest's `publisher`: must match the publisher of the key you
    /// will sign with.
    #[arg(long, default_value = "dev")]
    publisher: String,
}

/// Write the scaffold, check its manifest with the host's parser, and say
/// what to run next.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    check_id(&args.name)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    check_empty(&dir)?;
    let contract = Contract::load()?;
    let (sdk_dependency, sdk_note) = match &args.sdk_path {
        Some(path) => {
            let path = std::path::absolute(path)
                .with_context(|| format!("--sdk-path {}", path.display()))?;
            if !path.join("Cargo.toml").is_file() {
                bail!(
                    "--sdk-path {}: no Cargo.toml there; point it at the `sdk/kontor-sdk` folder of a Kontor checkout",
                    path.display()
                );
            }
            (
                format!(
                    "kontor-sdk = {{ path = {} }}",
                    toml_string(&path.display().to_string())
                ),
                format!(
                    "`Cargo.toml` depends on the `kontor-sdk` at `{}` by path.",
                    path.display()
                ),
            )
        }
        None => {
            let req = format!("{}.{}", contract.version.major, contract.version.minor);
            (
                format!("kontor-sdk = \"{req}\""),
                format!(
                    "`Cargo.toml` depends on `kontor-sdk = \"{req}\"` from the registry. If it is not published where you build, point it at a Kontor checkout instead: `kontor-sdk = {{ path = \"<kontor>/sdk/kontor-sdk\" }}` (or scaffold with `kontor-module new --sdk-path <kontor>/sdk/kontor-sdk`)."
                ),
            )
        }
    };
    let test_dependency = test_dependency(args.sdk_path.as_deref(), &contract)?;
    let fill = |template: &str| {
        template
            .replace("{{id}}", &args.name)
            .replace("{{module_type}}", &type_name(&args.name))
            .replace("{{publisher}}", &args.publisher)
            .replace("{{api}}", &contract.api_requirement())
            .replace("{{sdk_dependency}}", &sdk_dependency)
            .replace("{{test_dependency}}", &test_dependency)
            .replace("{{sdk_note}}", &sdk_note)
    };
    let manifest = fill(include_str!("scaffold/module.toml.tmpl"));
    // The host's own parser: a scaffold the server would refuse is a bug here,
    // and a bad --publisher is the user's to fix before anything is written.
    Manifest::parse("module.toml", &manifest)?;
    let files = [
        ("Cargo.toml", fill(include_str!("scaffold/Cargo.toml.tmpl"))),
        ("module.toml", manifest),
        ("src/lib.rs", fill(include_str!("scaffold/lib.rs.tmpl"))),
        (
            "tests/module.rs",
            fill(include_str!("scaffold/tests/module.rs.tmpl")),
        ),
        (
            ".cargo/config.toml",
            include_str!("scaffold/config.toml.tmpl").to_string(),
        ),
        ("README.md", fill(include_str!("scaffold/README.md.tmpl"))),
        (
            ".gitignore",
            include_str!("scaffold/gitignore.tmpl").to_string(),
        ),
    ];
    for (name, text) in &files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "created module {} in {} (kontor:module {})",
        args.name,
        dir.display(),
        contract.api_requirement()
    );
    for (name, _) in &files {
        println!("  {name}");
    }
    println!(
        "next: cd {} && kontor-module build --release",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The `kontor-test` dev-dependency line: beside `--sdk-path` in the same
/// checkout (`<kontor>/sdk/kontor-test`) when there is one, else the
/// registry version of this CLI's contract.
fn test_dependency(sdk_path: Option<&Path>, contract: &Contract) -> anyhow::Result<String> {
    if let Some(sdk) = sdk_path {
        let sdk =
            std::path::absolute(sdk).with_context(|| format!("--sdk-path {}", sdk.display()))?;
        if let Some(test) = sdk.parent().map(|p| p.join("kontor-test")) {
            if test.join("Cargo.toml").is_file() {
                return Ok(format!(
                    "kontor-test = {{ path = {} }}",
                    toml_string(&test.display().to_string())
                ));
            }
        }
    }
    Ok(format!(
        "kontor-test = \"{}.{}\"",
        contract.version.major, contract.version.minor
    ))
}

/// The host's module id rule (mirrors `valid_id` in
/// `core/src/modules/manifest.rs`, which is private there), with the reason
/// a name fails.
pub fn check_id(id: &str) -> anyhow::Result<()> {
    let rule = "a module id is 2 to 32 lower-case letters, digits and `-`, starting with a letter and not ending with `-`";
    let problem = if !(2..=32).contains(&id.len()) {
        Some(format!("it is {} characters long", id.len()))
    } else if !id.starts_with(|c: char| c.is_ascii_lowercase()) {
        Some("it does not start with a lower-case letter".to_string())
    } else if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        Some(format!("it contains `{c}`"))
    } else if id.ends_with('-') {
        Some("it ends with `-`".to_string())
    } else {
        None
    };
    if let Some(problem) = problem {
        bail!("`{id}` is not a valid module id: {problem}; {rule}");
    }
    if RESERVED_IDS.contains(&id) {
        bail!("`{id}` is not a valid module id: the core serves `/api/v1/{id}` itself; choose another name");
    }
    Ok(())
}

/// The Rust type name for module `id`: `my-crm` → `MyCrm`.
pub fn type_name(id: &str) -> String {
    id.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Refuse to write into a folder that has anything in it.
fn check_empty(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    if !dir.is_dir() {
        bail!(
            "{} exists and is not a folder; choose another --dir",
            dir.display()
        );
    }
    let mut entries =
        std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    if entries.next().is_some() {
        bail!(
            "{} already exists and is not empty; choose another --dir or name",
            dir.display()
        );
    }
    Ok(())
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}
