//! Stage graph: dependencies, --target pruning, build order, parallel
//! waves, cycles and unknown stages.

use std::collections::BTreeSet;

use berth_builder::*;

fn plan_of(text: &str, target: Option<&str>) -> Result<BuildPlan> {
    plan(
        &parse("Dockerfile", text).unwrap(),
        &BuildOptions::default(),
        target,
    )
}

const MULTI: &str = "\
FROM golang:1.22 AS deps
RUN go mod download

FROM deps AS build-api
RUN go build ./cmd/api

FROM deps AS build-worker
RUN go build ./cmd/worker

FROM node:20 AS web
RUN npm ci

FROM alpine AS unused
RUN echo never

FROM scratch AS final
COPY --from=build-api /api /api
COPY --from=build-worker /worker /worker
RUN --mount=type=bind,from=web,source=/dist,target=/dist cp -r /dist /www
COPY --from=nginx:latest /etc/nginx/nginx.conf /etc/
";

#[test]
fn target_pruning_and_parallel_waves() {
    let p = plan_of(MULTI, None).unwrap();
    assert_eq!(p.target, 5);
    let built: BTreeSet<usize> = p.order.iter().copied().collect();
    assert_eq!(
        built,
        BTreeSet::from([0, 1, 2, 3, 5]),
        "the unused stage is skipped"
    );
    assert_eq!(p.groups, vec![vec![0, 3], vec![1, 2], vec![5]]);
    let fin = p.node(5).unwrap();
    assert_eq!(fin.base, Base::Scratch);
    assert_eq!(fin.deps, BTreeSet::from([1, 2, 3]));
    assert_eq!(fin.images, BTreeSet::from(["nginx:latest".to_string()]));
    assert_eq!(p.node(1).unwrap().base, Base::Stage(0));
    assert_eq!(p.node(0).unwrap().base, Base::Image("golang:1.22".into()));

    let p = plan_of(MULTI, Some("build-worker")).unwrap();
    assert_eq!(p.order, vec![0, 2]);
    assert_eq!(p.groups, vec![vec![0], vec![2]]);
    let p = plan_of(MULTI, Some("UNUSED")).unwrap();
    assert_eq!(p.order, vec![4]);
}

#[test]
fn order_puts_every_stage_after_what_it_needs() {
    let p = plan_of(MULTI, None).unwrap();
    for n in &p.stages {
        let at = p.order.iter().position(|&i| i == n.index).unwrap();
        for d in &n.deps {
            assert!(
                p.order.iter().position(|i| i == d).unwrap() < at,
                "{} before {}",
                d,
                n.index
            );
        }
    }
}

#[test]
fn from_by_index_and_expanded_from() {
    let text = "ARG BASE=alpine\nFROM $BASE\nRUN true\nFROM busybox\nARG SRC=0\nCOPY --from=$SRC /a /a\nCOPY --from=${IMG:-debian:12} /b /b\n";
    let p = plan_of(text, None).unwrap();
    assert_eq!(p.node(0).unwrap().base, Base::Image("alpine".into()));
    assert_eq!(p.node(1).unwrap().deps, BTreeSet::from([0]));
    assert_eq!(
        p.node(1).unwrap().images,
        BTreeSet::from(["debian:12".to_string()])
    );
    assert_eq!(p.groups, vec![vec![0], vec![1]]);
}

#[test]
fn copy_from_a_later_stage_is_a_dependency_like_buildkit() {
    let text = "FROM alpine AS a\nCOPY --from=b /x /x\nFROM alpine AS b\nRUN true\n";
    let p = plan_of(text, Some("a")).unwrap();
    assert_eq!(p.order, vec![1, 0]);
}

#[test]
fn cycles_are_errors_with_the_line() {
    let text =
        "FROM alpine AS a\nCOPY --from=b /x /x\nFROM alpine AS b\nRUN true\nCOPY --from=a /y /y\n";
    assert_eq!(
        plan_of(text, Some("a")).unwrap_err().to_string(),
        "Dockerfile:5: circular dependency detected on stage: a"
    );
    let text = "FROM alpine AS self\nCOPY --from=self /x /x\n";
    assert_eq!(
        plan_of(text, None).unwrap_err().to_string(),
        "Dockerfile:2: circular dependency detected on stage: self"
    );
    let text = "FROM alpine\nRUN --mount=from=0,target=/m true\n";
    assert_eq!(
        plan_of(text, None).unwrap_err().to_string(),
        "Dockerfile:2: circular dependency detected on stage: 0"
    );
}

#[test]
fn unknown_target_and_bad_index() {
    assert_eq!(
        plan_of(MULTI, Some("nope")).unwrap_err().to_string(),
        "Dockerfile: target stage \"nope\" could not be found"
    );
    assert_eq!(
        plan_of("FROM a\nCOPY --from=3 /x /x\n", None)
            .unwrap_err()
            .to_string(),
        "Dockerfile:2: invalid stage index 3: the Dockerfile has 1 stages"
    );
}

#[test]
fn from_a_later_stage_name_is_an_image() {
    let p = plan_of("FROM later AS first\nFROM alpine AS later\n", Some("first")).unwrap();
    assert_eq!(p.node(0).unwrap().base, Base::Image("later".into()));
    assert_eq!(p.order, vec![0]);
}

#[test]
fn errors_in_unneeded_stages_do_not_matter() {
    let text =
        "FROM alpine AS good\nRUN true\nFROM alpine AS bad\nCOPY --from=\"${X:?no X}\" /a /a\n";
    assert_eq!(plan_of(text, Some("good")).unwrap().order, vec![0]);
    assert_eq!(
        plan_of(text, None).unwrap_err().to_string(),
        "Dockerfile:4: X: no X"
    );
}
