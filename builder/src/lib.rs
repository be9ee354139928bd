//! berth's image builder, front end: everything before anything runs.
//!
//! - [`parse`] turns a Dockerfile into [`Stage`]s of typed [`Instruction`]s
//!   (directives, continuations, heredocs, every instruction and flag);
//!   every error is a [`DockerfileError`] naming the file and line.
//! - [`GlobalScope`] and [`StageScope`] hold the build args and ENV as a
//!   stage runs; [`StageScope::step`] expands one instruction exactly where
//!   Docker expands.
//! - [`plan`] resolves the stage graph for a `--target`: the stages needed,
//!   an order, waves that can build in parallel.
//! - [`read_dockerignore`], [`walk_context`], [`match_sources`] and
//!   [`cache_key`] give COPY/ADD their files and the cache its keys.

mod args;
mod context;
mod error;
#[cfg(feature = "exec")]
pub mod exec;
mod expand;
pub mod glob;
mod graph;
mod ignore;
mod instruction;
mod mount;
mod parser;
pub mod shell;

pub use args::{
    BuildOptions, GlobalScope, PROXY_ARGS, Platform, StageScope, unconsumed_build_args,
    unconsumed_warning,
};
pub use context::{
    ContextEntry, ContextError, CopyEntry, EntryKind, SourceSet, cache_key, match_sources,
    walk_context, walk_under,
};
pub use error::{DockerfileError, Result};
pub use expand::{is_git, is_remote};
pub use graph::{Base, BuildPlan, StageNode, plan};
pub use ignore::{IgnoreError, IgnoreMatcher, clean, read_dockerignore};
pub use instruction::{
    ArgDecl, Chmod, Command, CommandLine, Copy, From, Healthcheck, Heredoc, Instruction, KeyValue,
    Network, PortRange, Proto, Run, RunScript, Security,
};
pub use mount::{Mount, MountType, Sharing, parse_mount};
pub use parser::{
    Check, Directives, Dockerfile, Stage, parse, parse_go_duration, parse_instructions, parse_line,
};
