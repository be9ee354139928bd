//! Hijacked streams (`attach`, exec start): the HTTP connection is
//! upgraded and joined to a stream of the shim's socket, which already
//! speaks the Engine API's framing (8-byte headers without a tty, raw
//! with one). The client's input goes to the shim as stdin, and its
//! half-close closes the shim side's writing half.

use std::future::Future;
use std::os::unix::net::UnixStream as StdUnixStream;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn to_tokio(s: StdUnixStream) -> Option<tokio::net::UnixStream> {
    s.set_nonblocking(true).ok()?;
    tokio::net::UnixStream::from_std(s).ok()
}

/// Answer `req` by upgrading the connection and relaying it to the shim
/// stream `shim` resolves to (`None`: nothing to attach to; the
/// connection is closed). Without an `Upgrade` header only the output is
/// sent, as the response body.
pub fn hijack(
    mut req: Request,
    raw: bool,
    shim: impl Future<Output = Option<StdUnixStream>> + Send + 'static,
) -> Response {
    let content_type = if raw {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    if !req.headers().contains_key(header::UPGRADE) {
        let body = futures_util::stream::once(shim)
            .filter_map(|s| std::future::ready(s.and_then(to_tokio)))
            .flat_map(|s| {
                futures_util::stream::unfold(s, |mut s| async move {
                    let mut b = vec![0u8; 32 * 1024];
                    match s.read(&mut b).await {
                        Ok(n) if n > 0 => {
                            b.truncate(n);
                            Some((Ok::<_, std::io::Error>(bytes::Bytes::from(b)), s))
                        }
                        _ => None,
                    }
                })
            });
        return (
            [(header::CONTENT_TYPE, content_type)],
            Body::from_stream(body),
        )
            .into_response();
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!("attach: upgrade failed: {e}");
                return;
            }
        };
        let (mut cr, mut cw) = tokio::io::split(TokioIo::new(upgraded));
        let Some(shim) = shim.await.and_then(to_tokio) else {
            let _ = cw.shutdown().await;
            return;
        };
        let (mut sr, mut sw) = shim.into_split();
        let up = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut cr, &mut sw).await;
            let _ = sw.shutdown().await;
        });
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
        let _ = cw.shutdown().await;
        up.abort();
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    resp
}

use futures_util::StreamExt;
