//! The command line, in docker's shape: global `-H`, then a command.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "A self-sufficient runtime for containers (docker's commands, berthd's API)"
)]
pub struct Cli {
    /// Daemon socket to connect to (unix:///path); else $BERTH_HOST, $DOCKER_HOST, unix:///run/berth/berth.sock
    #[arg(short = 'H', long = "host")]
    pub host: Option<String>,
    #[command(subcommand)]
    pub command: Cmd,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Show the berth version information
    Version(FormatOnly),
    /// Display system-wide information
    Info(FormatOnly),
    /// List images
    Images(ImagesArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Return low-level information on berth objects
    Inspect(InspectArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCmd),
    /// Create and run a new container from an image
    #[command(disable_help_flag = true)]
    Run(RunArgs),
    /// Create a new container
    #[command(disable_help_flag = true)]
    Create(CreateArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// List containers
    Ps(PsArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Remove one or more containers
    Rm(RmArgs),
    /// Pause all processes within one or more containers
    Pause(Names),
    /// Unpause all processes within one or more containers
    Unpause(Names),
    /// Rename a container
    Rename(RenameArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(Names),
    /// Display the running processes of a container
    Top(TopArgs),
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(OneName),
    /// Export a container's filesystem as a tar archive
    Export(ExportArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(CpArgs),
    /// Create a new image from a container's changes
    Commit(CommitArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Update configuration of one or more containers
    Update(UpdateArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Manage volumes
    #[command(subcommand)]
    Volume(VolumeCmd),
    /// Build an image from a Dockerfile
    Build(BuildArgs),
    /// Manage builds
    #[command(subcommand)]
    Builder(BuilderCmd),
    /// Manage networks
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Get real time events from the server
    Events(EventsArgs),
    /// Manage berth
    #[command(subcommand)]
    System(SystemCmd),
}

#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// List images
    #[command(alias = "list")]
    Ls(ImagesArgs),
    Pull(PullArgs),
    Push(PushArgs),
    Tag(TagArgs),
    /// Remove one or more images
    #[command(alias = "remove")]
    Rm(RmiArgs),
    History(HistoryArgs),
    Save(SaveArgs),
    Load(LoadArgs),
    Import(ImportArgs),
    /// Display detailed information on one or more images
    Inspect(ImageInspectArgs),
    /// Remove unused images
    Prune(ImagePruneArgs),
}

#[derive(Debug, Subcommand)]
pub enum SystemCmd {
    /// Show berth disk usage
    Df(DfArgs),
    /// Display system-wide information
    Info(FormatOnly),
    /// Remove unused data
    Prune(SystemPruneArgs),
    /// Get real time events from the server
    Events(EventsArgs),
}

#[derive(Debug, Args)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    pub volumes: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long)]
    pub filter: Vec<String>,
}

#[derive(Debug, Args)]
pub struct FormatOnly {
    /// Format output using a custom template ('json' or a Go template)
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// REPOSITORY[:TAG]
    pub repository: Option<String>,
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// NAME[:TAG|@DIGEST]
    pub name: String,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// NAME[:TAG]
    pub name: String,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Force removal of the image
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long)]
    pub no_prune: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    pub image: String,
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long = "human", default_value_t = true, action = clap::ArgAction::Set)]
    pub human: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    pub output: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long)]
    pub input: Option<std::path::PathBuf>,
    /// Suppress the load output
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// file|URL|- (a rootfs tarball)
    pub file: String,
    /// REPOSITORY[:TAG]
    pub repository: Option<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long)]
    pub change: Vec<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Return JSON for specified type (container, image, volume)
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short = 's', long)]
    pub size: bool,
}

#[derive(Debug, Args)]
pub struct ImageInspectArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImagePruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long)]
    pub filter: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[command(flatten)]
    pub opts: crate::commands::create_opts::CreateOpts,
}

