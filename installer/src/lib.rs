//! `kontor-install`: the self-host installer and upgrader.
//!
//! Everything Kontor already knows how to do (migrations, users, settings,
//! license verification, module enabling) is done by calling the `kontor`
//! library, so the installer and the server can never disagree about it. A
//! guided tour, one line per part:

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

/// Every answer the installer needs, from flags, an answers file or prompts.
pub mod answers;
/// The `kontor-install` command line.
pub mod cli;
/// Creating the database (SQLite file, or a PostgreSQL database when the role may).
pub mod database;
/// Finding an existing installation, so a second run changes nothing unless asked.
pub mod detect;
/// The install steps, in order.
pub mod install;
/// Checks before anything is written: data dir, port, disk space, database.
pub mod preflight;
/// Interactive prompts and progress output.
pub mod prompt;
/// Starting the server briefly and checking it answers.
pub mod smoke;
/// The systemd unit file.
pub mod systemd;
/// Signed update packages and `kontor-install upgrade`.
pub mod upgrade;
/// Writing `kontor.toml`.
pub mod write_config;
