//! `/_ping`, `GET /version`, `GET /info`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use berth_api::{
    Commit, ComponentVersion, IndexInfo, Platform, PluginsInfo, RegistryServiceConfig, Runtime,
    SwarmInfo, SystemInfo, SystemVersion,
};

use crate::config::LogLevel;
use crate::error::{ApiError, Result};
use crate::host;
use crate::server::Daemon;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_COMMIT: &str = env!("BERTH_GIT_COMMIT");
pub const RUSTC_VERSION: &str = env!("BERTH_RUSTC_VERSION");

fn ping_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("Builder-Version", "1"),
        ("Docker-Experimental", "false"),
        ("Swarm", "inactive"),
        ("Cache-Control", "no-cache, no-store, must-revalidate"),
        ("Pragma", "no-cache"),
        ("Content-Type", "text/plain; charset=utf-8"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    h
}

pub async fn ping() -> impl IntoResponse {
    (ping_headers(), "OK")
}

pub async fn ping_head() -> impl IntoResponse {
    let mut h = ping_headers();
    h.insert("Content-Length", HeaderValue::from_static("0"));
    h
}

pub fn version() -> SystemVersion {
    let u = host::uname();
    let arch = go_arch(&u.machine);
    let mut details = BTreeMap::new();
    details.insert("ApiVersion".to_string(), berth_api::API_VERSION.to_string());
    details.insert(
        "MinAPIVersion".to_string(),
        berth_api::MIN_API_VERSION.to_string(),
    );
    details.insert("GitCommit".to_string(), GIT_COMMIT.to_string());
    details.insert("GoVersion".to_string(), RUSTC_VERSION.to_string());
    details.insert("Os".to_string(), "linux".to_string());
    details.insert("Arch".to_string(), arch.to_string());
    details.insert("KernelVersion".to_string(), u.release.clone());
    details.insert("Experimental".to_string(), "false".to_string());
    details.insert("BuildTime".to_string(), String::new());
    SystemVersion {
        platform: Platform {
            name: format!("berth {VERSION}"),
        },
        components: vec![ComponentVersion {
            name: "Engine".into(),
            version: VERSION.into(),
            details: Some(details),
        }],
        version: VERSION.into(),
        api_version: berth_api::API_VERSION.into(),
        min_api_version: berth_api::MIN_API_VERSION.into(),
        git_commit: GIT_COMMIT.into(),
        go_version: RUSTC_VERSION.into(),
        os: "linux".into(),
        arch: arch.into(),
        kernel_version: u.release,
        experimental: false,
        build_time: String::new(),
    }
}

/// Go's GOARCH names, which clients compare with their own.
pub fn go_arch(machine: &str) -> &str {
    match machine {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "armv7l" | "armv6l" => "arm",
        "i686" | "i386" => "386",
        m => m,
    }
}

pub async fn get_version() -> Json<SystemVersion> {
    Json(version())
}

