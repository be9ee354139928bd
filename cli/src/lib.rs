//! berth: docker's commands over the Docker Engine API.
//!
//! `client` speaks HTTP over berthd's unix socket (and hijacks
//! connections for attach and exec), `template` runs Go templates for
//! `--format`, `formatter` and `tabwriter` lay out docker's tables,
//! `units` prints sizes and durations as docker does, `jsonmessage` shows
//! pull and push progress, `auth` reads docker's credentials, and
//! `commands` holds one function per command, called from [`run`].

pub mod args;
pub mod auth;
pub mod client;
pub mod commands;
pub mod error;
pub mod formatter;
pub mod jsonmessage;
pub mod tabwriter;
pub mod template;
pub mod units;

use args::{Cli, Cmd, ImageCmd, SystemCmd};
use client::{Client, resolve_host};
use commands::inspect::Kind;
use commands::{images, inspect, system};
pub use error::{CliError, Result};

/// Run one command line.
pub async fn run(cli: Cli) -> Result<()> {
    let host = resolve_host(cli.host.as_deref());
    // `version` prints the client's half even without a daemon.
    if let Cmd::Version(a) = &cli.command {
        return system::version(&host, a).await;
    }
    let c = Client::connect(&host).await?;
    match &cli.command {
        Cmd::Version(_) => unreachable!("handled above"),
        Cmd::Info(a) | Cmd::System(SystemCmd::Info(a)) => system::info(&c, a).await,
        Cmd::System(SystemCmd::Df(a)) => system::df(&c, a).await,
        Cmd::Images(a) | Cmd::Image(ImageCmd::Ls(a)) => images::images(&c, a).await,
        Cmd::Pull(a) | Cmd::Image(ImageCmd::Pull(a)) => images::pull(&c, a).await,
        Cmd::Push(a) | Cmd::Image(ImageCmd::Push(a)) => images::push(&c, a).await,
        Cmd::Tag(a) | Cmd::Image(ImageCmd::Tag(a)) => images::tag(&c, a).await,
        Cmd::Rmi(a) | Cmd::Image(ImageCmd::Rm(a)) => images::rmi(&c, a).await,
        Cmd::History(a) | Cmd::Image(ImageCmd::History(a)) => images::history(&c, a).await,
        Cmd::Save(a) | Cmd::Image(ImageCmd::Save(a)) => images::save(&c, a).await,
        Cmd::Load(a) | Cmd::Image(ImageCmd::Load(a)) => images::load(&c, a).await,
        Cmd::Import(a) | Cmd::Image(ImageCmd::Import(a)) => images::import(&c, a).await,
        Cmd::Image(ImageCmd::Prune(a)) => images::prune(&c, a).await,
        Cmd::Image(ImageCmd::Inspect(a)) => {
            inspect::inspect(&c, &a.names, &[Kind::Image], a.format.as_deref(), false).await
        }
        Cmd::Inspect(a) => {
            let kinds = match &a.kind {
                Some(k) => vec![Kind::parse(k)?],
                None => vec![Kind::Container, Kind::Image, Kind::Volume, Kind::Network],
            };
            inspect::inspect(&c, &a.names, &kinds, a.format.as_deref(), a.size).await
        }
    }
}
