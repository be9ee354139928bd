//! The daemon: state, router, sockets, pid file, shutdown.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::routing::{get, post};
use berth_store::Store;
use berth_store::registry::RegistryConfig;
use berth_store::snapshot::Driver;
use tokio::net::UnixListener;
use tower::Layer;

use crate::config::Config;
use crate::containers::{Registry, exec, routes as containers};
use crate::db::{Db, DbError};
use crate::error::ApiError;
use crate::events::Events;
use crate::volumes::Volumes;
use crate::{archives, distribution, images, manage, system, version};

/// What every handler shares.
#[derive(Debug)]
pub struct Daemon {
    pub config: Config,
    pub store: Store,
    /// `overlay` or `copy`: the store's snapshot driver.
    pub driver: String,
    /// A stable id for this daemon's data root (`docker info`'s ID).
    pub engine_id: String,
    /// Insecure registries and mirrors, from the config.
    pub registry: RegistryConfig,
    /// Held shared by what reads content the names reach (push, save) and
    /// exclusively by what adds content or collects it (pull, load,
    /// import, delete, prune): a collection must not sweep what a pull
    /// has written but not named yet, and a failed pull must not roll
    /// back a blob another one skipped because it was there.
    pub content: Arc<tokio::sync::RwLock<()>>,
    /// The state database (containers, volumes).
    pub db: Arc<Db>,
    pub containers: Registry,
    pub events: Events,
    pub volumes: Volumes,
    /// The berth-shim binary.
    pub shim: PathBuf,
    /// What the host's kernel and cgroups allow, for container specs.
    pub system: crate::spec::SystemInfo,
    /// `docker exec` processes, in memory only.
    pub execs: crate::containers::exec::Execs,
    /// The image builder's cache and scratch space.
    pub build: crate::build::BuildState,
    /// Networks, sandboxes, published ports, DNS.
    pub net: berth_netd::Netd,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("opening the image store at {path}: {source}")]
    Store {
        path: PathBuf,
        source: Box<berth_store::StoreError>,
    },
    #[error("pid file found, ensure berthd is not running or delete {0}")]
    Running(PathBuf),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("networking: {0}")]
    Net(#[from] berth_netd::NetdError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DaemonError + '_ {
    move |source| DaemonError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Daemon {
    pub fn open(config: Config) -> Result<Daemon, DaemonError> {
        std::fs::create_dir_all(&config.data_root).map_err(io_err(&config.data_root))?;
        let image_root = config.data_root.join("image");
        let store = Store::open(&image_root, None).map_err(|source| DaemonError::Store {
            path: image_root.clone(),
            source: Box::new(source),
        })?;
        let driver = match store.snapshots.driver() {
            Driver::Overlay => "overlay",
            Driver::Copy => "copy",
        }
        .to_string();
        let engine_id = engine_id(&config.data_root)?;
        let registry = RegistryConfig {
            insecure: config.insecure_registries.clone(),
            mirrors: [("docker.io".to_string(), config.registry_mirrors.clone())]
                .into_iter()
                .filter(|(_, m)| !m.is_empty())
                .collect(),
            ..RegistryConfig::default()
        };
        let db = Arc::new(Db::open(&config.data_root.join("state.redb"))?);
        let registry_containers = Registry::load(db.clone())?;
        let volumes = Volumes::load(db.clone(), config.data_root.join("volumes"))?;
        let shim = shim_binary();
        let build =
            crate::build::BuildState::open(&config.data_root).map_err(|e| DaemonError::Io {
                path: config.data_root.join("builder"),
                source: io::Error::other(e),
            })?;
        crate::build::runner::sweep_bundles(&config.exec_root);
        let net = crate::networks::open(&config)?;
        Ok(Daemon {
            build,
            net,
            registry,
            content: Arc::default(),
            db,
            containers: registry_containers,
            events: Events::default(),
            volumes,
            shim,
            system: crate::spec::SystemInfo::detect(),
            execs: Default::default(),
            config,
            store,
            driver,
            engine_id,
        })
    }
}

/// berth-shim: `$BERTH_SHIM`, else next to this executable, else on PATH.
fn shim_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_SHIM") {
        return PathBuf::from(p);
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        let p = dir.join("berth-shim");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("berth-shim")
}

/// The id kept in `<data-root>/engine-id`, made (a random UUID) on first start.
fn engine_id(data_root: &Path) -> Result<String, DaemonError> {
    let path = data_root.join("engine-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&path)(e)),
    }
    let mut b = [0u8; 16];
    let mut f = std::fs::File::open("/dev/urandom").map_err(io_err(Path::new("/dev/urandom")))?;
    io::Read::read_exact(&mut f, &mut b).map_err(io_err(Path::new("/dev/urandom")))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let id = format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    let tmp = data_root.join(".engine-id.tmp");
    std::fs::write(&tmp, &id).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    Ok(id)
}

