//! berthd's configuration: dockerd's flags and daemon.json keys.
//!
//! As dockerd: a setting given both as a flag and in the file is an error,
//! and so is a key of the file that berthd does not know.

use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};

pub const DEFAULT_CONFIG_FILE: &str = "/etc/berth/daemon.json";
pub const DEFAULT_SOCKET: &str = "/run/berth/berth.sock";

#[derive(Debug, Clone, Parser)]
#[command(
    name = "berthd",
    version,
    about = "berth's daemon: serves the Docker Engine API"
)]
pub struct Args {
    /// Daemon socket(s) to listen on (unix:///path); repeatable
    #[arg(short = 'H', long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Root directory of persistent state
    #[arg(long, value_name = "DIR", default_value = "/var/lib/berth")]
    pub data_root: PathBuf,
    /// Root directory of execution state (sockets, pid file)
    #[arg(long, value_name = "DIR", default_value = "/run/berth")]
    pub exec_root: PathBuf,
    /// Path of the pid file [default: <exec-root>/berthd.pid]
    #[arg(short = 'p', long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// Log level: debug, info, warn, error, fatal
    #[arg(short = 'l', long, value_name = "LEVEL", default_value = "info")]
    pub log_level: String,
    /// Daemon configuration file
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG_FILE)]
    pub config_file: PathBuf,
    /// A registry reached over plain HTTP or unverified TLS; repeatable
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
    /// A mirror of docker.io; repeatable
    #[arg(long = "registry-mirror", value_name = "URL")]
    pub registry_mirrors: Vec<String>,
    /// The init `run --init` runs as the container's pid 1 [default:
    /// docker-init or tini-static on PATH]
    #[arg(long, value_name = "FILE")]
    pub init_path: Option<PathBuf>,
    /// The bridge of the default `bridge` network; `none` disables it
    /// (containers then default to `--network none`)
    #[arg(short = 'b', long, value_name = "NAME", default_value = "berth0")]
    pub bridge: String,
}

/// The configuration berthd runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Unix socket paths.
    pub hosts: Vec<PathBuf>,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub pidfile: PathBuf,
    pub log_level: LogLevel,
    pub insecure_registries: Vec<String>,
    pub registry_mirrors: Vec<String>,
    pub init_path: Option<PathBuf>,
    /// The default bridge, `None` with `--bridge none`.
    pub bridge: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s {
            "debug" | "trace" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "warn" | "warning" => LogLevel::Warn,
            "error" | "fatal" | "panic" => LogLevel::Error,
            _ => return None,
        })
    }

    pub fn as_filter(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "unable to configure the daemon with file {path}: the following directives don't match any configuration option: {keys}"
    )]
    UnknownKeys { path: PathBuf, keys: String },
    #[error(
        "unable to configure the daemon with file {path}: the following directives are specified both as a flag and in the configuration file: {conflicts}"
    )]
    Conflict { path: PathBuf, conflicts: String },
    #[error("{path}: {key}: {reason}")]
    BadValue {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("{0}")]
    Args(String),
    #[error("invalid log level {0:?}: use debug, info, warn, error or fatal")]
    LogLevel(String),
    #[error("invalid host {host:?}: {reason}")]
    Host { host: String, reason: String },
}

/// The daemon.json keys berthd reads, with the flag id clap gives each.
const KEYS: &[(&str, &str)] = &[
    ("hosts", "hosts"),
    ("data-root", "data_root"),
    ("exec-root", "exec_root"),
    ("pidfile", "pidfile"),
    ("log-level", "log_level"),
    ("insecure-registries", "insecure_registries"),
    ("registry-mirrors", "registry_mirrors"),
    ("init-path", "init_path"),
    ("bridge", "bridge"),
];