#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    #[command(flatten)]
    pub opts: crate::commands::create_opts::CreateOpts,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long)]
    pub interactive: bool,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Display total file sizes
    #[arg(short = 's', long)]
    pub size: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", default_value_t = -1)]
    pub last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long)]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    pub container: String,
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show logs since timestamp or relative (e.g. 42m)
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp or relative (e.g. 42m)
    #[arg(long)]
    pub until: Option<String>,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Show extra details provided to logs
    #[arg(long)]
    pub details: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    pub container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    pub container: String,
    /// Do not attach STDIN
    #[arg(long)]
    pub no_stdin: bool,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "timeout", alias = "time")]
    pub timeout: Option<i64>,
    /// Signal to send to the container
    #[arg(short = 's', long)]
    pub signal: Option<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Signal to send to the container
    #[arg(short = 's', long)]
    pub signal: Option<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long)]
    pub volumes: bool,
}

#[derive(Debug, Args)]
pub struct Names {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct OneName {
    pub container: String,
}

#[derive(Debug, Args)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    pub container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PortArgs {
    pub container: String,
    /// PRIVATE_PORT[/PROTO]
    pub port: Option<String>,
}

#[derive(Debug, Args)]
pub struct CpArgs {
    /// CONTAINER:SRC_PATH or SRC_PATH (- for a tar on stdin)
    pub src: String,
    /// CONTAINER:DEST_PATH or DEST_PATH (- for a tar on stdout)
    pub dst: String,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Suppress progress output during copy
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    pub container: String,
    /// REPOSITORY[:TAG]
    pub repository: Option<String>,
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long)]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short = 'p', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub pause: bool,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    pub containers: Vec<String>,
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Memory limit
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<f64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    pub restart: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    pub container: String,
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    pub output: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long)]
    pub filter: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ContainerCmd {
    /// List containers
    #[command(alias = "list")]
    Ls(PsArgs),
    #[command(disable_help_flag = true)]
    Run(RunArgs),
    #[command(disable_help_flag = true)]
    Create(CreateArgs),
    Start(StartArgs),
    Stop(StopArgs),
    Restart(StopArgs),
    Kill(KillArgs),
    #[command(alias = "remove")]
    Rm(RmArgs),
    Logs(LogsArgs),
    Exec(ExecArgs),
    Attach(AttachArgs),
    Pause(Names),
    Unpause(Names),
    Rename(RenameArgs),
    Wait(Names),
    Top(TopArgs),
    Port(PortArgs),
    Diff(OneName),
    Export(ExportArgs),
    Cp(CpArgs),
    Commit(CommitArgs),
    Stats(StatsArgs),
    Update(UpdateArgs),
    /// Display detailed information on one or more containers
    Inspect(ContainerInspectArgs),
    /// Remove all stopped containers
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct ContainerInspectArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Display total file sizes
    #[arg(short = 's', long)]
    pub size: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name and optionally a tag in the "name:tag" format (repeatable)
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (default: "PATH/Dockerfile"; "-" reads it from STDIN)
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    /// Set build-time variables (NAME=value, or NAME to take it from the environment)
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    pub no_cache: bool,
    /// Secret to expose to the build: id=mysecret,src=/local/secret
    #[arg(long)]
    pub secret: Vec<String>,
    /// SSH agent socket to expose to the build: default|<id>[=<socket>]
    #[arg(long)]
    pub ssh: Vec<String>,
    /// Extra privileged entitlement (security.insecure, network.host)
    #[arg(long)]
    pub allow: Vec<String>,
    /// Type of progress output: auto, plain, tty or quiet
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// Write the image ID to the file
    #[arg(long)]
    pub iidfile: Option<std::path::PathBuf>,
    /// Suppress the build output and print image ID on success
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Set metadata for an image (key=value, repeatable)
    #[arg(long)]
    pub label: Vec<String>,
    /// Set the networking mode for the RUN instructions during build (none or host)
    #[arg(long)]
    pub network: Option<String>,
    /// Output destination: type=local,dest=DIR, type=tar,dest=FILE, or a directory
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Always attempt to pull a newer version of the base images
    #[arg(long)]
    pub pull: bool,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Set the target platform for the build
    #[arg(long)]
    pub platform: Option<String>,
    /// Remove intermediate containers after a successful build (always)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, hide = true)]
    pub rm: bool,
    /// The build context: a directory, or "-" for a tar (or a Dockerfile) on STDIN
    pub context: String,
}