/// Unknown routes: dockerd's 404.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("page not found".into())
}

/// The routes, unversioned; [`service`] adds the `/vX.Y/` prefix.
pub fn router(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping_head))
        .route("/version", get(system::get_version))
        .route("/info", get(system::get_info))
        .route("/system/df", get(manage::get_disk_usage))
        .route("/images/json", get(images::get_list))
        .route("/build", post(crate::build::post_build))
        .route("/build/prune", post(crate::build::post_prune))
        .route("/images/create", post(create))
        .route("/commit", post(crate::commit::post_commit))
        .route("/images/load", post(archives::post_load))
        .route("/images/get", get(archives::get_many))
        .route("/images/prune", post(manage::post_prune))
        .route(
            "/images/{*rest}",
            get(images::get_by_name)
                .post(post_by_name)
                .delete(manage::delete_image),
        )
        .route("/containers/create", post(containers::post_create))
        .route("/containers/json", get(containers::get_list))
        .route("/containers/prune", post(containers::post_prune))
        .route(
            "/containers/{id}",
            axum::routing::delete(containers::delete),
        )
        .route("/containers/{id}/json", get(containers::get_inspect))
        .route("/containers/{id}/start", post(containers::post_start))
        .route("/containers/{id}/stop", post(containers::post_stop))
        .route("/containers/{id}/restart", post(containers::post_restart))
        .route("/containers/{id}/kill", post(containers::post_kill))
        .route("/containers/{id}/wait", post(containers::post_wait))
        .route("/containers/{id}/logs", get(containers::get_logs))
        .route("/containers/{id}/attach", post(containers::post_attach))
        .route("/containers/{id}/rename", post(containers::post_rename))
        .route("/containers/{id}/pause", post(containers::post_pause))
        .route("/containers/{id}/unpause", post(containers::post_unpause))
        .route("/containers/{id}/top", get(containers::get_top))
        .route("/containers/{id}/resize", post(containers::post_resize))
        .route("/containers/{id}/update", post(containers::post_update))
        .route(
            "/containers/{id}/stats",
            get(crate::containers::stats::get_stats),
        )
        .route("/containers/{id}/exec", post(exec::post_create))
        .route("/exec/{id}/start", post(exec::post_start))
        .route("/exec/{id}/resize", post(exec::post_resize))
        .route("/exec/{id}/json", get(exec::get_inspect))
        .route(
            "/containers/{id}/archive",
            // HEAD too: the handler answers it with the stat header alone.
            get(crate::containers::archive::get_archive)
                .put(crate::containers::archive::put_archive),
        )
        .route(
            "/containers/{id}/export",
            get(crate::containers::archive::get_export),
        )
        .route(
            "/containers/{id}/changes",
            get(crate::containers::archive::get_changes),
        )
        .route("/events", get(crate::events::get_events))
        .route("/networks", get(crate::networks::get_list))
        .route("/networks/create", post(crate::networks::post_create))
        .route("/networks/prune", post(crate::networks::post_prune))
        .route(
            "/networks/{id}",
            get(crate::networks::get_inspect).delete(crate::networks::delete),
        )
        .route(
            "/networks/{id}/connect",
            post(crate::networks::post_connect),
        )
        .route(
            "/networks/{id}/disconnect",
            post(crate::networks::post_disconnect),
        )
        .route("/volumes", get(crate::volumes::get_list))
        .route("/volumes/create", post(crate::volumes::post_create))
        .route("/volumes/prune", post(crate::volumes::post_prune))
        .route(
            "/volumes/{name}",
            get(crate::volumes::get_inspect).delete(crate::volumes::delete),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .with_state(daemon)
}

/// `POST /images/create`: a pull (`fromImage`) or an import (`fromSrc`).
async fn create(
    state: axum::extract::State<Arc<Daemon>>,
    pairs: axum::extract::Query<Vec<(String, String)>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let query = axum::extract::Query(distribution::CreateQuery::from_pairs(&pairs));
    let r = if query.from_src.is_some() {
        archives::import(state, query, body).await
    } else {
        distribution::pull(state, query, headers).await
    };
    r.into_response()
}

/// `POST /images/{name}/tag` and `POST /images/{name}/push`: a name may
/// hold slashes, so the suffix picks the handler.
async fn post_by_name(
    state: axum::extract::State<Arc<Daemon>>,
    axum::extract::Path(rest): axum::extract::Path<String>,
    query: axum::extract::Query<Vec<(String, String)>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let get = |k: &str| {
        query
            .iter()
            .find(|(q, _)| q == k)
            .map_or(String::new(), |(_, v)| v.clone())
    };
    if let Some(name) = rest.strip_suffix("/tag") {
        manage::tag(state, name.to_string(), get("repo"), get("tag"))
            .await
            .into_response()
    } else if let Some(name) = rest.strip_suffix("/push") {
        distribution::push(state, name.to_string(), get("tag"), headers)
            .await
            .into_response()
    } else {
        not_found().await.into_response()
    }
}

