//! The stage graph: what each stage needs (its base, `COPY --from`,
//! `RUN --mount=from=`), the stages a target needs, an order to build them
//! in, and groups of stages that can build in parallel.

use std::collections::BTreeSet;

use crate::args::{BuildOptions, GlobalScope, StageScope};
use crate::error::{DockerfileError, Result};
use crate::instruction::Command;
use crate::parser::Dockerfile;

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    /// An image reference, expanded.
    Image(String),
    /// An earlier stage, by index.
    Stage(usize),
}

/// One stage's place in the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageNode {
    pub index: usize,
    pub name: Option<String>,
    pub base: Base,
    /// `--platform` of its FROM, expanded.
    pub platform: Option<String>,
    /// Stages it needs: its base stage and every stage it copies or
    /// mounts from.
    pub deps: BTreeSet<usize>,
    /// Images named by `COPY --from` or `--mount=from=` (not stages).
    pub images: BTreeSet<String>,
}

/// What to build for a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildPlan {
    /// The stage the build produces.
    pub target: usize,
    /// The stages the target needs, itself included, resolved.
    pub stages: Vec<StageNode>,
    /// Those stages' indices in an order where every stage comes after
    /// what it needs.
    pub order: Vec<usize>,
    /// The same stages in waves: the stages of a wave need only stages of
    /// earlier waves, so a wave's stages can build in parallel.
    pub groups: Vec<Vec<usize>>,
}

impl BuildPlan {
    pub fn node(&self, index: usize) -> Option<&StageNode> {
        self.stages.iter().find(|s| s.index == index)
    }
}

/// Plan the build of `target` (a stage name, or None for the last stage).
/// Stages the target does not need are not looked at beyond their FROM
/// line, so their mistakes do not fail the build.
pub fn plan(df: &Dockerfile, opts: &BuildOptions, target: Option<&str>) -> Result<BuildPlan> {
    let globals = GlobalScope::new(df, opts)?;
    let target = match target {
        None => df.stages.len() - 1,
        Some(t) => {
            let lower = t.to_ascii_lowercase();
            df.stages
                .iter()
                .position(|s| s.name.as_deref() == Some(lower.as_str()))
                .ok_or_else(|| {
                    DockerfileError::new(
                        &df.file,
                        0,
                        format!("target stage {t:?} could not be found"),
                    )
                })?
        }
    };
    let mut nodes: Vec<Option<StageNode>> = vec![None; df.stages.len()];
    // Depth-first from the target; `visiting` catches cycles.
    let mut visiting = Vec::new();
    resolve(df, &globals, opts, target, &mut nodes, &mut visiting, None)?;
    let stages: Vec<StageNode> = nodes.into_iter().flatten().collect();

    let mut remaining: Vec<&StageNode> = stages.iter().collect();
    let mut done: BTreeSet<usize> = BTreeSet::new();
    let mut groups = Vec::new();
    while !remaining.is_empty() {
        let wave: Vec<usize> = remaining
            .iter()
            .filter(|n| n.deps.iter().all(|d| done.contains(d)))
            .map(|n| n.index)
            .collect();
        done.extend(wave.iter().copied());
        remaining.retain(|n| !done.contains(&n.index));
        groups.push(wave);
    }
    let order = groups.iter().flatten().copied().collect();
    tracing::debug!(target, ?groups, "build plan");
    Ok(BuildPlan {
        target,
        stages,
        order,
        groups,
    })
}

/// What a `--from` value names: a stage (by name or index) or an image.
enum FromRef {
    Stage(usize),
    Image(String),
}

fn from_ref(df: &Dockerfile, value: &str, line: usize) -> Result<FromRef> {
    if let Ok(i) = value.parse::<usize>() {
        if i >= df.stages.len() {
            return Err(DockerfileError::new(
                &df.file,
                line,
                format!(
                    "invalid stage index {i}: the Dockerfile has {} stages",
                    df.stages.len()
                ),
            ));
        }
        return Ok(FromRef::Stage(i));
    }
    match df.stage_by_name(value) {
        Some(s) => Ok(FromRef::Stage(s.index)),
        None => Ok(FromRef::Image(value.to_string())),
    }
}

fn resolve(
    df: &Dockerfile,
    globals: &GlobalScope,
    opts: &BuildOptions,
    index: usize,
    nodes: &mut Vec<Option<StageNode>>,
    visiting: &mut Vec<usize>,
    via_line: Option<usize>,
) -> Result<StageScope> {
    if visiting.contains(&index) {
        let stage = &df.stages[index];
        return Err(DockerfileError::new(
            &df.file,
            via_line.unwrap_or(stage.from.line),
            format!("circular dependency detected on stage: {}", stage.label()),
        ));
    }
    visiting.push(index);
    let stage = &df.stages[index];
    let from = globals.expand_from(&stage.from)?;
    // FROM names only earlier stages; a later stage's name there is an
    // image name, as in BuildKit.
    let base = if from.image.eq_ignore_ascii_case("scratch") {
        Base::Scratch
    } else {
        match df.stages[..index]
            .iter()
            .find(|s| s.name.as_deref() == Some(from.image.to_ascii_lowercase().as_str()))
        {
            Some(s) => Base::Stage(s.index),
            None => Base::Image(from.image.clone()),
        }
    };
    let mut deps = BTreeSet::new();
    let mut images = BTreeSet::new();
    let mut scope = match base {
        Base::Stage(parent) => {
            deps.insert(parent);
            let parent_scope = resolve(
                df,
                globals,
                opts,
                parent,
                nodes,
                visiting,
                Some(stage.from.line),
            )?;
            StageScope::from_parent(&parent_scope)
        }
        // The base image's own ENV is not known before it is pulled; the
        // executor's scope has it, this one only resolves `--from`.
        _ => StageScope::new(globals, opts, Vec::new()),
    };
    for ins in &stage.instructions {
        let mut froms: Vec<String> = Vec::new();
        match &ins.command {
            Command::Arg(_) | Command::Env(_) => {
                scope.step(ins)?;
            }
            Command::Copy(_) | Command::Run(_) => {
                let expanded = scope.step(ins)?;
                match &expanded.command {
                    Command::Copy(c) => froms.extend(c.from.clone()),
                    Command::Run(r) => froms.extend(r.mounts.iter().filter_map(|m| m.from.clone())),
                    _ => {}
                }
            }
            _ => {}
        }
        for f in froms {
            match from_ref(df, &f, ins.line)? {
                FromRef::Stage(dep) => {
                    deps.insert(dep);
                    resolve(df, globals, opts, dep, nodes, visiting, Some(ins.line))?;
                }
                FromRef::Image(img) => {
                    images.insert(img);
                }
            }
        }
    }
    visiting.pop();
    nodes[index] = Some(StageNode {
        index,
        name: stage.name.clone(),
        base,
        platform: from.platform,
        deps,
        images,
    });
    Ok(scope)
}
