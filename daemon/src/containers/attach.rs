//! Hijacked streams (`attach`): the HTTP connection is upgraded and then
//! carries the container's output, framed unless it has a tty.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Answer `req` by upgrading the connection and writing what `out`
/// yields, then closing. Input from the client is read and dropped (the
/// shim's socket carries stdin). Without an `Upgrade` header the output
/// is the response body instead, as dockerd does for plain HTTP clients.
pub fn hijack(mut req: Request, raw: bool, mut out: mpsc::Receiver<Bytes>) -> Response {
    let content_type = if raw {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let wants_upgrade = req.headers().contains_key(header::UPGRADE);
    if !wants_upgrade {
        let stream = futures_util::stream::unfold(out, |mut out| async move {
            out.recv()
                .await
                .map(|b| (Ok::<_, std::convert::Infallible>(b), out))
        });
        return (
            [(header::CONTENT_TYPE, content_type)],
            Body::from_stream(stream),
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
        let io = TokioIo::new(upgraded);
        let (mut rd, mut wr) = tokio::io::split(io);
        let drain = tokio::spawn(async move {
            let mut b = [0u8; 4096];
            while matches!(rd.read(&mut b).await, Ok(n) if n > 0) {}
        });
        while let Some(b) = out.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
        drain.abort();
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    resp
}
