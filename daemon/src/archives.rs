//! `POST /images/load`, `GET /images/{name}/get`, `GET /images/get`, and
//! `POST /images/create?fromSrc=-` (import).
//!
//! Request bodies reach the blocking store calls through [`BodyReader`]
//! (a bounded channel of chunks), and `save` writes its tar through
//! [`ChannelWriter`] into the streamed response, so neither direction
//! holds a whole archive in memory.

use std::io::{self, Read, Write};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use berth_api::JsonMessage;
use berth_store::archive::Format;
use berth_store::refs::ImageName;
use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::error::{ApiError, Result};
use crate::images::blocking;
use crate::server::Daemon;

/// The request body as a blocking reader (use it off the runtime).
pub struct BodyReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    chunk: Bytes,
}

impl BodyReader {
    pub fn new(body: Body) -> BodyReader {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut s = body.into_data_stream();
            while let Some(c) = s.next().await {
                if tx.send(c.map_err(io::Error::other)).await.is_err() {
                    break;
                }
            }
        });
        BodyReader {
            rx,
            chunk: Bytes::new(),
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(c)) => self.chunk = c,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}

/// A blocking writer feeding a streamed response in 64 KiB chunks.
pub struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 << 10;

impl ChannelWriter {
    pub fn new(tx: mpsc::Sender<io::Result<Bytes>>) -> ChannelWriter {
        ChannelWriter {
            tx,
            buf: Vec::new(),
        }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

fn json_lines(lines: &[JsonMessage]) -> Response {
    let body: String = lines.iter().map(JsonMessage::to_line).collect();
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("a valid response")
}

fn familiar(name: &str) -> String {
    ImageName::parse(name).map_or_else(|_| name.to_string(), |n| n.familiar())
}

#[derive(Debug, Default, Deserialize)]
pub struct LoadQuery {
    /// Progress is never sent, so quiet or not the answer is the same.
    #[serde(default)]
    pub quiet: Option<String>,
}

/// `docker load`: one `{"stream":"Loaded image: NAME\n"}` per name.
pub async fn post_load(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<LoadQuery>,
    body: Body,
) -> Result<Response> {
    let _ = q.quiet;
    let mut reader = BodyReader::new(body);
    let _guard = d.content.clone().write_owned().await;
    let d2 = d.clone();
    let names = blocking(move || {
        d2.store
            .load(&mut reader)
            .map_err(|e| ApiError::InvalidParameter(format!("loading the archive: {e}")))
    })
    .await?;
    for n in &names {
        let id = d
            .store
            .image(n)
            .map(|i| i.id.to_string())
            .unwrap_or_default();
        d.events.image(&id, &familiar(n), "load");
    }
    let lines: Vec<JsonMessage> = names
        .iter()
        .map(|n| JsonMessage::stream(format!("Loaded image: {}\n", familiar(n))))
        .collect();
    Ok(json_lines(&lines))
}

/// Stream a docker-archive of `names` (names or ids). Every name is
/// checked first, so a missing one is a 404 rather than a cut-off tar.
pub async fn save(d: Arc<Daemon>, names: Vec<String>) -> Result<Response> {
    if names.is_empty() {
        return Err(ApiError::InvalidParameter("no images to save".into()));
    }
    let guard = d.content.clone().read_owned().await;
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
    {
        let d = d.clone();
        let names = names.clone();
        blocking(move || {
            for n in &names {
                let img = d
                    .store
                    .image(n)
                    .map_err(|e| ApiError::from_image_lookup(n, e))?;
                d.events.image(img.id.as_ref(), n, "save");
            }
            Ok(())
        })
        .await?;
    }
    tokio::task::spawn_blocking(move || {
        let _guard = guard;
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::new(),
        };
        let r = d
            .store
            .save(&names, Format::Docker, &mut w)
            .map_err(|e| io::Error::other(e.to_string()))
            .and_then(|()| w.flush());
        if let Err(e) = r {
            tracing::warn!("save {names:?}: {e}");
            // The body ends with an error: the client sees a cut-off stream.
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((item, rx))
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-tar")
        .body(Body::from_stream(stream))
        .expect("a valid response"))
}

/// `GET /images/get?names=a&names=b`.
pub async fn get_many(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let names = q
        .into_iter()
        .filter(|(k, _)| k == "names")
        .map(|(_, v)| v)
        .collect();
    save(d, names).await
}

/// `docker import`: the body is a root filesystem tarball; the answer is
/// `{"status":"sha256:<id>"}`.
pub async fn import(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<crate::distribution::CreateQuery>,
    body: Body,
) -> Result<Response> {
    if q.from_src.as_deref() != Some("-") {
        return Err(ApiError::InvalidParameter(
            "importing from a URL is not supported: send the tarball as the body (fromSrc=-)"
                .into(),
        ));
    }
    let config = if q.changes.is_empty() {
        None
    } else {
        let mut c = berth_api::containers::ContainerConfig::default();
        crate::commit::apply_changes(&mut c, &q.changes)?;
        Some(serde_json::to_value(&c).expect("config serializes"))
    };
    let repo = q.repo.unwrap_or_default();
    if repo.is_empty() {
        return Err(ApiError::InvalidParameter(
            "import needs a repository name: berth keeps no unnamed images".into(),
        ));
    }
    let tag = q.tag.unwrap_or_default();
    let full = if tag.is_empty() {
        repo
    } else {
        format!("{repo}:{tag}")
    };
    let name = ImageName::parse(&full).map_err(|e| ApiError::InvalidParameter(e.to_string()))?;
    let message = q.message.filter(|m| !m.is_empty());
    let mut reader = BodyReader::new(body);
    let _guard = d.content.clone().write_owned().await;
    let d2 = d.clone();
    let familiar_name = name.familiar();
    let id = blocking(move || {
        d2.store
            .import_with_config(&mut reader, &name, message.as_deref(), config)
            .map_err(|e| ApiError::InvalidParameter(format!("import: {e}")))?;
        d2.store
            .image(&name.to_string())
            .map(|i| i.id.to_string())
            .map_err(ApiError::Store)
    })
    .await?;
    d.events.image(&id, &familiar_name, "import");
    Ok(json_lines(&[JsonMessage::status(id)]))
}
