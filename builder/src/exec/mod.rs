//! The executor: runs a [`crate::BuildPlan`] against the image store.
//!
//! Every stage starts from an image (pulled through an [`ImageSource`]
//! when missing), a finished stage, or nothing (`scratch`); every step
//! then makes an image of its own, as Docker's legacy builder does: RUN,
//! COPY and ADD add one layer each (RUN through a [`StepRunner`], which
//! berthd implements with berth-shim), the other instructions change the
//! config and add a history entry. Each step's image is kept in the
//! build [`Cache`] under a key chained from its parent's (the expanded
//! instruction, the ARGs a RUN sees, the content digest of what COPY/ADD
//! copy), so a rebuild with nothing changed only looks images up.
//!
//! Stages of one wave of the plan build on their own threads; their
//! progress comes out stage after stage, as the legacy builder prints it.
//! A failing step removes its container snapshot and mount before the
//! error (which names the Dockerfile line) comes back.

mod cache;
pub mod fsops;
mod git;
mod ssh;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_store::digest::Digest;
use berth_store::layer::{Compression, CreateOptions};
use berth_store::refs::ImageName;
use berth_store::snapshot::Driver;
use berth_store::{Image, NewImage, Store};
use oci_spec::image::Descriptor;
use serde_json::{Value, json};

pub use cache::{Cache, CacheError, PruneReport};

use crate::args::{
    BuildOptions, GlobalScope, StageScope, unconsumed_build_args, unconsumed_warning,
};
use crate::context::{ContextEntry, EntryKind, match_sources, walk_context, walk_under};
use crate::error::DockerfileError;
use crate::graph::{Base, plan};
use crate::ignore::{IgnoreMatcher, read_dockerignore};
use crate::instruction::{
    Command, Copy, Healthcheck, Instruction, KeyValue, Network, RunScript, Security,
};
use crate::mount::{MountType, Sharing};
use crate::parser::{Dockerfile, parse, parse_line};
use fsops::{Item, Owner};

type R<T> = Result<T, DockerfileError>;

/// The PATH a base image without one gets, as Docker sets it.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where `--output` puts the final stage's filesystem (instead of an image).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `type=local,dest=DIR`: the files, in a directory.
    Local(PathBuf),
    /// `type=tar,dest=FILE`: the files, as a tar.
    Tar(PathBuf),
}

/// One build, as `POST /build` and `berth build` describe it.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// Its name in errors (`Dockerfile`, `app.Dockerfile`).
    pub dockerfile_name: String,
    /// Its path, for `<Dockerfile>.dockerignore` (may be outside the
    /// context; need not exist).
    pub dockerfile_path: PathBuf,
    /// The build context, unpacked.
    pub context: PathBuf,
    pub options: BuildOptions,
    pub target: Option<String>,
    /// `-t`, each a name the result gets.
    pub tags: Vec<String>,
    /// `--label`: added as a last LABEL step, as the legacy builder does.
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    /// `--pull`: fetch base images even when they are in the store.
    pub pull: bool,
    /// `--network host` for every RUN (otherwise none, or each RUN's own).
    pub network_host: bool,
    /// `--secret id=…,src=…`.
    pub secrets: BTreeMap<String, PathBuf>,
    /// `--ssh id=SOCKET`: ssh agents' sockets on this host.
    pub ssh: BTreeMap<String, PathBuf>,
    pub output: Option<Output>,
    /// `--add-host name:ip`, for RUN's /etc/hosts.
    pub extra_hosts: Vec<String>,
    /// `--allow security.insecure`: RUN `--security=insecure` may run
    /// privileged.
    pub allow_insecure: bool,
}

/// What a build made.
#[derive(Debug, Clone)]
pub struct BuildResult {
    pub image: Image,
    /// The names given, normalized as the store keeps them.
    pub tags: Vec<String>,
}

/// A mount a RUN gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMountKind {
    Bind,
    Tmpfs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMount {
    pub kind: RunMountKind,
    /// Host path (binds).
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
    /// tmpfs data options (`size=…`).
    pub options: Vec<String>,
}

/// One process a RUN step runs, in `rootfs` (mounted, writable).
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// A fresh container id (64 hex digits).
    pub id: String,
    pub rootfs: PathBuf,
    pub argv: Vec<String>,
    /// `KEY=value`.
    pub env: Vec<String>,
    pub user: String,
    pub workdir: String,
    pub mounts: Vec<RunMount>,
    /// The host's network; otherwise a network namespace of its own with
    /// only loopback.
    pub network_host: bool,
    pub extra_hosts: Vec<String>,
    /// `RUN --security=insecure` (allowed): every capability, the host's
    /// devices, no seccomp filter.
    pub privileged: bool,
}

/// Runs RUN's processes. berthd runs them with berth-shim, as it runs
/// containers; the builder knows nothing of how.
pub trait StepRunner: Send + Sync {
    /// Run `spec` to its end, passing its output (stdout and stderr, as
    /// they come) to `output`. Returns the exit code.
    fn run(&self, spec: &RunSpec, output: &mut dyn FnMut(&[u8])) -> Result<i32, String>;
}

/// Finds base images (`FROM`, `COPY --from`, `--mount=from=`).
pub trait ImageSource: Send + Sync {
    /// The image `name` in the store, pulled first when it is missing or
    /// when `pull` asks for a fresh copy. `progress` gets lines to show.
    fn image(&self, name: &str, pull: bool, progress: &dyn Fn(&str)) -> Result<Image, String>;
}

/// An [`ImageSource`] that only looks in the store.
pub struct LocalImages<'a>(pub &'a Store);

impl ImageSource for LocalImages<'_> {
    fn image(&self, name: &str, _pull: bool, _progress: &dyn Fn(&str)) -> Result<Image, String> {
        self.0.image(name).map_err(|e| e.to_string())
    }
}

/// What a build needs around it.
pub struct Builder<'a> {
    pub store: &'a Store,
    pub cache: &'a Cache,
    pub runner: &'a dyn StepRunner,
    pub images: &'a dyn ImageSource,
    /// The builder's own files: scratch mounts, cache mounts.
    pub state_dir: PathBuf,
    /// Cache-mount locks, shared by every build of this daemon.
    pub locks: &'a MountLocks,
}

/// Locks of `sharing=locked` (and `private`) cache mounts, by id.
#[derive(Debug, Default)]
pub struct MountLocks {
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl MountLocks {
    fn get(&self, id: &str) -> Arc<Mutex<()>> {
        self.locks
            .lock()
            .expect("not poisoned")
            .entry(id.to_string())
            .or_default()
            .clone()
    }
}

/// Where a build's cache mounts live under the builder's state dir.
pub fn cache_mounts_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("cache-mounts")
}

fn short(d: &Digest) -> String {
    d.digest().chars().take(12).collect()
}

fn random_id() -> String {
    let mut b = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Stage outputs in plan order: the stage whose turn it is writes
/// through, the others buffer until then.
struct Ordered<'a> {
    sink: &'a (dyn Fn(&str) + Sync),
    st: Mutex<OrdState>,
}

struct OrdState {
    current: usize,
    bufs: Vec<String>,
    done: Vec<bool>,
}

impl Ordered<'_> {
    fn write(&self, pos: usize, text: &str) {
        let mut st = self.st.lock().expect("not poisoned");
        if pos == st.current {
            (self.sink)(text);
        } else {
            st.bufs[pos].push_str(text);
        }
    }

    fn finish(&self, pos: usize) {
        let mut st = self.st.lock().expect("not poisoned");
        st.done[pos] = true;
        while st.current < st.done.len() && st.done[st.current] {
            st.current += 1;
            if st.current < st.bufs.len() {
                let cur = st.current;
                let text = std::mem::take(&mut st.bufs[cur]);
                if !text.is_empty() {
                    (self.sink)(&text);
                }
            }
        }
    }
}

