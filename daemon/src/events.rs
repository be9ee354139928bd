//! The event stream of `GET /events`: what happened to containers,
//! images and volumes, kept for a while so `since` can look back, and
//! broadcast to every listener.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use berth_api::containers::{EventActor, EventMessage};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::broadcast;

use crate::containers::Record;
use crate::error::{ApiError, Result};
use crate::filters::Filters;
use crate::server::Daemon;

/// How many past events `since` can reach.
const KEEP: usize = 1024;

#[derive(Debug)]
pub struct Events {
    tx: broadcast::Sender<EventMessage>,
    recent: Mutex<VecDeque<EventMessage>>,
}

impl Default for Events {
    fn default() -> Events {
        Events {
            tx: broadcast::channel(1024).0,
            recent: Mutex::new(VecDeque::with_capacity(KEEP)),
        }
    }
}

impl Events {
    pub fn publish(&self, kind: &str, action: &str, id: &str, attrs: BTreeMap<String, String>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let from = attrs.get("image").cloned();
        let legacy = kind == "container" || kind == "image";
        let msg = EventMessage {
            kind: kind.to_string(),
            action: action.to_string(),
            actor: EventActor {
                id: id.to_string(),
                attributes: attrs,
            },
            scope: "local".into(),
            time: now.as_secs() as i64,
            time_nano: now.as_nanos() as i64,
            status: legacy.then(|| action.to_string()),
            id: legacy.then(|| id.to_string()),
            from: if kind == "container" { from } else { None },
        };
        {
            let mut r = self.recent.lock().expect("events lock");
            if r.len() == KEEP {
                r.pop_front();
            }
            r.push_back(msg.clone());
        }
        let _ = self.tx.send(msg);
    }

    /// A container event with its name, image and labels as attributes.
    pub fn container(&self, rec: &Record, action: &str) {
        self.container_with(rec, action, []);
    }

    pub fn container_with<const N: usize>(
        &self,
        rec: &Record,
        action: &str,
        extra: [(&str, String); N],
    ) {
        let mut attrs: BTreeMap<String, String> = rec.config.labels.clone().unwrap_or_default();
        attrs.insert("name".into(), rec.name.clone());
        attrs.insert("image".into(), rec.image.clone());
        for (k, v) in extra {
            attrs.insert(k.to_string(), v);
        }
        self.publish("container", action, &rec.id, attrs);
    }

    pub fn image(&self, id: &str, name: &str, action: &str) {
        let attrs = [("name".to_string(), name.to_string())].into();
        self.publish("image", action, id, attrs);
    }

    /// `mount` (at start) or `unmount` (at exit) for each volume of `rec`,
    /// as dockerd reports them.
    pub fn volume_mounts(&self, rec: &Record, action: &str) {
        for m in rec.mounts.iter().filter(|m| m.kind == "volume") {
            let mut attrs: BTreeMap<String, String> = [
                ("container".to_string(), rec.id.clone()),
                ("driver".to_string(), "local".to_string()),
            ]
            .into();
            if action == "mount" {
                attrs.insert("destination".into(), m.destination.clone());
                attrs.insert("propagation".into(), m.propagation.clone());
                attrs.insert("read/write".into(), m.rw.to_string());
            }
            self.publish("volume", action, &m.name, attrs);
        }
    }

    /// A network event: `id` is the network's, `attrs` name it and the
    /// container concerned.
    pub fn network<const N: usize>(&self, id: &str, action: &str, attrs: [(&str, String); N]) {
        let attrs = attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        self.publish("network", action, id, attrs);
    }

    pub fn volume(&self, name: &str, action: &str, driver: &str) {
        let attrs = [("driver".to_string(), driver.to_string())].into();
        self.publish("volume", action, name, attrs);
    }

    fn since(&self, from_nanos: i64) -> Vec<EventMessage> {
        self.recent
            .lock()
            .expect("events lock")
            .iter()
            .filter(|m| m.time_nano >= from_nanos)
            .cloned()
            .collect()
    }
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    since: Option<String>,
    until: Option<String>,
    filters: Option<String>,
}

/// `1700000000`, `1700000000.123456789`, or an RFC 3339 time; in nanos.
fn parse_time(s: &str, now: SystemTime) -> Result<i64> {
    if let Some((secs, frac)) = s.split_once('.')
        && let (Ok(secs), Ok(_)) = (secs.parse::<i64>(), frac.parse::<u64>())
    {
        let frac = format!("{frac:0<9}");
        return Ok(secs * 1_000_000_000 + frac[..9].parse::<i64>().unwrap_or(0));
    }
    if let Ok(secs) = s.parse::<i64>() {
        return Ok(secs * 1_000_000_000);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as i64);
    }
    if let Ok(d) = humantime::parse_duration(s) {
        let t = now.checked_sub(d).unwrap_or(UNIX_EPOCH);
        return Ok(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as i64);
    }
    Err(ApiError::InvalidParameter(format!(
        "invalid time value for since/until: {s}"
    )))
}

