//! An Engine API client over berthd's unix socket: one HTTP/1.1
//! connection per request (hyper), the API version negotiated once with
//! `/_ping`, JSON answers decoded into `berth-api` types, streams read as
//! they come, and hijacked connections for attach and exec.

use std::path::PathBuf;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::UnixStream;

use crate::error::{CliError, Result};

/// The newest API version this client speaks.
pub const CLIENT_API_VERSION: &str = "1.47";
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

pub type Body = BoxBody<Bytes, std::io::Error>;

/// Where the daemon listens: `-H`, else `BERTH_HOST`, else `DOCKER_HOST`,
/// else the default socket.
pub fn resolve_host(flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| std::env::var("BERTH_HOST").ok().filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| DEFAULT_HOST.to_string())
}

/// The socket path of a `unix://` host.
pub fn socket_path(host: &str) -> Result<PathBuf> {
    match host.strip_prefix("unix://") {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ if host.starts_with('/') => Ok(PathBuf::from(host)),
        _ => Err(CliError::Host(host.to_string())),
    }
}

/// `min(server, ours)` of two `X.Y` versions.
pub fn negotiate(server: Option<&str>) -> String {
    let parse = |v: &str| -> Option<(u32, u32)> {
        let (a, b) = v.trim().split_once('.')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    };
    let ours = parse(CLIENT_API_VERSION).expect("a valid version");
    match server.and_then(parse) {
        Some(s) if s < ours => format!("{}.{}", s.0, s.1),
        _ => CLIENT_API_VERSION.to_string(),
    }
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn json_body<T: Serialize + ?Sized>(v: &T) -> Body {
    full(serde_json::to_vec(v).expect("request bodies serialize"))
}

/// A body streamed from a reader (a file, stdin) in 64 KiB chunks.
pub fn reader_body<R: AsyncRead + Send + Sync + Unpin + 'static>(reader: R) -> Body {
    let stream = futures_util::stream::unfold(reader, |mut r| async move {
        let mut buf = vec![0u8; 64 * 1024];
        match r.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Frame::data(Bytes::from(buf))), r))
            }
            Err(e) => Some((Err(e), r)),
        }
    });
    BodyExt::boxed(StreamBody::new(stream))
}

/// Percent-encode a query value or path segment.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `k=v&…` with the values encoded; pairs with an empty key are skipped.
pub fn query(pairs: &[(&str, String)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

#[derive(Debug, Clone)]
pub struct Client {
    pub host: String,
    socket: PathBuf,
    /// The negotiated API version (`1.47`).
    pub version: String,
}

impl Client {
    /// Connect to `host` and negotiate the API version.
    pub async fn connect(host: &str) -> Result<Client> {
        let socket = socket_path(host)?;
        let mut c = Client {
            host: host.to_string(),
            socket,
            version: CLIENT_API_VERSION.to_string(),
        };
        let resp = c
            .send(Method::GET, "/_ping", HeaderMap::new(), empty(), false)
            .await?;
        let server = resp
            .headers()
            .get("api-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        c.version = negotiate(server.as_deref());
        Ok(c)
    }

    async fn open(&self) -> Result<UnixStream> {
        UnixStream::connect(&self.socket)
            .await
            .map_err(|_| CliError::Connect {
                host: self.host.clone(),
            })
    }

    /// Send a request; `versioned` adds the `/vX.Y` prefix. The answer's
    /// body has not been read; error statuses are not checked.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: Body,
        versioned: bool,
    ) -> Result<Response<Incoming>> {
        let stream = self.open().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| CliError::Transport(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let uri = if versioned {
            format!("/v{}{path}", self.version)
        } else {
            path.to_string()
        };
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "api")
            .header(
                "user-agent",
                format!("berth-cli/{}", env!("CARGO_PKG_VERSION")),
            )
            .body(body)
            .map_err(|e| CliError::Transport(e.to_string()))?;
        req.headers_mut().extend(headers);
        sender
            .send_request(req)
            .await
            .map_err(|e| CliError::Transport(e.to_string()))
    }

    /// A versioned request whose answer must be a success.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: Body,
    ) -> Result<Response<Incoming>> {
        let resp = self.send(method, path, headers, body, true).await?;
        check(resp).await
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self
            .call(Method::GET, path, HeaderMap::new(), empty())
            .await?;
        decode(path, resp).await
    }

    /// The answer as raw JSON (for `inspect`, which prints what it got).
    pub async fn get_raw(&self, path: &str) -> Result<Bytes> {
        let resp = self
            .call(Method::GET, path, HeaderMap::new(), empty())
            .await?;
        read_all(resp).await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: Body) -> Result<T> {
        let resp = self.call(Method::POST, path, json_headers(), body).await?;
        decode(path, resp).await
    }

    /// A POST whose answer (204, or a body we ignore) only has to succeed.
    pub async fn post_ok(&self, path: &str, body: Body) -> Result<()> {
        let resp = self.call(Method::POST, path, json_headers(), body).await?;
        read_all(resp).await.map(drop)
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self
            .call(Method::DELETE, path, HeaderMap::new(), empty())
            .await?;
        decode(path, resp).await
    }

    pub async fn delete_ok(&self, path: &str) -> Result<()> {
        let resp = self
            .call(Method::DELETE, path, HeaderMap::new(), empty())
            .await?;
        read_all(resp).await.map(drop)
    }

    /// A request upgraded to a raw stream (`Upgrade: tcp`), as attach and
    /// exec start answer with 101 (or 200, the old way, on the same
    /// connection).
    pub async fn hijack(&self, path: &str, body: Body) -> Result<Hijacked> {
        let mut headers = json_headers();
        headers.insert("connection", HeaderValue::from_static("Upgrade"));
        headers.insert("upgrade", HeaderValue::from_static("tcp"));
        let resp = self.send(Method::POST, path, headers, body, true).await?;
        let resp = check(resp).await?;
        let upgraded = hyper::upgrade::on(resp)
            .await
            .map_err(|e| CliError::Transport(format!("hijacking {path}: {e}")))?;
        Ok(Hijacked {
            io: TokioIo::new(upgraded),
        })
    }
}

/// The raw stream of an attach or exec.
pub struct Hijacked {
    pub io: TokioIo<hyper::upgrade::Upgraded>,
}

pub fn json_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h
}