struct Out<'a, 'b> {
    ord: &'a Ordered<'b>,
    pos: usize,
}

impl Out<'_, '_> {
    fn say(&self, text: &str) {
        self.ord.write(self.pos, text);
    }
}

/// A stage as built.
#[derive(Clone)]
struct StageResult {
    image: Option<Image>,
    key: String,
    scope: StageScope,
    config: Value,
}

/// A stage while it builds.
struct State {
    image: Option<Image>,
    config: Value,
    key: String,
    scope: StageScope,
    /// CMD was set in this stage (ENTRYPOINT then keeps it).
    cmd_set: bool,
}

impl State {
    fn shell(&self) -> Vec<String> {
        self.config
            .get("Shell")
            .and_then(|s| serde_json::from_value::<Vec<String>>(s.clone()).ok())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    fn str_field(&self, k: &str) -> String {
        self.config
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    fn nop(&self, text: &str) -> String {
        format!("{} #(nop)  {text}", self.shell().join(" "))
    }
}

/// Go's `%q` of a string list: `["a" "b"]`, as the legacy builder's
/// history shows CMD and ENTRYPOINT.
fn go_quoted(v: &[String]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|s| serde_json::Value::from(s.clone()).to_string())
        .collect();
    format!("[{}]", items.join(" "))
}

/// A container snapshot for one step, mounted; gone (unmounted,
/// removed) when dropped, whatever happened.
struct Scratch<'a> {
    store: &'a Store,
    id: String,
    dir: PathBuf,
    mounted: bool,
}