#[derive(Debug, Subcommand)]
pub enum BuilderCmd {
    /// Remove build cache
    Prune(BuilderPruneArgs),
}

#[derive(Debug, Args)]
pub struct BuilderPruneArgs {
    /// Remove all unused build cache, not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum VolumeCmd {
    /// Create a volume
    Create(VolumeCreateArgs),
    /// List volumes
    #[command(alias = "list")]
    Ls(VolumeLsArgs),
    /// Display detailed information on one or more volumes
    Inspect(ImageInspectArgs),
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm(VolumeRmArgs),
    /// Remove unused local volumes
    Prune(VolumePruneArgs),
}

#[derive(Debug, Args)]
pub struct VolumeCreateArgs {
    pub name: Option<String>,
    /// Specify volume driver name
    #[arg(short = 'd', long, default_value = "local")]
    pub driver: String,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// Set metadata for a volume
    #[arg(long)]
    pub label: Vec<String>,
}

#[derive(Debug, Args)]
pub struct VolumeLsArgs {
    /// Only display volume names
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short = 'f', long)]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct VolumeRmArgs {
    #[arg(required = true)]
    pub volumes: Vec<String>,
    /// Force the removal of one or more volumes
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct VolumePruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long)]
    pub filter: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// Create a network
    Create(NetworkCreateArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(NetworkLsArgs),
    /// Display detailed information on one or more networks
    Inspect(NetworkInspectArgs),
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm(NetworkRmArgs),
    /// Connect a container to a network
    Connect(NetworkConnectArgs),
    /// Disconnect a container from a network
    Disconnect(NetworkDisconnectArgs),
    /// Remove all unused networks
    Prune(NetworkPruneArgs),
}

#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    pub name: String,
    /// Driver to manage the Network
    #[arg(short = 'd', long, default_value = "bridge")]
    pub driver: String,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// Set metadata on a network
    #[arg(long)]
    pub label: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Enable manual container attachment
    #[arg(long)]
    pub attachable: bool,
    /// Enable or disable IPv6 networking
    #[arg(long)]
    pub ipv6: bool,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    pub subnet: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range")]
    pub ip_range: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long)]
    pub gateway: Vec<String>,
    /// IP Address Management Driver
    #[arg(long = "ipam-driver", default_value = "default")]
    pub ipam_driver: String,
    /// Set IPAM driver specific options
    #[arg(long = "ipam-opt")]
    pub ipam_opt: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NetworkLsArgs {
    /// Only display network IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short = 'f', long)]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
}

#[derive(Debug, Args)]
pub struct NetworkInspectArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct NetworkRmArgs {
    #[arg(required = true)]
    pub networks: Vec<String>,
    /// Do not error if the network does not exist
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct NetworkConnectArgs {
    pub network: String,
    pub container: String,
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., "2001:db8::33")
    #[arg(long)]
    pub ip6: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long)]
    pub alias: Vec<String>,
    /// Add link to another container
    #[arg(long)]
    pub link: Vec<String>,
    /// driver options for the network
    #[arg(long = "driver-opt")]
    pub driver_opt: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NetworkDisconnectArgs {
    pub network: String,
    pub container: String,
    /// Force the container to disconnect from a network
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct NetworkPruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long)]
    pub filter: Vec<String>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Filter output based on conditions provided
    #[arg(short = 'f', long)]
    pub filter: Vec<String>,
    /// Show all events created since timestamp
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    pub until: Option<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
}