/// The router behind the version-prefix middleware (which must run before
/// routing, so it wraps the router rather than being one of its layers).
pub fn service(
    daemon: Arc<Daemon>,
) -> impl tower::Service<
    Request,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    axum::middleware::from_fn(version::middleware).layer(router(daemon))
}

/// Bind a unix socket: stale socket removed, mode 0660, group `berth`
/// where that group exists.
pub fn bind(path: &Path) -> Result<UnixListener, DaemonError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(path)(e)),
    }
    let listener = UnixListener::bind(path).map_err(io_err(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io_err(path))?;
    if let Ok(Some(group)) = nix::unistd::Group::from_name("berth") {
        nix::unistd::chown(path, None, Some(group.gid))
            .map_err(|e| io_err(path)(io::Error::from(e)))?;
    }
    Ok(listener)
}

/// Write the pid file; refuse when it names a live process.
pub fn write_pidfile(path: &Path) -> Result<(), DaemonError> {
    if let Ok(old) = std::fs::read_to_string(path)
        && let Ok(pid) = old.trim().parse::<i32>()
        && pid != std::process::id() as i32
        && Path::new(&format!("/proc/{pid}")).exists()
    {
        return Err(DaemonError::Running(path.to_path_buf()));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    std::fs::write(path, format!("{}\n", std::process::id())).map_err(io_err(path))
}

/// Resolves on SIGTERM or SIGINT.
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop berthd with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}

/// Serve until SIGTERM or SIGINT, then remove the sockets and pid file.
pub async fn run(config: Config) -> Result<(), DaemonError> {
    let pidfile = config.pidfile.clone();
    std::fs::create_dir_all(&config.exec_root).map_err(io_err(&config.exec_root))?;
    write_pidfile(&pidfile)?;
    let result = serve(config).await;
    if let Err(e) = std::fs::remove_file(&pidfile)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!("{}: {e}", pidfile.display());
    }
    result
}

async fn serve(config: Config) -> Result<(), DaemonError> {
    let hosts = config.hosts.clone();
    let daemon = Arc::new(tokio::task::block_in_place(|| Daemon::open(config))?);
    // Networking first: the restarts that restore spawns attach to it.
    let live: Vec<String> = daemon
        .containers
        .all()
        .iter()
        .map(|e| e.record())
        .filter(|r| r.state.status.is_live())
        .filter(|r| {
            r.state
                .shim_pid
                .is_some_and(crate::containers::monitor::is_shim)
        })
        .map(|r| r.id)
        .collect();
    tokio::task::block_in_place(|| daemon.net.restore(&live))?;
    crate::containers::monitor::restore(&daemon).await;
    // The host's cgroup mounts are learned again once per daemon start.
    let _ = std::fs::remove_file(
        crate::containers::lifecycle::runtime(&daemon)
            .root
            .join(berth_runtime::container::CGROUP_MOUNTS_CACHE),
    );
    let sweeper = daemon.clone();
    tokio::task::spawn_blocking(move || crate::containers::lifecycle::sweep_discarded(&sweeper));
    let mut listeners = Vec::new();
    for h in &hosts {
        listeners.push((h.clone(), bind(h)?));
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for (path, listener) in listeners {
        tracing::info!(
            "berthd {} (API {}) listening on unix://{}",
            system::VERSION,
            berth_api::API_VERSION,
            path.display()
        );
        let svc = service(daemon.clone());
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let app = axum::ServiceExt::<Request>::into_make_service(svc);
            let r = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = &r {
                tracing::error!("unix://{}: {e}", path.display());
            }
            let _ = std::fs::remove_file(&path);
            r.map_err(|source| DaemonError::Io { path, source })
        });
    }
    terminated().await;
    let _ = stop_tx.send(true);
    let mut result = Ok(());
    while let Some(r) = tasks.join_next().await {
        if let Ok(Err(e)) = r {
            result = Err(e);
        }
    }
    tracing::info!("berthd stopped");
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pidfile_naming_a_live_process_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("run/berthd.pid");
        write_pidfile(&p).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            format!("{}\n", std::process::id())
        );
        // pid 1 is always alive.
        std::fs::write(&p, "1\n").unwrap();
        assert!(matches!(write_pidfile(&p), Err(DaemonError::Running(_))));
        // A stale file (no such process) is replaced.
        std::fs::write(&p, format!("{}\n", i32::MAX)).unwrap();
        write_pidfile(&p).unwrap();
    }

    #[test]
    fn engine_id_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = engine_id(dir.path()).unwrap();
        assert_eq!(a.len(), 36);
        assert_eq!(engine_id(dir.path()).unwrap(), a);
    }
}