impl Scratch<'_> {
    fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    fn unmount(&mut self) {
        if self.mounted {
            let _ = berth_store::snapshot::unmount(&self.rootfs());
            self.mounted = false;
        }
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        self.unmount();
        let _ = self.store.remove_container(&self.id);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Does this env list set `key`?
fn env_pairs(config: &Value) -> Vec<(String, String)> {
    config
        .get("Env")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|e| match e.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (e.to_string(), String::new()),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn clean_abs(p: &str) -> String {
    let c = crate::ignore::clean(p.trim_start_matches('/'));
    if c == "." || c.is_empty() {
        "/".into()
    } else {
        format!("/{c}")
    }
}

impl<'a> Builder<'a> {
    /// Build `req`; progress lines (the legacy builder's `stream` text)
    /// go to `progress` as they come.
    pub fn build(&self, req: &BuildRequest, progress: &(dyn Fn(&str) + Sync)) -> R<BuildResult> {
        let r = self.build_inner(req, progress);
        // The steps' cache entries, on disk once per build.
        if let Err(e) = self.cache.flush() {
            tracing::warn!("{e}");
        }
        r
    }

    fn build_inner(&self, req: &BuildRequest, progress: &(dyn Fn(&str) + Sync)) -> R<BuildResult> {
        let file = if req.dockerfile_name.is_empty() {
            "Dockerfile"
        } else {
            &req.dockerfile_name
        };
        let df = parse(file, &req.dockerfile)?;
        if df.stages.is_empty() {
            return Err(DockerfileError::new(
                file,
                0,
                "the Dockerfile has no FROM: nothing to build",
            ));
        }
        let bp = plan(&df, &req.options, req.target.as_deref())?;
        let globals = GlobalScope::new(&df, &req.options)?;
        let ignore = read_dockerignore(&req.context, &req.dockerfile_path)
            .map_err(|e| DockerfileError::new(file, 0, e.to_string()))?;
        // The context is walked once, lazily, and shared by every COPY.
        let ctx = ContextFiles {
            root: req.context.clone(),
            ignore,
            entries: Mutex::new(None),
        };
        // Each stage's instructions, the `--label` step on the target.
        let mut stage_ins: HashMap<usize, Vec<Instruction>> = HashMap::new();
        for &i in &bp.order {
            let mut ins = df.stages[i].instructions.clone();
            if i == bp.target && !req.labels.is_empty() {
                let kvs: Vec<KeyValue> = req
                    .labels
                    .iter()
                    .map(|(k, v)| KeyValue {
                        key: k.clone(),
                        value: v.clone(),
                    })
                    .collect();
                let text: Vec<String> = req
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{}={}", Value::from(k.clone()), Value::from(v.clone())))
                    .collect();
                let line = ins
                    .last()
                    .map_or(df.stages[i].from.end_line, |l| l.end_line);
                ins.push(Instruction {
                    line,
                    end_line: line,
                    original: format!("LABEL {}", text.join(" ")),
                    command: Command::Label(kvs),
                });
            }
            stage_ins.insert(i, ins);
        }
        let total: usize = bp.order.iter().map(|i| 1 + stage_ins[i].len()).sum();
        let mut first_step = HashMap::new();
        let mut n = 1;
        for &i in &bp.order {
            first_step.insert(i, n);
            n += 1 + stage_ins[&i].len();
        }
        let ord = Ordered {
            sink: progress,
            st: Mutex::new(OrdState {
                current: 0,
                bufs: vec![String::new(); bp.order.len()],
                done: vec![false; bp.order.len()],
            }),
        };
        let results: Mutex<HashMap<usize, StageResult>> = Mutex::new(HashMap::new());
        for wave in &bp.groups {
            let errors: Vec<(usize, DockerfileError)> = std::thread::scope(|s| {
                let handles: Vec<_> = wave
                    .iter()
                    .map(|&si| {
                        let pos = bp.order.iter().position(|&x| x == si).expect("planned");
                        let out = Out { ord: &ord, pos };
                        let (df, globals, ctx, results, req) = (&df, &globals, &ctx, &results, req);
                        let ins = &stage_ins[&si];
                        let first = first_step[&si];
                        s.spawn(move || {
                            let r = self.build_stage(
                                req, df, globals, ctx, results, si, ins, first, total, &out,
                            );
                            out.ord.finish(out.pos);
                            (si, r)
                        })
                    })
                    .collect();
                let mut errs = Vec::new();
                for h in handles {
                    match h.join() {
                        Ok((si, Ok(res))) => {
                            results.lock().expect("not poisoned").insert(si, res);
                        }
                        Ok((si, Err(e))) => errs.push((si, e)),
                        Err(_) => errs.push((
                            usize::MAX,
                            DockerfileError::new(file, 0, "a build stage panicked"),
                        )),
                    }
                }
                errs
            });
            if let Some((_, e)) = errors.into_iter().min_by_key(|(i, _)| *i) {
                return Err(e);
            }
        }
        let res = results
            .lock()
            .expect("not poisoned")
            .remove(&bp.target)
            .expect("target built");
        let image = match res.image {
            Some(i) => i,
            // A stage of nothing but FROM scratch.
            None => {
                let manifest = self
                    .store
                    .commit_image(None, &NewImage::default(), None)
                    .map_err(|e| DockerfileError::new(file, 0, e.to_string()))?;
                self.store
                    .image_by_manifest(&manifest)
                    .map_err(|e| DockerfileError::new(file, 0, e.to_string()))?
            }
        };
        let unused = unconsumed_build_args(&df, &bp.order, &req.options);
        if let Some(w) = unconsumed_warning(&unused) {
            progress(&format!("{w}\n"));
        }
        if let Some(out) = &req.output {
            self.export(&image, out)
                .map_err(|e| DockerfileError::new(file, 0, format!("exporting the result: {e}")))?;
            return Ok(BuildResult {
                image,
                tags: Vec::new(),
            });
        }
        let mut tags = Vec::new();
        for t in &req.tags {
            let name = ImageName::parse(t)
                .map_err(|e| DockerfileError::new(file, 0, format!("invalid tag {t:?}: {e}")))?;
            let desc: Descriptor = serde_json::from_value(json!({
                "mediaType": berth_store::image::OCI_MANIFEST,
                "digest": image.manifest_digest.to_string(),
                "size": self.store.blobs.size(&image.manifest_digest)
                    .map_err(|e| DockerfileError::new(file, 0, e.to_string()))?,
            }))
            .expect("descriptor");
            self.store
                .tag(&name, &desc, &berth_store::registry::Platform::host())
                .map_err(|e| DockerfileError::new(file, 0, format!("tagging {t}: {e}")))?;
            tags.push(name.to_string());
        }
        Ok(BuildResult { image, tags })
    }

    #[allow(clippy::too_many_arguments)]
    fn build_stage(
        &self,
        req: &BuildRequest,
        df: &Dockerfile,
        globals: &GlobalScope,
        ctx: &ContextFiles,
        results: &Mutex<HashMap<usize, StageResult>>,
        si: usize,
        instructions: &[Instruction],
        first: usize,
        total: usize,
        out: &Out,
    ) -> R<StageResult> {
        let stage = &df.stages[si];
        let file = df.file.as_str();
        let at = |line: usize| move |m: String| DockerfileError::new(file, line, m);
        out.say(&format!(
            "Step {first}/{total} : {}\n",
            stage.from.original.trim()
        ));
        let from = globals.expand_from(&stage.from)?;
        let node = results.lock().expect("not poisoned").clone();
        let base = if from.image.eq_ignore_ascii_case("scratch") {
            Base::Scratch
        } else {
            match df.stages[..si]
                .iter()
                .find(|s| s.name.as_deref() == Some(from.image.to_ascii_lowercase().as_str()))
            {
                Some(s) => Base::Stage(s.index),
                None => Base::Image(from.image.clone()),
            }
        };
        let mut st = match &base {
            Base::Scratch => State {
                image: None,
                config: json!({}),
                key: "scratch".into(),
                scope: StageScope::new(globals, &req.options, Vec::new()),
                cmd_set: false,
            },
            Base::Image(name) => {
                let say = |l: &str| out.say(l);
                let image = self
                    .images
                    .image(name, req.pull, &say)
                    .map_err(at(stage.from.line))?;
                let config = image
                    .raw_config
                    .get("config")
                    .filter(|c| c.is_object())
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                let env = env_pairs(&config);
                State {
                    key: image.id.to_string(),
                    image: Some(image),
                    config,
                    scope: StageScope::new(globals, &req.options, env),
                    cmd_set: false,
                }
            }
            Base::Stage(p) => {
                let parent = node.get(p).ok_or_else(|| {
                    DockerfileError::new(file, stage.from.line, format!("stage {p} was not built"))
                })?;
                State {
                    image: parent.image.clone(),
                    config: parent.config.clone(),
                    key: parent.key.clone(),
                    scope: StageScope::from_parent(&parent.scope),
                    cmd_set: false,
                }
            }
        };
        if let Some(img) = &st.image {
            out.say(&format!(" ---> {}\n", short(&img.id)));
        }
        // As the legacy builder: a base without PATH gets the default.
        if !matches!(base, Base::Stage(_))
            && !env_pairs(&st.config).iter().any(|(k, _)| k == "PATH")
        {
            let mut env: Vec<Value> = st
                .config
                .get("Env")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            env.push(Value::from(format!("PATH={DEFAULT_PATH}")));
            st.config["Env"] = Value::Array(env);
            st.scope = StageScope::new(globals, &req.options, env_pairs(&st.config));
        }
        // The base image's ONBUILD triggers run first, then are cleared.
        let triggers: Vec<String> = st
            .config
            .get("OnBuild")
            .and_then(|o| serde_json::from_value(o.clone()).ok())
            .unwrap_or_default();
        if let Some(obj) = st.config.as_object_mut() {
            obj.insert("OnBuild".into(), Value::Null);
        }
        if !triggers.is_empty() {
            out.say(&format!(
                "# Executing {} build trigger{}\n",
                triggers.len(),
                if triggers.len() == 1 { "" } else { "s" }
            ));
            for t in &triggers {
                let ins = parse_line(file, stage.from.line, t, df.directives.escape)?;
                self.step(req, df, ctx, &node, &mut st, &ins, out)?;
            }
        }
        for (k, ins) in instructions.iter().enumerate() {
            out.say(&format!(
                "Step {}/{total} : {}\n",
                first + 1 + k,
                ins.original.trim()
            ));
            self.step(req, df, ctx, &node, &mut st, ins, out)?;
        }
        Ok(StageResult {
            image: st.image,
            key: st.key,
            scope: st.scope,
            config: st.config,
        })
    }

    /// One instruction: from the cache, or run and committed.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        req: &BuildRequest,
        df: &Dockerfile,
        ctx: &ContextFiles,
        stages: &HashMap<usize, StageResult>,
        st: &mut State,
        ins: &Instruction,
        out: &Out,
    ) -> R<()> {
        let file = df.file.as_str();
        let line = ins.line;
        let err = |m: String| DockerfileError::new(file, line, m);
        let expanded = st.scope.step(ins)?;
        let mut text = st.scope.history_text(&expanded);
        // What COPY/ADD copy: the context files' digest, or a stage's or
        // image's files, or downloaded bytes.
        let mut sources: Option<Sources> = None;
        if let Command::Copy(c) | Command::Add(c) = &expanded.command {
            let is_add = matches!(expanded.command, Command::Add(_));
            let s = self
                .sources(req, df, ctx, stages, c, is_add, out)
                .map_err(&err)?;
            text.push('\0');
            text.push_str(&s.digest);
            sources = Some(s);
        }
        if let Command::Run(r) = &expanded.command
            && req.network_host
            && r.network.is_none()
        {
            text.push_str("\0network=host");
        }
        let key = crate::context::cache_key(&st.key, &text, None);
        if !req.no_cache
            && let Ok(Some(manifest)) = self.cache.get(&key)
            && let Ok(img) = self.store.image_by_manifest(&manifest)
        {
            out.say(" ---> Using cache\n");
            out.say(&format!(" ---> {}\n", short(&img.id)));
            self.apply_config(st, &expanded);
            st.config = img
                .raw_config
                .get("config")
                .cloned()
                .unwrap_or_else(|| json!({}));
            st.image = Some(img);
            st.key = key;
            return Ok(());
        }
        let (layer, created_by) = match &expanded.command {
            Command::Run(_) => self.run(req, df, stages, st, &expanded, out)?,
            Command::Copy(c) | Command::Add(c) => {
                let mut srcs = sources.take().expect("computed above");
                self.load(&mut srcs).map_err(&err)?;
                let keyword = expanded.command.keyword();
                let is_add = matches!(expanded.command, Command::Add(_));
                let layer = self.copy(st, c, &srcs, is_add).map_err(&err)?;
                let created = st.nop(&format!("{keyword} {} in {} ", srcs.label(), c.dest));
                drop(srcs);
                (layer, created.replacen("#(nop)  ", "#(nop) ", 1))
            }
            Command::Workdir(w) => {
                let prev = st.str_field("WorkingDir");
                let path = if w.starts_with('/') {
                    clean_abs(w)
                } else {
                    clean_abs(&format!(
                        "{}/{w}",
                        if prev.is_empty() { "/" } else { &prev }
                    ))
                };
                let layer = self.workdir(st, &path).map_err(&err)?;
                self.apply_config(st, &expanded);
                (layer, st.nop(&format!("WORKDIR {w}")))
            }
            _ => {
                self.apply_config(st, &expanded);
                (None, st.nop(&legacy_comment(&expanded, st)))
            }
        };
        let mut hist = json!({ "created_by": created_by });
        if layer.is_none() {
            hist["empty_layer"] = true.into();
        }
        let new = NewImage {
            layers: layer.into_iter().collect(),
            history: vec![hist],
            config: Some(st.config.clone()),
            author: match &expanded.command {
                Command::Maintainer(m) => Some(m.clone()),
                _ => None,
            },
        };
        let manifest = self
            .store
            .commit_image(st.image.as_ref(), &new, None)
            .map_err(|e| err(format!("committing the step's image: {e}")))?;
        let img = self
            .store
            .image_by_manifest(&manifest)
            .map_err(|e| err(e.to_string()))?;
        self.cache
            .put(self.store, &key, &manifest, &img.id)
            .map_err(|e| err(e.to_string()))?;
        out.say(&format!(" ---> {}\n", short(&img.id)));
        st.image = Some(img);
        st.key = key;
        Ok(())
    }

    /// The config change an instruction makes.
    fn apply_config(&self, st: &mut State, ins: &Instruction) {
        let shell = st.shell();
        let env: Vec<String> = st
            .scope
            .env()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !st.config.is_object() {
            st.config = json!({});
        }
        let c = st.config.as_object_mut().expect("object");
        let map_insert =
            |c: &mut serde_json::Map<String, Value>, field: &str, k: &str, v: Value| {
                let m = c.entry(field.to_string()).or_insert_with(|| json!({}));
                if !m.is_object() {
                    *m = json!({});
                }
                m.as_object_mut().expect("object").insert(k.to_string(), v);
            };
        match &ins.command {
            Command::Env(_) => {
                c.insert("Env".into(), json!(env));
            }
            Command::Cmd(cl) => {
                c.insert("Cmd".into(), json!(cl.argv(&shell)));
                st.cmd_set = true;
            }
            Command::Entrypoint(cl) => {
                let argv = cl.argv(&shell);
                c.insert("Entrypoint".into(), json!(argv));
                if !st.cmd_set {
                    c.insert("Cmd".into(), Value::Null);
                }
            }
            Command::Label(kvs) => {
                for kv in kvs {
                    map_insert(c, "Labels", &kv.key, Value::from(kv.value.clone()));
                }
            }
            Command::Expose(ports) => {
                for p in ports {
                    map_insert(c, "ExposedPorts", p, json!({}));
                }
            }
            Command::Volume(v) => {
                for p in v {
                    map_insert(c, "Volumes", p, json!({}));
                }
            }
            Command::User(u) => {
                c.insert("User".into(), Value::from(u.clone()));
            }
            Command::Workdir(w) => {
                let prev = c
                    .get("WorkingDir")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let path = if w.starts_with('/') {
                    clean_abs(w)
                } else {
                    clean_abs(&format!(
                        "{}/{w}",
                        if prev.is_empty() { "/" } else { &prev }
                    ))
                };
                c.insert("WorkingDir".into(), Value::from(path));
            }
            Command::StopSignal(s) => {
                c.insert("StopSignal".into(), Value::from(s.clone()));
            }
            Command::Shell(v) => {
                c.insert("Shell".into(), json!(v));
            }
            Command::Healthcheck(h) => {
                let mut hc = json!({ "Test": h.test() });
                if let Healthcheck::Check {
                    interval,
                    timeout,
                    start_period,
                    start_interval,
                    retries,
                    ..
                } = h
                {
                    for (k, d) in [
                        ("Interval", interval),
                        ("Timeout", timeout),
                        ("StartPeriod", start_period),
                        ("StartInterval", start_interval),
                    ] {
                        if let Some(d) = d {
                            hc[k] = json!(d.as_nanos() as u64);
                        }
                    }
                    if let Some(r) = retries {
                        hc["Retries"] = json!(r);
                    }
                }
                c.insert("Healthcheck".into(), hc);
            }
            Command::Onbuild(inner) => {
                let list = c.entry("OnBuild".to_string()).or_insert_with(|| json!([]));
                if !list.is_array() {
                    *list = json!([]);
                }
                list.as_array_mut()
                    .expect("array")
                    .push(Value::from(inner.original.trim().to_string()));
            }
            _ => {}
        }
    }

    /// A snapshot of the current state, mounted.
    fn scratch(&self, st: &State) -> Result<Scratch<'a>, String> {
        let id = random_id();
        let dir = self.state_dir.join("tmp").join(&id[..16]);
        std::fs::create_dir_all(dir.join("rootfs"))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut s = Scratch {
            store: self.store,
            id: id.clone(),
            dir,
            mounted: false,
        };
        match &st.image {
            Some(img) => self.store.prepare_container(&id, img),
            None => self
                .store
                .snapshots
                .create_container(&id, None)
                .map(|_| ())
                .map_err(Into::into),
        }
        .map_err(|e| format!("preparing a snapshot: {e}"))?;
        self.store
            .mount_container(&id, &s.rootfs())
            .map_err(|e| format!("mounting the snapshot: {e}"))?;
        s.mounted = true;
        Ok(s)
    }

    /// The scratch snapshot's changes as a layer blob; None when nothing
    /// changed (an empty layer is no layer, as Docker commits).
    fn commit_layer(&self, s: &mut Scratch) -> Result<Option<Digest>, String> {
        s.unmount();
        if self.store.snapshots.driver() == Driver::Overlay {
            let upper = self
                .store
                .snapshots
                .container_changes_dir(&s.id)
                .map_err(|e| e.to_string())?;
            let empty = std::fs::read_dir(&upper)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if empty {
                return Ok(None);
            }
        }
        let created = self
            .store
            .commit_container_layer(
                &s.id,
                &CreateOptions {
                    compression: Compression::None,
                    level: None,
                    threads: 1,
                },
            )
            .map_err(|e| format!("committing the layer: {e}"))?;
        Ok(Some(created.digest))
    }

    fn workdir(&self, st: &State, path: &str) -> Result<Option<Digest>, String> {
        if st.image.is_none() && path == "/" {
            return Ok(None);
        }
        let mut s = self.scratch(st)?;
        let root = s.rootfs();
        if fsops::first_missing(&root, path).is_none() {
            return Ok(None);
        }
        fsops::mkdir_all(&root, path, None).map_err(|e| format!("WORKDIR {path}: {e}"))?;
        self.commit_layer(&mut s)
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        req: &BuildRequest,
        df: &Dockerfile,
        stages: &HashMap<usize, StageResult>,
        st: &State,
        ins: &Instruction,
        out: &Out,
    ) -> R<(Option<Digest>, String)> {
        let file = df.file.as_str();
        let err = |m: String| DockerfileError::new(file, ins.line, m);
        let Command::Run(run) = &ins.command else {
            unreachable!("a RUN")
        };
        let shell = st.shell();
        let mut mounts_dir: Option<tempfile::TempDir> = None;
        let (argv, script_file) = match run.script() {
            RunScript::Exec(v) => (v, None),
            RunScript::Shell(s) => (shell.iter().cloned().chain([s]).collect(), None),
            RunScript::File { name, content } => {
                let t = tempfile::tempdir().map_err(|e| err(e.to_string()))?;
                let p = t.path().join("script");
                std::fs::write(&p, content).map_err(|e| err(e.to_string()))?;
                std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                    .map_err(|e| err(e.to_string()))?;
                mounts_dir = Some(t);
                let target = format!("/dev/pipes/{name}");
                (vec![target.clone()], Some((p, target)))
            }
        };
        let history_args = st.scope.history_args();
        let mut created_by = argv.join(" ");
        if !history_args.is_empty() {
            let kv: Vec<String> = history_args
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            created_by = format!("|{} {} {created_by}", kv.len(), kv.join(" "));
        }
        let mut env: Vec<String> = st
            .scope
            .run_env()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut s = self.scratch(st).map_err(&err)?;
        let root = s.rootfs();
        let mut mounts = Vec::new();
        let mut held_locks = Vec::new();
        // Kept alive until the run is over: copies for rw binds, secrets.
        let mut keep: Vec<tempfile::TempDir> = Vec::new();
        // Stages and images bind-mounted from, mounted until the run ends.
        let mut holders: Vec<Scratch> = Vec::new();
        if let Some((p, target)) = &script_file {
            mounts.push(RunMount {
                kind: RunMountKind::Bind,
                source: p.clone(),
                target: target.clone(),
                read_only: true,
                options: Vec::new(),
            });
        }
        // Agents' proxies, until the run ends.
        let mut agents: Vec<(ssh::AgentProxy, String)> = Vec::new();
        let mut ssh_mounts = 0;
        for m in &run.mounts {
            // ssh sockets are numbered among the ssh mounts, as BuildKit does.
            let target = m.effective_target(ssh_mounts);
            match m.kind {
                MountType::Bind => {
                    let target =
                        target.ok_or_else(|| err("--mount=type=bind needs a target".into()))?;
                    let src_rel = m.source.clone().unwrap_or_else(|| "/".into());
                    let base: PathBuf = match &m.from {
                        None => req.context.clone(),
                        Some(f) => {
                            let img = self.image_of(req, df, stages, f, out).map_err(&err)?;
                            let child = self.scratch_of(img.as_ref()).map_err(&err)?;
                            let r = child.rootfs();
                            holders.push(child);
                            r
                        }
                    };
                    let mut source = fsops::scoped(&base, &src_rel, true)
                        .map_err(|e| err(format!("--mount source {src_rel}: {e}")))?;
                    if !source.exists() {
                        return Err(err(format!("--mount source {src_rel}: not found")));
                    }
                    if !m.read_only {
                        // Writes to a rw bind are the RUN's own: a copy.
                        let t = tempfile::tempdir().map_err(|e| err(e.to_string()))?;
                        let copy = t.path().join("data");
                        copy_tree(&source, &copy).map_err(|e| err(e.to_string()))?;
                        source = copy;
                        keep.push(t);
                    }
                    mounts.push(RunMount {
                        kind: RunMountKind::Bind,
                        source,
                        target,
                        read_only: m.read_only,
                        options: Vec::new(),
                    });
                }
                MountType::Cache => {
                    let target =
                        target.ok_or_else(|| err("--mount=type=cache needs a target".into()))?;
                    let id = m.effective_id();
                    let hex: String = berth_store::digest::sha256(id.as_bytes())
                        .digest()
                        .chars()
                        .take(32)
                        .collect();
                    let mut dir = cache_mounts_dir(&self.state_dir).join(hex);
                    let lock = self.locks.get(&id);
                    match m.effective_sharing() {
                        Sharing::Shared => {}
                        Sharing::Locked => held_locks.push(lock),
                        Sharing::Private => {
                            if lock.try_lock().is_err() {
                                let t = tempfile::tempdir().map_err(|e| err(e.to_string()))?;
                                dir = t.path().to_path_buf();
                                keep.push(t);
                            } else {
                                held_locks.push(lock);
                            }
                        }
                    }
                    if !dir.exists() {
                        std::fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
                        let mode = m.mode.unwrap_or(0o755);
                        std::fs::set_permissions(
                            &dir,
                            std::os::unix::fs::PermissionsExt::from_mode(mode),
                        )
                        .map_err(|e| err(e.to_string()))?;
                        std::os::unix::fs::chown(
                            &dir,
                            Some(m.uid.unwrap_or(0)),
                            Some(m.gid.unwrap_or(0)),
                        )
                        .map_err(|e| err(e.to_string()))?;
                    }
                    mounts.push(RunMount {
                        kind: RunMountKind::Bind,
                        source: dir,
                        target,
                        read_only: m.read_only,
                        options: Vec::new(),
                    });
                }
                MountType::Tmpfs => {
                    let target =
                        target.ok_or_else(|| err("--mount=type=tmpfs needs a target".into()))?;
                    let mut options = Vec::new();
                    if let Some(sz) = m.size {
                        options.push(format!("size={sz}"));
                    }
                    mounts.push(RunMount {
                        kind: RunMountKind::Tmpfs,
                        source: PathBuf::from("tmpfs"),
                        target,
                        read_only: false,
                        options,
                    });
                }
                MountType::Secret => {
                    let id = m.effective_id();
                    let Some(src) = req.secrets.get(&id) else {
                        if m.required {
                            return Err(err(format!(
                                "secret {id}: required but not given (--secret id={id},src=…)"
                            )));
                        }
                        continue;
                    };
                    let data = std::fs::read(src)
                        .map_err(|e| err(format!("secret {id}: {}: {e}", src.display())))?;
                    if let Some(var) = &m.env {
                        env.push(format!("{var}={}", String::from_utf8_lossy(&data)));
                    }
                    let Some(target) = target else { continue };
                    let t = tempfile::tempdir().map_err(|e| err(e.to_string()))?;
                    let p = t.path().join("secret");
                    std::fs::write(&p, &data).map_err(|e| err(e.to_string()))?;
                    std::fs::set_permissions(
                        &p,
                        std::os::unix::fs::PermissionsExt::from_mode(m.mode.unwrap_or(0o400)),
                    )
                    .map_err(|e| err(e.to_string()))?;
                    std::os::unix::fs::chown(
                        &p,
                        Some(m.uid.unwrap_or(0)),
                        Some(m.gid.unwrap_or(0)),
                    )
                    .map_err(|e| err(e.to_string()))?;
                    keep.push(t);
                    mounts.push(RunMount {
                        kind: RunMountKind::Bind,
                        source: p,
                        target,
                        read_only: true,
                        options: Vec::new(),
                    });
                }
                MountType::Ssh => {
                    let target = target.expect("ssh mounts have a default target");
                    ssh_mounts += 1;
                    let id = m.effective_id();
                    let Some(sock) = req.ssh.get(&id) else {
                        if m.required {
                            return Err(err(format!(
                                "ssh {id}: required but not given (--ssh {id}=SOCKET)"
                            )));
                        }
                        continue;
                    };
                    let proxy = ssh::AgentProxy::start(
                        sock,
                        m.uid.unwrap_or(0),
                        m.gid.unwrap_or(0),
                        m.mode.unwrap_or(0o600),
                    )
                    .map_err(|e| err(format!("ssh {id}: {e}")))?;
                    mounts.push(RunMount {
                        kind: RunMountKind::Bind,
                        source: proxy.path().to_path_buf(),
                        target: target.clone(),
                        read_only: false,
                        options: Vec::new(),
                    });
                    agents.push((proxy, target));
                }
            }
        }
        // As BuildKit does: the first agent is the default one.
        if let Some((_, first)) = agents.first()
            && !env.iter().any(|e| e.starts_with("SSH_AUTH_SOCK="))
        {
            env.push(format!("SSH_AUTH_SOCK={first}"));
        }
        // Mount points the runtime will create are not the RUN's changes.
        let created: Vec<String> = mounts
            .iter()
            .filter(|m| !m.target.starts_with("/dev/"))
            .filter_map(|m| fsops::first_missing(&root, &m.target))
            .collect();
        let network_host = match run.network {
            Some(Network::Host) => true,
            Some(Network::None) => false,
            Some(Network::Default) | None => req.network_host,
        };
        let privileged = match run.security {
            Some(Security::Insecure) if !req.allow_insecure => {
                return Err(err("--security=insecure is not allowed: build with \
                     --allow security.insecure"
                    .into()));
            }
            Some(Security::Insecure) => true,
            Some(Security::Sandbox) | None => false,
        };
        let _guards: Vec<std::sync::MutexGuard<()>> = held_locks
            .iter()
            .map(|l| l.lock().unwrap_or_else(|p| p.into_inner()))
            .collect();
        let spec = RunSpec {
            id: s.id.clone(),
            rootfs: root.clone(),
            argv,
            env,
            user: st.str_field("User"),
            workdir: {
                let w = st.str_field("WorkingDir");
                if w.is_empty() { "/".into() } else { w }
            },
            mounts,
            network_host,
            extra_hosts: req.extra_hosts.clone(),
            privileged,
        };
        out.say(&format!(" ---> Running in {}\n", &s.id[..12]));
        // The last lines of output go into the error of a failing RUN.
        let mut tail: Vec<u8> = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        let code = {
            let mut on_output = |b: &[u8]| {
                tail.extend_from_slice(b);
                if tail.len() > 8192 {
                    tail.drain(..tail.len() - 4096);
                }
                // Whole lines go out; a partial one waits for its end.
                pending.extend_from_slice(b);
                if let Some(p) = pending.iter().rposition(|&c| c == b'\n') {
                    let chunk: Vec<u8> = pending.drain(..=p).collect();
                    out.say(&String::from_utf8_lossy(&chunk));
                }
            };
            self.runner.run(&spec, &mut on_output).map_err(&err)?
        };
        if !pending.is_empty() {
            out.say(&format!("{}\n", String::from_utf8_lossy(&pending)));
        }
        drop(_guards);
        drop(mounts_dir);
        if code != 0 {
            let text = String::from_utf8_lossy(&tail);
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            let last: Vec<&str> = lines[lines.len().saturating_sub(5)..].to_vec();
            let shown = spec_text(&spec.argv);
            let mut msg = format!("The command '{shown}' returned a non-zero code: {code}");
            if !last.is_empty() {
                msg.push_str(&format!("; last output: {}", last.join(" | ")));
            }
            return Err(err(msg));
        }
        fsops::remove_created(&root, &created);
        out.say(&format!(
            "Removing intermediate container {}\n",
            &s.id[..12]
        ));
        let layer = self.commit_layer(&mut s).map_err(&err)?;
        drop(keep);
        drop(holders);
        drop(agents);
        Ok((layer, created_by))
    }

    /// A snapshot of an image's files, mounted, for reading.
    fn scratch_of(&self, image: Option<&Image>) -> Result<Scratch<'a>, String> {
        let st = State {
            image: image.cloned(),
            config: json!({}),
            key: String::new(),
            scope: StageScope::new(
                &GlobalScope {
                    file: String::new(),
                    escape: '\\',
                    values: Vec::new(),
                    unset: Default::default(),
                },
                &BuildOptions::default(),
                Vec::new(),
            ),
            cmd_set: false,
        };
        self.scratch(&st)
    }

    /// What `--from` names: a stage (by index or name) or an image.
    fn image_of(
        &self,
        req: &BuildRequest,
        df: &Dockerfile,
        stages: &HashMap<usize, StageResult>,
        from: &str,
        out: &Out,
    ) -> Result<Option<Image>, String> {
        let idx = from
            .parse::<usize>()
            .ok()
            .or_else(|| df.stage_by_name(from).map(|s| s.index));
        if let Some(i) = idx {
            return stages
                .get(&i)
                .map(|r| r.image.clone())
                .ok_or_else(|| format!("--from={from}: stage {i} was not built before this step"));
        }
        let say = |l: &str| out.say(l);
        self.images
            .image(from, req.pull, &say)
            .map(Some)
            .map_err(|e| format!("--from={from}: no stage or image of that name ({e})"))
    }

    /// What a COPY/ADD copies, and its digest for the cache key.
    #[allow(clippy::too_many_arguments)]
    fn sources(
        &self,
        req: &BuildRequest,
        df: &Dockerfile,
        ctx: &ContextFiles,
        stages: &HashMap<usize, StageResult>,
        c: &Copy,
        is_add: bool,
        out: &Out,
    ) -> Result<Sources<'a>, String> {
        let mut h = sha2::Sha256::new();
        use sha2::Digest as _;
        let mut set = Sources {
            root: req.context.clone(),
            entries: Vec::new(),
            inline: Vec::new(),
            downloads: Vec::new(),
            single_file: false,
            digest: String::new(),
            _holder: None,
            pending: None,
            git: Vec::new(),
        };
        for doc in &c.inline {
            h.update(format!("inline\0{}\0{}\0", doc.name, doc.content).as_bytes());
            set.inline
                .push((doc.name.clone(), doc.content.clone().into_bytes()));
        }
        let (local, remote): (Vec<String>, Vec<String>) = c
            .sources
            .iter()
            .cloned()
            .partition(|s| !(is_add && crate::is_remote(s)));
        for url in &remote {
            if crate::is_git(url) {
                // The key is the commit the ref names now: an unchanged
                // remote hits, a new commit misses; nothing is cloned yet.
                let src = git::GitSource::parse(url);
                let commit = git::resolve(&src).map_err(|e| e.to_string())?;
                h.update(
                    format!(
                        "git\0{}\0{commit}\0{:?}\0{}\0",
                        src.url, src.subdir, c.keep_git_dir
                    )
                    .as_bytes(),
                );
                set.git.push(GitPending {
                    src,
                    commit,
                    keep_git_dir: c.keep_git_dir,
                    tree: None,
                });
                continue;
            }
            let body = fsops::http_get(url)?;
            let sum = berth_store::digest::sha256(&body);
            if let Some(want) = &c.checksum
                && want != &sum.to_string()
            {
                return Err(format!(
                    "{url}: digest mismatch: --checksum={want}, got {sum}"
                ));
            }
            let name = url
                .split(['?', '#'])
                .next()
                .unwrap_or_default()
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .filter(|n| !n.is_empty() && !n.contains(':'))
                .unwrap_or("index.html")
                .to_string();
            h.update(format!("url\0{url}\0{sum}\0").as_bytes());
            set.downloads.push((name, body));
        }
        if !local.is_empty() {
            let walked: Option<(PathBuf, Vec<ContextEntry>)> = match &c.from {
                Some(f) => {
                    let img = self.image_of(req, df, stages, f, out)?;
                    let memo = img.as_ref().map(|i| {
                        let k = format!("{}\0{local:?}\0{:?}\0{}", i.id, c.exclude, c.parents);
                        berth_store::digest::sha256(k.as_bytes()).to_string()
                    });
                    // Known: the image is mounted only if the step misses.
                    if let Some(m) = &memo
                        && let Ok(Some(v)) = self.cache.from_image(m)
                        && let Some((digest, single)) = v.split_once(' ')
                    {
                        h.update(format!("files\0{digest}\0").as_bytes());
                        set.single_file = single == "1";
                        set.pending = Some(Pending {
                            image: img,
                            local: local.clone(),
                            exclude: c.exclude.clone(),
                            parents: c.parents,
                            lone: c.sources.len() + c.inline.len() == 1,
                        });
                        None
                    } else {
                        let (child, root, entries) = self.walk_image(img.as_ref(), &local)?;
                        set._holder = Some(child);
                        if let Some(m) = &memo {
                            let matched =
                                match_sources(&root, &entries, &local, &c.exclude, c.parents)
                                    .map_err(|e| e.to_string())?;
                            let single = single_source(c, &local, &entries);
                            let v = format!("{} {}", matched.digest, if single { 1 } else { 0 });
                            if let Err(e) = self.cache.put_from_image(m, &v) {
                                tracing::warn!("{e}");
                            }
                        }
                        Some((root, entries))
                    }
                }
                None => Some((req.context.clone(), ctx.entries()?)),
            };
            if let Some((root, entries)) = walked {
                let matched = match_sources(&root, &entries, &local, &c.exclude, c.parents)
                    .map_err(|e| e.to_string())?;
                h.update(format!("files\0{}\0", matched.digest).as_bytes());
                set.single_file = single_source(c, &local, &entries);
                set.root = root;
                set.entries = matched.entries;
            }
        }
        if set.pending.is_none() {
            set.single_file |= c.sources.len() + c.inline.len() == 1
                && set.entries.is_empty()
                && set.git.is_empty();
        }
        if c.chown.is_some() || c.chmod.is_some() {
            h.update(format!("{:?}{:?}", c.chown, c.chmod).as_bytes());
        }
        let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        set.digest = hex;
        Ok(set)
    }

    /// `image` mounted, and what is under the sources' literal prefixes.
    fn walk_image(
        &self,
        image: Option<&Image>,
        local: &[String],
    ) -> Result<(Scratch<'a>, PathBuf, Vec<ContextEntry>), String> {
        let child = self.scratch_of(image)?;
        let root = child.rootfs();
        let mut entries = Vec::new();
        for s in local {
            let lit = literal_prefix(s);
            entries.extend(walk_under(&root, &lit).map_err(|e| e.to_string())?);
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        entries.dedup_by(|a, b| a.path == b.path);
        Ok((child, root, entries))
    }

    /// The files of sources whose digest came from the cache, for a step
    /// that missed after all.
    fn load(&self, set: &mut Sources<'a>) -> Result<(), String> {
        for g in &mut set.git {
            g.tree = Some(
                git::checkout(
                    &self.state_dir.join("tmp"),
                    &g.src,
                    &g.commit,
                    g.keep_git_dir,
                )
                .map_err(|e| e.to_string())?,
            );
        }
        let Some(p) = set.pending.take() else {
            return Ok(());
        };
        let (child, root, entries) = self.walk_image(p.image.as_ref(), &p.local)?;
        let matched = match_sources(&root, &entries, &p.local, &p.exclude, p.parents)
            .map_err(|e| e.to_string())?;
        set._holder = Some(child);
        set.root = root;
        set.entries = matched.entries;
        set.single_file |= p.lone && set.entries.is_empty();
        Ok(())
    }

    fn copy(
        &self,
        st: &State,
        c: &Copy,
        srcs: &Sources,
        is_add: bool,
    ) -> Result<Option<Digest>, String> {
        let mut s = self.scratch(st)?;
        let root = s.rootfs();
        let chown = c
            .chown
            .as_deref()
            .map(|spec| fsops::resolve_chown(&root, spec))
            .transpose()?;
        let chmod = c.chmod_bits()?;
        let workdir = st.str_field("WorkingDir");
        let dest_abs = if c.dest.starts_with('/') {
            c.dest.clone()
        } else {
            format!(
                "{}/{}",
                if workdir.is_empty() { "/" } else { &workdir },
                c.dest
            )
        };
        let dir_syntax = c.dest.ends_with('/') || c.dest == "." || c.dest.ends_with("/.");
        let dest_is_dir = dir_syntax
            || fsops::scoped(&root, &dest_abs, true)
                .map(|p| p.is_dir())
                .unwrap_or(false);
        let total = srcs.entries.len() + srcs.inline.len() + srcs.downloads.len();
        if !dir_syntax && c.sources.len() + c.inline.len() > 1 {
            return Err(format!(
                "When using {} with more than one source file, the destination must be a directory and end with a /",
                if c.from.is_some() || srcs.downloads.is_empty() {
                    "COPY"
                } else {
                    "ADD"
                }
            ));
        }
        let into = |name: &str| -> String {
            if dest_is_dir {
                format!("{}/{}", dest_abs.trim_end_matches('/'), name)
            } else {
                dest_abs.clone()
            }
        };
        let from_context = c.from.is_none();
        let mode_of = |m: u32, is_dir: bool| match &chmod {
            Some(ch) => fsops::apply_chmod(ch, m, is_dir),
            None => m,
        };
        for (name, data) in &srcs.inline {
            let owner = chown.unwrap_or(Owner { uid: 0, gid: 0 });
            fsops::put(
                &root,
                &into(name),
                Item::Bytes(data),
                mode_of(0o644, false),
                owner,
            )
            .map_err(|e| format!("{}: {e}", into(name)))?;
        }
        for (name, data) in &srcs.downloads {
            let owner = chown.unwrap_or(Owner { uid: 0, gid: 0 });
            fsops::put(
                &root,
                &into(name),
                Item::Bytes(data),
                mode_of(0o600, false),
                owner,
            )
            .map_err(|e| format!("{}: {e}", into(name)))?;
        }
        for g in &srcs.git {
            let Some(tree) = &g.tree else { continue };
            let owner = chown.unwrap_or(Owner { uid: 0, gid: 0 });
            let walked = walk_under(&tree.root, "").map_err(|e| e.to_string())?;
            for e in &walked {
                let target = format!("{}/{}", dest_abs.trim_end_matches('/'), e.path);
                let src = tree.root.join(&e.path);
                let item = match e.kind {
                    EntryKind::Dir => Item::Dir,
                    EntryKind::File => Item::File(&src),
                    EntryKind::Symlink => {
                        Item::Symlink(e.link_target.as_deref().unwrap_or_default())
                    }
                    EntryKind::Other => continue,
                };
                fsops::put(
                    &root,
                    &target,
                    item,
                    mode_of(e.mode, e.kind == EntryKind::Dir),
                    owner,
                )
                .map_err(|er| format!("copying {}:{} to {target}: {er}", g.src.url, e.path))?;
            }
            fsops::mkdir_all(&root, &dest_abs, chown).map_err(|e| e.to_string())?;
            // Checkout times would change every layer; the commit's time is
            // what BuildKit's `mtime=commit` gives, and is reproducible.
            // Deepest first, so writing a child leaves its directory's time.
            for e in walked.iter().rev() {
                if matches!(e.kind, EntryKind::Symlink | EntryKind::Other) {
                    continue;
                }
                let target = format!("{}/{}", dest_abs.trim_end_matches('/'), e.path);
                fsops::set_mtime(&root, &target, tree.time)
                    .map_err(|er| format!("{target}: {er}"))?;
            }
        }
        for ce in &srcs.entries {
            let e = &ce.entry;
            let target = if srcs.single_file && !dest_is_dir {
                dest_abs.clone()
            } else {
                format!("{}/{}", dest_abs.trim_end_matches('/'), ce.dest)
            };
            let owner = chown.unwrap_or(if from_context {
                Owner { uid: 0, gid: 0 }
            } else {
                Owner {
                    uid: e.uid,
                    gid: e.gid,
                }
            });
            let src = srcs.root.join(&ce.source);
            if is_add
                && from_context
                && e.kind == EntryKind::File
                && let Some(gz) =
                    fsops::tar_kind(&src).map_err(|er| format!("{}: {er}", ce.source))?
            {
                fsops::extract_tar(&root, &src, gz, &dest_abs)
                    .map_err(|er| format!("extracting {}: {er}", ce.source))?;
                continue;
            }
            let item = match e.kind {
                EntryKind::Dir => Item::Dir,
                EntryKind::File => Item::File(&src),
                EntryKind::Symlink => Item::Symlink(e.link_target.as_deref().unwrap_or_default()),
                EntryKind::Other => continue,
            };
            fsops::put(
                &root,
                &target,
                item,
                mode_of(e.mode, e.kind == EntryKind::Dir),
                owner,
            )
            .map_err(|er| format!("copying {} to {target}: {er}", ce.source))?;
        }
        if srcs.entries.is_empty() && total == 0 {
            fsops::mkdir_all(&root, &dest_abs, chown).map_err(|e| e.to_string())?;
        } else if dest_is_dir {
            // The destination directory exists even for an empty source dir.
            fsops::mkdir_all(&root, &dest_abs, chown).map_err(|e| e.to_string())?;
        }
        self.commit_layer(&mut s)
    }

    /// `--output`: the image's files as a directory or a tar.
    fn export(&self, image: &Image, out: &Output) -> Result<(), String> {
        let s = self.scratch_of(Some(image))?;
        let root = s.rootfs();
        match out {
            Output::Local(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                for e in std::fs::read_dir(&root)
                    .map_err(|e| e.to_string())?
                    .flatten()
                {
                    copy_tree(&e.path(), &dir.join(e.file_name())).map_err(|er| er.to_string())?;
                }
            }
            Output::Tar(path) => {
                let f =
                    std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
                let mut b = tar::Builder::new(f);
                b.follow_symlinks(false);
                for e in std::fs::read_dir(&root)
                    .map_err(|e| e.to_string())?
                    .flatten()
                {
                    let name = e.file_name();
                    if e.path().is_dir() && !e.path().is_symlink() {
                        b.append_dir_all(&name, e.path())
                            .map_err(|er| er.to_string())?;
                    } else {
                        b.append_path_with_name(e.path(), &name)
                            .map_err(|er| er.to_string())?;
                    }
                }
                b.finish().map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

fn spec_text(argv: &[String]) -> String {
    argv.join(" ")
}

/// What a COPY/ADD step copies.
/// COPY --from sources known by their digest only, not yet read.
struct Pending {
    image: Option<Image>,
    local: Vec<String>,
    exclude: Vec<String>,
    parents: bool,
    /// One source in all (with no entries, the destination is a file).
    lone: bool,
}

/// One source that names a file: the destination may name the file.
fn single_source(c: &Copy, local: &[String], entries: &[ContextEntry]) -> bool {
    local.len() == 1 && c.sources.len() == 1 && c.inline.is_empty() && !c.parents && {
        let p = crate::ignore::clean(local[0].trim_start_matches('/'));
        entries
            .iter()
            .any(|e| e.path == p && e.kind != EntryKind::Dir)
    }
}

struct Sources<'a> {
    /// Where `entries` are (the context, or a mounted stage or image).
    root: PathBuf,
    entries: Vec<crate::context::CopyEntry>,
    /// Heredoc files: (name, content).
    inline: Vec<(String, Vec<u8>)>,
    /// ADD URLs: (file name, content).
    downloads: Vec<(String, Vec<u8>)>,
    /// One source that is a file (the destination may name the file).
    single_file: bool,
    /// Hex sha256 over all of it.
    digest: String,
    /// The mounted stage or image the entries come from.
    _holder: Option<Scratch<'a>>,
    /// Entries still to read (see [`Builder::load`]).
    pending: Option<Pending>,
    /// ADD git sources: resolved now, checked out by [`Builder::load`].
    git: Vec<GitPending>,
}

/// One git source of an ADD.
struct GitPending {
    src: git::GitSource,
    commit: String,
    keep_git_dir: bool,
    tree: Option<git::Checkout>,
}

impl Sources<'_> {
    fn label(&self) -> String {
        let kind = if self.single_file
            && self.entries.len() + self.inline.len() + self.downloads.len() <= 1
        {
            "file"
        } else if self.entries.len() + self.inline.len() + self.downloads.len() > 1 {
            "multi"
        } else {
            "dir"
        };
        format!("{kind}:{}", self.digest)
    }
}

/// The part of a source before its first glob character: what must be
/// walked to match it.
fn literal_prefix(s: &str) -> String {
    let s = s.trim_start_matches('/');
    match s.find(['*', '?', '[']) {
        None => s.to_string(),
        Some(i) => match s[..i].rfind('/') {
            Some(j) => s[..j].to_string(),
            None => String::new(),
        },
    }
}

/// The build context, walked once on first use.
struct ContextFiles {
    root: PathBuf,
    ignore: IgnoreMatcher,
    entries: Mutex<Option<Vec<ContextEntry>>>,
}

impl ContextFiles {
    fn entries(&self) -> Result<Vec<ContextEntry>, String> {
        let mut e = self.entries.lock().expect("not poisoned");
        if e.is_none() {
            *e = Some(walk_context(&self.root, &self.ignore).map_err(|er| er.to_string())?);
        }
        Ok(e.clone().expect("walked"))
    }
}

/// Copy a tree (files, dirs, symlinks; modes and owners kept).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::symlink_metadata(from)?;
    if md.file_type().is_symlink() {
        let t = std::fs::read_link(from)?;
        let _ = std::fs::remove_file(to);
        std::os::unix::fs::symlink(t, to)?;
    } else if md.is_dir() {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        }
        std::fs::set_permissions(to, md.permissions())?;
    } else if md.is_file() {
        std::fs::copy(from, to)?;
    } else {
        return Ok(());
    }
    std::os::unix::fs::lchown(to, Some(md.uid()), Some(md.gid()))
}

