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
pub mod stream;
pub mod tabwriter;
pub mod template;
pub mod units;

use args::{BuilderCmd, Cli, Cmd, ContainerCmd, ImageCmd, NetworkCmd, SystemCmd, VolumeCmd};
use client::{Client, resolve_host};
use commands::inspect::Kind;
use commands::{build, containers, cp, images, inspect, networks, stats, system, volumes};
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
        Cmd::Build(a) => build::build(&c, a).await,
        Cmd::Builder(BuilderCmd::Prune(a)) => build::prune(&c, a).await,
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
        Cmd::Run(a) | Cmd::Container(ContainerCmd::Run(a)) => containers::run(&c, a).await,
        Cmd::Create(a) | Cmd::Container(ContainerCmd::Create(a)) => {
            containers::create(&c, &a.opts).await
        }
        Cmd::Start(a) | Cmd::Container(ContainerCmd::Start(a)) => containers::start(&c, a).await,
        Cmd::Ps(a) | Cmd::Container(ContainerCmd::Ls(a)) => containers::ps(&c, a).await,
        Cmd::Logs(a) | Cmd::Container(ContainerCmd::Logs(a)) => containers::logs(&c, a).await,
        Cmd::Exec(a) | Cmd::Container(ContainerCmd::Exec(a)) => containers::exec(&c, a).await,
        Cmd::Attach(a) | Cmd::Container(ContainerCmd::Attach(a)) => containers::attach(&c, a).await,
        Cmd::Stop(a) | Cmd::Container(ContainerCmd::Stop(a)) => {
            containers::stop(&c, a, "stop").await
        }
        Cmd::Restart(a) | Cmd::Container(ContainerCmd::Restart(a)) => {
            containers::stop(&c, a, "restart").await
        }
        Cmd::Kill(a) | Cmd::Container(ContainerCmd::Kill(a)) => containers::kill(&c, a).await,
        Cmd::Rm(a) | Cmd::Container(ContainerCmd::Rm(a)) => containers::rm(&c, a).await,
        Cmd::Pause(a) | Cmd::Container(ContainerCmd::Pause(a)) => {
            containers::simple(&c, a, "pause").await
        }
        Cmd::Unpause(a) | Cmd::Container(ContainerCmd::Unpause(a)) => {
            containers::simple(&c, a, "unpause").await
        }
        Cmd::Rename(a) | Cmd::Container(ContainerCmd::Rename(a)) => containers::rename(&c, a).await,
        Cmd::Wait(a) | Cmd::Container(ContainerCmd::Wait(a)) => containers::wait(&c, a).await,
        Cmd::Top(a) | Cmd::Container(ContainerCmd::Top(a)) => containers::top(&c, a).await,
        Cmd::Port(a) | Cmd::Container(ContainerCmd::Port(a)) => containers::port(&c, a).await,
        Cmd::Diff(a) | Cmd::Container(ContainerCmd::Diff(a)) => containers::diff(&c, a).await,
        Cmd::Export(a) | Cmd::Container(ContainerCmd::Export(a)) => containers::export(&c, a).await,
        Cmd::Cp(a) | Cmd::Container(ContainerCmd::Cp(a)) => cp::cp(&c, a).await,
        Cmd::Commit(a) | Cmd::Container(ContainerCmd::Commit(a)) => containers::commit(&c, a).await,
        Cmd::Stats(a) | Cmd::Container(ContainerCmd::Stats(a)) => stats::stats(&c, a).await,
        Cmd::Update(a) | Cmd::Container(ContainerCmd::Update(a)) => containers::update(&c, a).await,
        Cmd::Container(ContainerCmd::Inspect(a)) => {
            inspect::inspect(
                &c,
                &a.names,
                &[Kind::Container],
                a.format.as_deref(),
                a.size,
            )
            .await
        }
        Cmd::Container(ContainerCmd::Prune(a)) => containers::prune(&c, a).await,
        Cmd::Volume(VolumeCmd::Create(a)) => volumes::create(&c, a).await,
        Cmd::Volume(VolumeCmd::Ls(a)) => volumes::ls(&c, a).await,
        Cmd::Volume(VolumeCmd::Inspect(a)) => {
            inspect::inspect_volumes(&c, &a.names, a.format.as_deref()).await
        }
        Cmd::Volume(VolumeCmd::Rm(a)) => volumes::rm(&c, a).await,
        Cmd::Volume(VolumeCmd::Prune(a)) => volumes::prune(&c, a).await,
        Cmd::Network(NetworkCmd::Create(a)) => networks::create(&c, a).await,
        Cmd::Network(NetworkCmd::Ls(a)) => networks::ls(&c, a).await,
        Cmd::Network(NetworkCmd::Inspect(a)) => {
            inspect::inspect(&c, &a.names, &[Kind::Network], a.format.as_deref(), false).await
        }
        Cmd::Network(NetworkCmd::Rm(a)) => networks::rm(&c, a).await,
        Cmd::Network(NetworkCmd::Connect(a)) => networks::connect(&c, a).await,
        Cmd::Network(NetworkCmd::Disconnect(a)) => networks::disconnect(&c, a).await,
        Cmd::Network(NetworkCmd::Prune(a)) => networks::prune(&c, a).await,
        Cmd::Events(a) | Cmd::System(SystemCmd::Events(a)) => volumes::events(&c, a).await,
        Cmd::System(SystemCmd::Prune(a)) => system::prune(&c, a).await,
    }
}