/// An error status becomes [`CliError::Daemon`] with the body's message.
pub async fn check(resp: Response<Incoming>) -> Result<Response<Incoming>> {
    let status = resp.status();
    if status.as_u16() < 400 {
        return Ok(resp);
    }
    let body = read_all(resp).await.unwrap_or_default();
    let message = serde_json::from_slice::<berth_api::ErrorResponse>(&body)
        .map(|e| e.message)
        .unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(&body).trim().to_string();
            if text.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("unknown error")
                    .to_string()
            } else {
                text
            }
        });
    Err(CliError::Daemon {
        status: status.as_u16(),
        message,
    })
}

pub async fn read_all(resp: Response<Incoming>) -> Result<Bytes> {
    resp.into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| CliError::Transport(e.to_string()))
}

pub async fn decode<T: DeserializeOwned>(what: &str, resp: Response<Incoming>) -> Result<T> {
    let body = read_all(resp).await?;
    serde_json::from_slice(&body).map_err(|e| CliError::Decode {
        what: what.to_string(),
        message: e.to_string(),
    })
}

/// The body as a stream of chunks.
pub fn chunks(
    resp: Response<Incoming>,
) -> Pin<Box<dyn futures_util::Stream<Item = Result<Bytes>> + Send>> {
    let body = resp.into_body();
    Box::pin(
        http_body_util::BodyStream::new(body).filter_map(|f| async move {
            match f {
                Ok(frame) => frame.into_data().ok().map(Ok),
                Err(e) => Some(Err(CliError::Transport(e.to_string()))),
            }
        }),
    )
}

/// Split a chunked body into lines (JSON-lines answers).
pub struct Lines {
    inner: Pin<Box<dyn futures_util::Stream<Item = Result<Bytes>> + Send>>,
    buf: Vec<u8>,
    done: bool,
}

impl Lines {
    pub fn new(resp: Response<Incoming>) -> Lines {
        Lines {
            inner: chunks(resp),
            buf: Vec::new(),
            done: false,
        }
    }

    pub async fn next_line(&mut self) -> Result<Option<String>> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let text = String::from_utf8_lossy(&line[..i]).trim().to_string();
                if text.is_empty() {
                    continue;
                }
                return Ok(Some(text));
            }
            if self.done {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let text = String::from_utf8_lossy(&std::mem::take(&mut self.buf))
                    .trim()
                    .to_string();
                return Ok((!text.is_empty()).then_some(text));
            }
            match self.inner.next().await {
                Some(chunk) => self.buf.extend_from_slice(&chunk?),
                None => self.done = true,
            }
        }
    }
}

/// Whether a status means the thing was not there.
pub fn is_not_found(status: StatusCode) -> bool {
    status == StatusCode::NOT_FOUND
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_negotiate_down_only() {
        assert_eq!(negotiate(Some("1.47")), "1.47");
        assert_eq!(negotiate(Some("1.49")), "1.47");
        assert_eq!(negotiate(Some("1.41")), "1.41");
        assert_eq!(negotiate(Some("1.9")), "1.9");
        assert_eq!(negotiate(None), "1.47");
    }

    #[test]
    fn hosts() {
        assert_eq!(
            socket_path("unix:///tmp/x.sock").unwrap(),
            PathBuf::from("/tmp/x.sock")
        );
        let e = socket_path("tcp://1.2.3.4:2375").unwrap_err();
        assert!(e.to_string().contains("unix socket"), "{e}");
        assert_eq!(
            query(&[("fromImage", "a/b:c".into()), ("tag", "x y".into())]),
            "?fromImage=a%2Fb%3Ac&tag=x%20y"
        );
    }
}
