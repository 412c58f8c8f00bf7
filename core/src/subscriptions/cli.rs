//! `kontor plan ...` and `kontor subscription ...`: the operator's side.
//!
//! Plans are install-wide and change rarely, so the operator manages them
//! on the command line, the way `kontor module` and `kontor tenant` work on
//! a SaaS install; the HTTP API has no operator identity for them.

use clap::Subcommand;

use super::lifecycle::{self, Actor, Change, Scope, Target};
use super::plans::{self, Interval, NewPlan};
use super::Policy;
use crate::clock::Clock;
use crate::config::{Config, Mode};
use crate::db::Db;

/// `kontor plan ...`
#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Offer a new plan.
    Create {
        /// Name shown to tenants.
        #[arg(long)]
        name: String,
        /// Modules included (entitlement keys, by default the module ids), comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        modules: Vec<String>,
        /// Price per interval in minor units (4900 = 49.00); 0 for a free plan.
        #[arg(long)]
        price_minor: i64,
        /// ISO 4217 currency code.
        #[arg(long, default_value = "CHF")]
        currency: String,
        /// How often it is paid.
        #[arg(long, value_enum, default_value_t = Interval::Month)]
        interval: Interval,
        /// Days of free trial a new subscription starts with.
        #[arg(long, default_value_t = 14)]
        trial_days: i64,
    },
    /// List the plans (offered ones; `--all` with archived).
    List {
        /// Also archived plans.
        #[arg(long)]
        all: bool,
    },
    /// Stop offering a plan; its subscribers keep it.
    Archive {
        /// Plan id.
        id: String,
    },
}

/// `kontor subscription ...`
#[derive(Debug, Subcommand)]
pub enum SubscriptionCommand {
    /// A tenant's subscriptions.
    List {
        /// Tenant id or slug.
        #[arg(long)]
        tenant: String,
    },
    /// Mark a subscription paid outside the payment provider (e.g. by bank
    /// transfer): active for a period; an active one stays as it is.
    Activate {
        /// Subscription id.
        id: String,
    },
}

fn saas_only(config: &Config) -> anyhow::Result<()> {
    if config.mode != Mode::Saas {
        anyhow::bail!("plans and subscriptions exist in SaaS mode (KONTOR_MODE=saas); a self-hosted install is unlocked by its license");
    }
    Ok(())
}

/// Run `kontor plan ...`.
pub async fn plan(
    db: &Db,
    config: &Config,
    clock: &dyn Clock,
    command: PlanCommand,
) -> anyhow::Result<()> {
    saas_only(config)?;
    let now = clock.now_ms();
    match command {
        PlanCommand::Create {
            name,
            modules,
            price_minor,
            currency,
            interval,
            trial_days,
        } => {
            let new = NewPlan {
                name,
                modules,
                price_minor,
                currency: currency.to_uppercase(),
                interval,
                trial_days,
            };
            let p = plans::create(db, &new, now).await?;
            println!(
                "created plan {} ({}): {} per {}, modules {}",
                p.id,
                p.name,
                p.price_text(),
                p.interval.as_str(),
                p.modules.join(", ")
            );
        }
        PlanCommand::List { all } => {
            for p in plans::list(db, all).await? {
                println!(
                    "{}\t{}\t{}/{}\ttrial {} days\t{}\t{}",
                    p.id,
                    p.name,
                    p.price_text(),
                    p.interval.as_str(),
                    p.trial_days,
                    p.modules.join(","),
                    p.status
                );
            }
        }
        PlanCommand::Archive { id } => {
            plans::archive(db, &id, now).await?;
            println!("archived plan {id}; its subscribers keep it");
        }
    }
    Ok(())
}

/// Run `kontor subscription ...`.
pub async fn subscription(
    db: &Db,
    config: &Config,
    clock: &dyn Clock,
    command: SubscriptionCommand,
) -> anyhow::Result<()> {
    saas_only(config)?;
    let now = clock.now_ms();
    let policy = Policy::from_config(config);
    match command {
        SubscriptionCommand::List { tenant } => {
            let t = crate::tenants::find(db, &tenant)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no tenant with id or slug `{tenant}`"))?;
            let tenant = crate::ids::TenantId::from_trusted(t.id);
            for s in lifecycle::list(db, &tenant, policy, now).await? {
                println!(
                    "{}\t{}\t{}\tuntil {}\tmodules {}",
                    s.id,
                    s.plan.name,
                    s.status.as_str(),
                    s.current_period_end,
                    s.access.entitlement_status()
                );
            }
        }
        SubscriptionCommand::Activate { id } => {
            let s = lifecycle::apply(
                db,
                Target {
                    scope: Scope::Any,
                    id: &id,
                },
                Change::Activate,
                Actor::Operator,
                policy,
                now,
            )
            .await?;
            println!(
                "subscription {} is {} until {}",
                s.id,
                s.status.as_str(),
                s.current_period_end
            );
        }
    }
    Ok(())
}