/// The legacy builder's history text of a config-only instruction.
fn legacy_comment(ins: &Instruction, st: &State) -> String {
    let shell = st.shell();
    match &ins.command {
        Command::Env(kvs) | Command::Label(kvs) => {
            let kv: Vec<String> = kvs
                .iter()
                .map(|kv| format!("{}={}", kv.key, kv.value))
                .collect();
            format!("{} {}", ins.command.keyword(), kv.join(" "))
        }
        Command::Cmd(c) | Command::Entrypoint(c) => {
            format!("{} {}", ins.command.keyword(), go_quoted(&c.argv(&shell)))
        }
        Command::Expose(p) => format!("EXPOSE {}", p.join(" ")),
        Command::Volume(v) => format!("VOLUME [{}]", v.join(" ")),
        Command::Shell(v) => format!("SHELL [{}]", v.join(" ")),
        Command::Onbuild(inner) => format!("ONBUILD {}", inner.original.trim()),
        Command::Arg(args) => {
            let a: Vec<String> = args
                .iter()
                .map(|a| match &a.default {
                    Some(d) => format!("{}={d}", a.name),
                    None => a.name.clone(),
                })
                .collect();
            format!("ARG {}", a.join(" "))
        }
        Command::Healthcheck(Healthcheck::None) => "HEALTHCHECK NONE".into(),
        Command::Healthcheck(h @ Healthcheck::Check { test, .. }) => {
            let _ = test;
            format!("HEALTHCHECK &{{{} …}}", go_quoted(&h.test()))
        }
        _ => ins.to_string(),
    }
}