pub fn info(d: &Daemon) -> SystemInfo {
    let u = host::uname();
    let osr = host::os_release();
    let cg = host::cgroup_version();
    let mut security = vec!["name=seccomp,profile=builtin".to_string()];
    if cg == "2" {
        security.push("name=cgroupns".into());
    }
    if !nix::unistd::geteuid().is_root() {
        security.push("name=rootless".into());
    }
    let mut index_configs = BTreeMap::new();
    index_configs.insert(
        "docker.io".to_string(),
        IndexInfo {
            name: "docker.io".into(),
            mirrors: d.config.registry_mirrors.clone(),
            secure: true,
            official: true,
        },
    );
    for r in &d.config.insecure_registries {
        if !r.contains('/') {
            index_configs.insert(
                r.clone(),
                IndexInfo {
                    name: r.clone(),
                    mirrors: vec![],
                    secure: false,
                    official: false,
                },
            );
        }
    }
    let mut cidrs = vec!["::1/128".to_string(), "127.0.0.0/8".to_string()];
    cidrs.extend(
        d.config
            .insecure_registries
            .iter()
            .filter(|r| r.contains('/'))
            .cloned(),
    );
    let mut runtimes = BTreeMap::new();
    runtimes.insert(
        "berth-runtime".to_string(),
        Runtime {
            path: "berth-runtime".into(),
            runtime_args: None,
        },
    );
    let env = |k: &str| {
        std::env::var(k)
            .or_else(|_| std::env::var(k.to_lowercase()))
            .unwrap_or_default()
    };
    SystemInfo {
        id: d.engine_id.clone(),
        containers: 0,
        containers_running: 0,
        containers_paused: 0,
        containers_stopped: 0,
        images: d.store.images().len() as i64,
        driver: d.driver.clone(),
        driver_status: vec![],
        docker_root_dir: d.config.data_root.display().to_string(),
        plugins: PluginsInfo {
            volume: vec!["local".into()],
            network: vec!["host".into(), "null".into()],
            authorization: None,
            log: vec!["json-file".into()],
        },
        memory_limit: host::has_controller(cg, "memory"),
        swap_limit: host::swap_limit(cg),
        kernel_memory_tcp: false,
        cpu_cfs_period: host::has_controller(cg, "cpu"),
        cpu_cfs_quota: host::has_controller(cg, "cpu"),
        cpu_shares: host::has_controller(cg, "cpu"),
        cpu_set: host::has_controller(cg, "cpuset"),
        pids_limit: host::has_controller(cg, "pids"),
        oom_kill_disable: cg == "1" && host::has_controller(cg, "memory"),
        ipv4_forwarding: host::sysctl_on("/proc/sys/net/ipv4/ip_forward"),
        bridge_nf_iptables: host::sysctl_on("/proc/sys/net/bridge/bridge-nf-call-iptables"),
        bridge_nf_ip6tables: host::sysctl_on("/proc/sys/net/bridge/bridge-nf-call-ip6tables"),
        debug: d.config.log_level == LogLevel::Debug,
        nfd: host::open_fds(),
        ngoroutines: host::threads(),
        system_time: host::rfc3339_nano(std::time::SystemTime::now()),
        logging_driver: "json-file".into(),
        cgroup_driver: "cgroupfs".into(),
        cgroup_version: cg.into(),
        nevents_listener: 0,
        kernel_version: u.release,
        operating_system: host::os_release_field(&osr, "PRETTY_NAME")
            .unwrap_or_else(|| "Linux".into()),
        os_version: host::os_release_field(&osr, "VERSION_ID").unwrap_or_default(),
        os_type: "linux".into(),
        architecture: u.machine,
        ncpu: host::ncpu(),
        mem_total: host::mem_total(),
        index_server_address: "https://index.docker.io/v1/".into(),
        registry_config: Some(RegistryServiceConfig {
            allow_nondistributable_artifacts_cidrs: None,
            allow_nondistributable_artifacts_hostnames: None,
            insecure_registry_cidrs: cidrs,
            index_configs,
            mirrors: d.config.registry_mirrors.clone(),
        }),
        generic_resources: None,
        http_proxy: env("HTTP_PROXY"),
        https_proxy: env("HTTPS_PROXY"),
        no_proxy: env("NO_PROXY"),
        name: u.nodename,
        labels: vec![],
        experimental_build: false,
        server_version: VERSION.into(),
        runtimes,
        default_runtime: "berth-runtime".into(),
        swarm: SwarmInfo {
            local_node_state: "inactive".into(),
            ..Default::default()
        },
        live_restore_enabled: false,
        isolation: String::new(),
        init_binary: String::new(),
        containerd_commit: Commit::default(),
        runc_commit: Commit {
            id: GIT_COMMIT.into(),
            expected: GIT_COMMIT.into(),
        },
        init_commit: Commit::default(),
        security_options: security,
        product_license: "Apache-2.0".into(),
        default_address_pools: None,
        warnings: vec![],
        cdi_spec_dirs: vec![],
    }
}

pub async fn get_info(State(d): State<Arc<Daemon>>) -> Result<Json<SystemInfo>> {
    tokio::task::spawn_blocking(move || info(&d))
        .await
        .map(Json)
        .map_err(|e| ApiError::Internal(format!("task failed: {e}")))
}
