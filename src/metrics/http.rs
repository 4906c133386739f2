//! The HTTP endpoint serving a [`Metrics`] registry: `GET /metrics` (and `HEAD`) over HTTP/1.1
//! with hyper on a tokio listener. Any other path gets 404, another method on `/metrics` 405
//! (with `Allow: GET, HEAD`), a request hyper cannot parse 400.
//!
//! Bounds, so that a slow or hostile client can neither hold the endpoint nor exhaust memory
//! ([`ServeOptions`]):
//! * **Connections**: at most `max_connections` are served at once; further ones wait in the
//!   listen backlog until one ends (they are not accepted, so they cost no task or buffer).
//! * **Request size**: a request head (request line and headers) longer than
//!   `max_request_bytes` gets 431 and the connection is closed. The read buffer never grows past
//!   `max(max_request_bytes, 8 KiB)` (8 KiB is hyper's smallest buffer), so an endless head is
//!   cut off there. A request body is never read.
//! * **Request time**: a client that has not sent its complete request head `read_timeout`
//!   after connecting is disconnected (without a response).
//! * **Connection time**: one request per connection (`Connection: close`); the whole exchange,
//!   reading and writing, is dropped `read_timeout + write_timeout` after the connection was
//!   accepted, so a client that does not read its response cannot hold a slot.
//! * **Linger**: after the response, what the client still sends is read and discarded (at most
//!   256 KiB, for at most 2 s) before the socket is closed, so the kernel does not reset the
//!   connection under a response the client has not read yet.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE as CONTENT_TYPE_HEADER};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::{Metrics, CONTENT_TYPE};

/// Limits of the metrics endpoint.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Time a client has to send its complete request head; then it is disconnected.
    pub read_timeout: Duration,
    /// Further time allowed for writing the response; the connection is dropped
    /// `read_timeout + write_timeout` after it was accepted.
    pub write_timeout: Duration,
    /// Largest request head accepted (request line plus headers); larger gets 431.
    pub max_request_bytes: usize,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            max_request_bytes: 8 * 1024,
            max_connections: 32,
        }
    }
}

/// Errors starting the metrics endpoint.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The listening socket could not be bound (address in use, not permitted, ...).
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bound socket's address could not be read.
    #[error("cannot read the metrics listener's address: {0}")]
    LocalAddr(#[source] std::io::Error),
    /// [`ServeOptions`] that cannot serve anything.
    #[error("invalid metrics endpoint options: {0}")]
    InvalidOptions(&'static str),
}

/// Serves `metrics` at `http://addr/metrics` with [`ServeOptions::default`].
///
/// Returns the bound address (useful with port 0) and the server task; abort the task to stop.
/// Must be called within a tokio runtime.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> Result<(SocketAddr, JoinHandle<()>), MetricsError> {
    serve_with_options(addr, metrics, ServeOptions::default()).await
}

/// Like [`serve`], with explicit limits.
pub async fn serve_with_options(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    options: ServeOptions,
) -> Result<(SocketAddr, JoinHandle<()>), MetricsError> {
    if options.max_connections == 0 {
        return Err(MetricsError::InvalidOptions(
            "max_connections must be at least 1",
        ));
    }
    if options.max_request_bytes < 16 {
        return Err(MetricsError::InvalidOptions(
            "max_request_bytes must be at least 16",
        ));
    }
    if options.read_timeout.is_zero() {
        return Err(MetricsError::InvalidOptions(
            "read_timeout must be more than zero",
        ));
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(MetricsError::LocalAddr)?;
    tracing::info!(%local, "serving Prometheus metrics at http://{local}/metrics");
    let task = tokio::spawn(accept_loop(listener, metrics, Arc::new(options)));
    Ok((local, task))
}

async fn accept_loop(listener: TcpListener, metrics: Arc<Metrics>, options: Arc<ServeOptions>) {
    let slots = Arc::new(Semaphore::new(options.max_connections));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return; // semaphore closed: cannot happen, as it is never closed
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                let metrics = Arc::clone(&metrics);
                let options = Arc::clone(&options);
                tokio::spawn(async move {
                    handle_connection(stream, metrics, &options).await;
                    tracing::trace!(%peer, "metrics connection closed");
                    drop(permit);
                });
            }
            Err(e) => {
                // Typically out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "metrics endpoint: accept failed");
                drop(permit);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves one request on `stream`, then closes it after a bounded linger.
async fn handle_connection(mut stream: TcpStream, metrics: Arc<Metrics>, options: &ServeOptions) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(false)
        .half_close(true)
        .timer(TokioTimer::new())
        .header_read_timeout(options.read_timeout)
        .max_header_size(options.max_request_bytes)
        .max_buf_size(options.max_request_bytes.max(MIN_BUF_BYTES));
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let response = route(request.method(), request.uri().path(), &metrics);
        tracing::debug!(status = %response.status(), "metrics request");
        std::future::ready(Ok::<_, Infallible>(response))
    });
    // The connection borrows the stream, so it can still be drained after hyper is done.
    let exchange = http.serve_connection(TokioIo::new(&mut stream), service);
    match tokio::time::timeout(options.read_timeout + options.write_timeout, exchange).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "metrics connection ended with an error"),
        Err(_elapsed) => {
            tracing::debug!("metrics connection took too long; dropped");
            return;
        }
    }
    // Lingering close: read and discard what the client is still sending (bounded) before
    // dropping the socket. Closing with unread input makes the kernel send a reset, which can
    // destroy the response before the client has read it.
    let linger = async {
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 4096];
        let mut left = LINGER_MAX_BYTES;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIMEOUT, linger).await;
}

/// hyper's smallest read buffer (it refuses a smaller `max_buf_size`).
const MIN_BUF_BYTES: usize = 8 * 1024;
/// Most input discarded after a response has been sent.
const LINGER_MAX_BYTES: usize = 256 * 1024;
/// Longest wait for the client to finish sending after a response has been sent.
const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// The response to a request for `path` (the query already removed) with `method`.
fn route(method: &Method, path: &str, metrics: &Metrics) -> Response<Full<Bytes>> {
    if path != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "not found; metrics are at /metrics");
    }
    if method != Method::GET && method != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    // hyper sends no body in answer to HEAD, but the same Content-Length as GET would get.
    let mut response = Response::new(Full::new(Bytes::from(metrics.render())));
    response
        .headers_mut()
        .insert(CONTENT_TYPE_HEADER, HeaderValue::from_static(CONTENT_TYPE));
    response
}

fn plain(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE_HEADER,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_answers_metrics_and_rejects_the_rest() {
        let m = Metrics::new();
        let ok = route(&Method::GET, "/metrics", &m);
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()[CONTENT_TYPE_HEADER], CONTENT_TYPE);
        assert_eq!(route(&Method::HEAD, "/metrics", &m).status(), 200);
        assert_eq!(route(&Method::GET, "/", &m).status(), 404);
        assert_eq!(route(&Method::GET, "/metricsx", &m).status(), 404);
        let post = route(&Method::POST, "/metrics", &m);
        assert_eq!(post.status(), 405);
        assert_eq!(post.headers()[ALLOW], "GET, HEAD");
        assert_eq!(route(&Method::POST, "/other", &m).status(), 404);
    }
}