fn matches(f: &Filters, m: &EventMessage) -> bool {
    let any = |key: &str, val: &[&str]| {
        let want = f.get(key);
        want.is_empty() || want.iter().any(|w| val.contains(&w.as_str()))
    };
    let name = m.actor.attributes.get("name").map_or("", String::as_str);
    let image = m.actor.attributes.get("image").map_or("", String::as_str);
    let short = &m.actor.id[..m.actor.id.len().min(12)];
    let mut ok = any("type", &[&m.kind])
        && any("event", &[&m.action])
        && f.labels_match(&m.actor.attributes);
    let by_kind = |key: &str, kind: &str, vals: &[&str]| {
        f.get(key).is_empty() || (m.kind == kind && any(key, vals))
    };
    ok = ok
        && by_kind("container", "container", &[&m.actor.id, short, name])
        && (f.get("image").is_empty() || any("image", &[image, &m.actor.id, name]))
        && by_kind("volume", "volume", &[&m.actor.id]);
    ok
}

pub async fn get_events(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<EventsQuery>,
) -> Result<Response> {
    let filters = Filters::parse(q.filters.as_deref())?;
    filters.allow(&[
        "type",
        "event",
        "container",
        "image",
        "label",
        "volume",
        "network",
        "daemon",
        "scope",
    ])?;
    let now = SystemTime::now();
    let since = q.since.as_deref().map(|s| parse_time(s, now)).transpose()?;
    let until = q.until.as_deref().map(|s| parse_time(s, now)).transpose()?;
    // Subscribe before reading the past, so nothing falls in between.
    let rx = d.events.tx.subscribe();
    let past = since.map(|s| d.events.since(s)).unwrap_or_default();
    let last_past = past.last().map(|m| m.time_nano).unwrap_or(i64::MIN);
    let f1 = filters.clone();
    let past = futures_util::stream::iter(
        past.into_iter()
            .filter(move |m| until.is_none_or(|u| m.time_nano <= u) && matches(&f1, m)),
    );
    let live = tokio_stream_from(rx)
        .filter(move |m| std::future::ready(m.time_nano > last_past && matches(&filters, m)));
    let now_nanos = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as i64;
    let stream: futures_util::stream::BoxStream<'static, EventMessage> = match until {
        // Wholly in the past: what was kept, then the end (a deadline
        // already passed could cut the replay short).
        Some(u) if u <= now_nanos => past.boxed(),
        Some(u) => {
            let wait = Duration::from_nanos(u.saturating_sub(now_nanos).max(0) as u64);
            let deadline = tokio::time::sleep(wait);
            past.chain(live)
                .take_while(move |m| std::future::ready(m.time_nano <= u))
                .take_until(deadline)
                .boxed()
        }
        None => past.chain(live).boxed(),
    };
    let body = stream.map(|m| {
        let mut line = serde_json::to_vec(&m).expect("event json");
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(bytes::Bytes::from(line))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

/// A broadcast receiver as a stream; a lagging reader skips what it
/// missed rather than ending.
fn tokio_stream_from(
    rx: broadcast::Receiver<EventMessage>,
) -> impl futures_util::Stream<Item = EventMessage> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(m) => return Some((m, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let now = SystemTime::now();
        assert_eq!(parse_time("5", now).unwrap(), 5_000_000_000);
        assert_eq!(parse_time("5.5", now).unwrap(), 5_500_000_000);
        assert_eq!(
            parse_time("1970-01-01T00:00:10Z", now).unwrap(),
            10_000_000_000
        );
        assert!(parse_time("10m", now).unwrap() > 0);
        assert!(parse_time("later", now).is_err());
    }

    #[test]
    fn filters_by_type_and_container() {
        let ev = Events::default();
        let rec = Record {
            id: "abcdef0123456789".into(),
            name: "web".into(),
            image: "busybox".into(),
            ..Default::default()
        };
        ev.container(&rec, "start");
        ev.volume("v1", "create", "local");
        let all = ev.since(0);
        assert_eq!(all.len(), 2);
        let f = Filters::parse(Some(r#"{"container":["web"]}"#)).unwrap();
        assert!(matches(&f, &all[0]));
        assert!(!matches(&f, &all[1]));
        let f = Filters::parse(Some(r#"{"type":["volume"]}"#)).unwrap();
        assert!(!matches(&f, &all[0]));
        assert!(matches(&f, &all[1]));
        assert_eq!(all[0].status.as_deref(), Some("start"));
        assert_eq!(all[0].from.as_deref(), Some("busybox"));
    }
}