impl Config {
    /// Parse the command line (exits on `--help` or a bad flag, as clap
    /// does) and merge the configuration file.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_matches(&Args::command().get_matches())
    }

    pub fn from_args<I, T>(argv: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let m = Args::command()
            .try_get_matches_from(argv)
            .map_err(|e| ConfigError::Args(e.to_string()))?;
        Config::from_matches(&m)
    }

    fn from_matches(m: &ArgMatches) -> Result<Config, ConfigError> {
        let mut args = Args::from_arg_matches(m).expect("clap checked the arguments");
        let from_cli = |id: &str| m.value_source(id) == Some(ValueSource::CommandLine);
        let path = args.config_file.clone();
        let file = match std::fs::read(&path) {
            Ok(raw) => Some(raw),
            // The default file is optional; one that was named is not.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !from_cli("config_file") => None,
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        if let Some(raw) = file {
            merge_file(&mut args, &path, &raw, &from_cli)?;
        }
        let log_level = LogLevel::parse(&args.log_level)
            .ok_or_else(|| ConfigError::LogLevel(args.log_level.clone()))?;
        let hosts = if args.hosts.is_empty() {
            vec![PathBuf::from(DEFAULT_SOCKET)]
        } else {
            args.hosts
                .iter()
                .map(|h| parse_host(h))
                .collect::<Result<_, _>>()?
        };
        let pidfile = args
            .pidfile
            .clone()
            .unwrap_or_else(|| args.exec_root.join("berthd.pid"));
        Ok(Config {
            hosts,
            data_root: args.data_root,
            exec_root: args.exec_root,
            pidfile,
            log_level,
            insecure_registries: args.insecure_registries,
            registry_mirrors: args.registry_mirrors,
            init_path: args.init_path,
            bridge: Some(args.bridge).filter(|b| b != "none" && !b.is_empty()),
        })
    }
}

fn merge_file(
    args: &mut Args,
    path: &Path,
    raw: &[u8],
    from_cli: &dyn Fn(&str) -> bool,
) -> Result<(), ConfigError> {
    let v: serde_json::Value = serde_json::from_slice(raw).map_err(|source| ConfigError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let serde_json::Value::Object(map) = v else {
        return Err(ConfigError::BadValue {
            path: path.to_path_buf(),
            key: "/".into(),
            reason: "not a JSON object".into(),
        });
    };
    let unknown: Vec<&str> = map
        .keys()
        .filter(|k| !KEYS.iter().any(|(key, _)| key == k))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(ConfigError::UnknownKeys {
            path: path.to_path_buf(),
            keys: unknown.join(", "),
        });
    }
    let conflicts: Vec<String> = KEYS
        .iter()
        .filter(|(key, id)| map.contains_key(*key) && from_cli(id))
        .map(|(key, _)| {
            let flag = match *key {
                "hosts" => args.hosts.join(" "),
                "data-root" => args.data_root.display().to_string(),
                "exec-root" => args.exec_root.display().to_string(),
                "pidfile" => args
                    .pidfile
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string()),
                "log-level" => args.log_level.clone(),
                "insecure-registries" => args.insecure_registries.join(" "),
                "init-path" => args
                    .init_path
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string()),
                "bridge" => args.bridge.clone(),
                _ => args.registry_mirrors.join(" "),
            };
            format!("{key}: (from flag: {flag}, from file: {})", map[*key])
        })
        .collect();
    if !conflicts.is_empty() {
        return Err(ConfigError::Conflict {
            path: path.to_path_buf(),
            conflicts: conflicts.join(", "),
        });
    }
    let bad = |key: &str, reason: &str| ConfigError::BadValue {
        path: path.to_path_buf(),
        key: key.to_string(),
        reason: reason.to_string(),
    };
    let string = |key: &str, v: &serde_json::Value| -> Result<String, ConfigError> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| bad(key, "not a string"))
    };
    let strings = |key: &str, v: &serde_json::Value| -> Result<Vec<String>, ConfigError> {
        v.as_array()
            .and_then(|a| a.iter().map(|x| x.as_str().map(str::to_string)).collect())
            .ok_or_else(|| bad(key, "not a list of strings"))
    };
    for (key, v) in &map {
        match key.as_str() {
            "hosts" => args.hosts = strings(key, v)?,
            "data-root" => args.data_root = string(key, v)?.into(),
            "exec-root" => args.exec_root = string(key, v)?.into(),
            "pidfile" => args.pidfile = Some(string(key, v)?.into()),
            "log-level" => args.log_level = string(key, v)?,
            "insecure-registries" => args.insecure_registries = strings(key, v)?,
            "registry-mirrors" => args.registry_mirrors = strings(key, v)?,
            "init-path" => args.init_path = Some(string(key, v)?.into()),
            "bridge" => args.bridge = string(key, v)?,
            _ => unreachable!("unknown keys were rejected"),
        }
    }
    Ok(())
}

