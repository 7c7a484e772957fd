//! HTTP/1.1 keep-alive connections to the log service, over TCP or a Unix
//! socket (hyper's client connections; no pool of hyper's own, so both
//! transports share one small pool). Every request has a deadline.

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;

/// Where the log service listens.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Target {
    /// `http://IP:PORT` (loopback or a test host's address), or a Unix socket path.
    pub fn from_args(url: Option<&str>, unix: Option<PathBuf>) -> Result<Target> {
        match (url, unix) {
            (Some(_), Some(_)) => bail!("give --url or --unix, not both"),
            (None, Some(path)) => Ok(Target::Unix(path)),
            (Some(url), None) => {
                let rest = url
                    .strip_prefix("http://")
                    .ok_or_else(|| anyhow!("--url {url:?}: only http://IP:PORT is supported"))?;
                let addr = rest.trim_end_matches('/');
                addr.parse()
                    .with_context(|| {
                        format!(
                            "--url {url:?}: expected http://IP:PORT, e.g. http://127.0.0.1:8000"
                        )
                    })
                    .map(Target::Tcp)
            }
            (None, None) => bail!("give --url http://IP:PORT or --unix PATH"),
        }
    }

    fn host_header(&self) -> String {
        match self {
            Target::Tcp(addr) => addr.to_string(),
            Target::Unix(_) => "localhost".to_string(),
        }
    }

    /// A request for `path` (with its query) with this target's Host header
    /// and, when given, `Authorization: Bearer <token>`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Bytes,
    ) -> Request<Full<Bytes>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.host_header());
        if method == "POST" {
            builder = builder.header("content-type", "application/json");
        }
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        builder
            .body(Full::new(body))
            .expect("a request of constant parts")
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        match self {
            Target::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr)
                    .await
                    .with_context(|| format!("connecting to {addr}"))?;
                stream.set_nodelay(true)?;
                handshake(stream).await
            }
            Target::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .with_context(|| format!("connecting to {}", path.display()))?;
                handshake(stream).await
            }
        }
    }

    /// A response whose body the caller reads as it comes (the SSE stream),
    /// on a connection of its own.
    pub async fn stream(&self, req: Request<Full<Bytes>>) -> Result<Response<Incoming>> {
        let mut sender = self.connect().await?;
        Ok(sender.send_request(req).await?)
    }
}

async fn handshake<S>(stream: S) -> Result<SendRequest<Full<Bytes>>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the connection closes (either side); an error there shows
        // up as the failure of the request that was on it.
        let _ = connection.await;
    });
    Ok(sender)
}

/// Up to `max` keep-alive connections; a request waits for a free one.
pub struct Pool {
    target: Target,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    slots: Semaphore,
    timeout: Duration,
}

impl Pool {
    pub fn new(target: Target, max: usize, timeout: Duration) -> Pool {
        Pool {
            target,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(max),
            timeout,
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Sends `req` and reads the whole answer, within the pool's deadline
    /// (the wait for a connection included).
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes)> {
        tokio::time::timeout(self.timeout, self.send_now(req))
            .await
            .map_err(|_| anyhow!("timeout after {:?}", self.timeout))?
    }

    async fn send_now(&self, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes)> {
        let _slot = self.slots.acquire().await?;
        let reused = loop {
            let candidate = self.idle.lock().expect("pool lock").pop();
            match candidate {
                Some(sender) if !sender.is_closed() => break Some(sender),
                Some(_) => continue, // the server closed it while idle
                None => break None,
            }
        };
        let Some(sender) = reused else {
            return self.exchange(self.target.connect().await?, req).await;
        };
        // An idle connection the server closes (its keep-alive timeout) just
        // as the request goes out fails before any answer: sent again once on
        // a new connection, as browsers and hyper's own pool do.
        let again = copy(&req);
        match self.exchange(sender, req).await {
            Err(e) if closed_before_answer(&e) => {
                self.exchange(self.target.connect().await?, again).await
            }
            other => other,
        }
    }

    async fn exchange(
        &self,
        mut sender: SendRequest<Full<Bytes>>,
        req: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes)> {
        sender.ready().await?;
        let response = sender.send_request(req).await?;
        let status = response.status();
        let keep = response
            .headers()
            .get("connection")
            .is_none_or(|v| !v.as_bytes().eq_ignore_ascii_case(b"close"));
        let body = response.into_body().collect().await?.to_bytes();
        if keep && !sender.is_closed() {
            self.idle.lock().expect("pool lock").push(sender);
        }
        Ok((status, body))
    }
}

fn copy(req: &Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    let mut out = Request::new(req.body().clone());
    *out.method_mut() = req.method().clone();
    *out.uri_mut() = req.uri().clone();
    *out.headers_mut() = req.headers().clone();
    out
}

fn closed_before_answer(e: &anyhow::Error) -> bool {
    let reset = e.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            )
        })
    });
    reset
        || e.downcast_ref::<hyper::Error>()
            .is_some_and(|h| h.is_canceled() || h.is_incomplete_message() || h.is_closed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_from_the_command_line() {
        assert_eq!(
            Target::from_args(Some("http://127.0.0.1:8000/"), None).unwrap(),
            Target::Tcp("127.0.0.1:8000".parse().unwrap())
        );
        assert_eq!(
            Target::from_args(None, Some("/tmp/s.sock".into())).unwrap(),
            Target::Unix("/tmp/s.sock".into())
        );
        let err = Target::from_args(Some("https://x"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("only http://IP:PORT"), "{err}");
        assert!(Target::from_args(None, None).is_err());
        assert!(Target::from_args(Some("http://localhost:80"), None).is_err());
    }
}
