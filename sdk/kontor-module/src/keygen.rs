//! `keygen`: a new publisher key pair.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use kontor::modules::trust::{self, PublisherKey};

/// Arguments of `keygen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The publisher the key signs for; must match the `publisher` of the
    /// modules you sign with it.
    #[arg(long)]
    publisher: String,
    /// Folder to write `<key_id>.key` and `<key_id>.pub` into (created if
    /// missing).
    #[arg(long)]
    out: PathBuf,
}

/// Write the key pair. The private key never reaches the terminal.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let key = trust::generate_signing_key();
    // Check the publisher before anything is written.
    let public = PublisherKey::new(&args.publisher, &key.verifying_key())?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let key_path = args.out.join(format!("{}.key", public.key_id));
    let pub_path = args.out.join(format!("{}.pub", public.key_id));
    trust::write_signing_key(&key_path, &key)?;
    trust::write_public_key(&pub_path, &public)?;
    println!("key id:      {}", public.key_id);
    println!(
        "private key: {} (keep it secret: it signs as {})",
        key_path.display(),
        public.publisher
    );
    println!(
        "public key:  {} (give it to the servers that should trust you)",
        pub_path.display()
    );
    println!("{}", public.to_text());
    Ok(ExitCode::SUCCESS)
}