/// `unix:///path` (or a bare absolute path) → the socket's path.
pub fn parse_host(host: &str) -> Result<PathBuf, ConfigError> {
    let err = |reason: &str| ConfigError::Host {
        host: host.to_string(),
        reason: reason.to_string(),
    };
    let path = if let Some(p) = host.strip_prefix("unix://") {
        if p.is_empty() { DEFAULT_SOCKET } else { p }
    } else if host.starts_with('/') {
        host
    } else if host.contains("://") {
        return Err(err("berthd listens on unix sockets only (unix:///path)"));
    } else {
        return Err(err("expected unix:///path"));
    };
    if !path.starts_with('/') {
        return Err(err("the socket path must be absolute"));
    }
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Result<Config, ConfigError> {
        Config::from_args(std::iter::once("berthd").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_follow_dockerd() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.hosts, [PathBuf::from(DEFAULT_SOCKET)]);
        assert_eq!(c.data_root, PathBuf::from("/var/lib/berth"));
        assert_eq!(c.pidfile, PathBuf::from("/run/berth/berthd.pid"));
        assert_eq!(c.log_level, LogLevel::Info);
        let c = cfg(&[
            "--exec-root",
            "/tmp/x",
            "-H",
            "unix:///a.sock",
            "-H",
            "/b.sock",
        ])
        .unwrap();
        assert_eq!(c.pidfile, PathBuf::from("/tmp/x/berthd.pid"));
        assert_eq!(
            c.hosts,
            [PathBuf::from("/a.sock"), PathBuf::from("/b.sock")]
        );
    }

    #[test]
    fn hosts() {
        assert_eq!(
            parse_host("unix://").unwrap(),
            PathBuf::from(DEFAULT_SOCKET)
        );
        assert!(parse_host("tcp://0.0.0.0:2375").is_err());
        assert!(parse_host("unix://rel.sock").is_err());
        assert!(parse_host("fd://").is_err());
    }

    #[test]
    fn file_merges_and_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("daemon.json");
        let fs = f.to_str().unwrap();
        std::fs::write(
            &f,
            r#"{"data-root":"/srv/berth","log-level":"debug","registry-mirrors":["https://m"]}"#,
        )
        .unwrap();
        let c = cfg(&["--config-file", fs]).unwrap();
        assert_eq!(c.data_root, PathBuf::from("/srv/berth"));
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.registry_mirrors, ["https://m"]);

        let e = cfg(&["--config-file", fs, "--data-root", "/x"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("specified both as a flag and in the configuration file: data-root"),
            "{e}"
        );

        std::fs::write(&f, r#"{"data-root":"/a","colour":"blue"}"#).unwrap();
        let e = cfg(&["--config-file", fs]).unwrap_err().to_string();
        assert!(
            e.ends_with("don't match any configuration option: colour"),
            "{e}"
        );

        std::fs::write(&f, r#"{"hosts":"unix:///a"}"#).unwrap();
        assert!(cfg(&["--config-file", fs]).is_err());

        let missing = dir.path().join("missing.json");
        assert!(cfg(&["--config-file", missing.to_str().unwrap()]).is_err());
    }

    #[test]
    fn log_levels() {
        assert!(cfg(&["--log-level", "loud"]).is_err());
        assert_eq!(cfg(&["-l", "fatal"]).unwrap().log_level, LogLevel::Error);
    }
}
