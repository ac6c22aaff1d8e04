//! The HTTP listener: accepts connections within the caps, runs each one's TLS handshake (when
//! serving HTTPS) and HTTP/1.1 exchange on hyper, each wait bounded in time, and shuts down
//! gracefully.
//!
//! `axum::serve` takes every connection and sets none of hyper's timeouts; this loop is its
//! loop (on `hyper-util`, as axum's own examples build one) with these added:
//!
//! - every accepted connection asks [`Admission`] for a permit, and is closed at once without
//!   one (counted in `switchyard_connections_refused_total`);
//! - a TLS handshake must finish within `http.tls_handshake_timeout_secs`;
//! - a request's headers must arrive within `http.header_timeout_secs` of the connection being
//!   ready or of its previous response (hyper's header timer), which also closes a connection
//!   that never sends a byte;
//! - a kept-alive connection is closed once idle for `http.idle_timeout_secs`.
//!
//! On stop, the listener closes, every connection is asked to finish its exchange and close
//! (hyper's graceful shutdown), and [`HttpListener::serve`] returns when all have. The connection
//! tasks belong to it: if it is dropped (the grace period ran out), they are aborted.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::debug;

use super::idle::activity;
use crate::Metrics;
use crate::metrics::{RefusedBecause, TimedOut};
use crate::net::accept_failures::AcceptFailures;
use crate::net::admission::{Admission, Admitted, ConnectionPermit, Refusal};
use crate::tls::Tls;

/// How long each wait on a connection may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From the connection being ready (or its previous response) to a request's last header.
    pub header: Duration,
    /// Between requests on a kept-alive connection; `None` keeps no connection alive.
    pub idle: Option<Duration>,
    /// The TLS handshake.
    pub tls_handshake: Duration,
}

/// The HTTP listener, ready to serve.
#[derive(Debug)]
pub struct HttpListener {
    /// The bound socket.
    pub listener: TcpListener,
    /// What answers the requests.
    pub app: Router,
    /// HTTPS with this certificate, or plain HTTP.
    pub tls: Option<Tls>,
    /// Which connections are taken.
    pub admission: Admission,
    /// How long each wait may take.
    pub timeouts: Timeouts,
    /// Where refusals and timeouts are counted.
    pub metrics: Arc<Metrics>,
}

/// What every connection's task shares.
#[derive(Clone)]
struct Shared {
    app: Router,
    tls: Option<Tls>,
    http: http1::Builder,
    timeouts: Timeouts,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
}

impl HttpListener {
    /// Serves until `stop` turns true (or its sender goes), then shuts down gracefully.
    pub async fn serve(self, stop: watch::Receiver<bool>) -> io::Result<()> {
        let Self {
            listener,
            app,
            tls,
            admission,
            timeouts,
            metrics,
        } = self;
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(timeouts.header)
            .keep_alive(timeouts.idle.is_some());
        let shared = Shared {
            app,
            tls,
            http,
            timeouts,
            metrics,
            stop,
        };
        let mut stop = shared.stop.clone();
        let mut connections = JoinSet::new();
        let mut failures = AcceptFailures::new("HTTP", listener.local_addr()?);
        loop {
            tokio::select! {
                () = stopped(&mut stop) => break,
                Some(_) = connections.join_next() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        failures.accepted();
                        match admission.admit(peer.ip()) {
                            Ok(permit) => {
                                connections.spawn(serve_connection(stream, permit, shared.clone()));
                            }
                            Err(refusal) => refuse(stream, peer, refusal, &shared.metrics),
                        }
                    }
                    // Retrying at once would spin while the process is out of descriptors.
                    Err(error) => {
                        if let Some(wait) = failures.failed(&error) {
                            tokio::time::sleep(wait).await;
                        }
                    }
                },
            }
        }
        // Nobody new gets in; those inside finish what they are doing.
        drop(listener);
        while connections.join_next().await.is_some() {}
        Ok(())
    }
}

/// Waits until the server is told to stop (or whatever would tell it is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

fn refuse(stream: TcpStream, peer: SocketAddr, refusal: Refusal, metrics: &Metrics) {
    let because = match refusal {
        Refusal::PerSource => RefusedBecause::PerIp,
        Refusal::Total => RefusedBecause::Total,
    };
    metrics.http.refused(because);
    debug!(%peer, %refusal, "connection refused");
    drop(stream);
}

/// One connection, from its TLS handshake (if any) to its close.
async fn serve_connection(stream: TcpStream, permit: ConnectionPermit, mut shared: Shared) {
    let Some(tls) = shared.tls.clone() else {
        exchange(Admitted::new(stream, permit), shared).await;
        return;
    };
    let handshake =
        tokio::time::timeout(shared.timeouts.tls_handshake, tls.acceptor().accept(stream));
    let stream = tokio::select! {
        () = stopped(&mut shared.stop) => return,
        finished = handshake => match finished {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                debug!(%error, "TLS handshake failed");
                return;
            }
            Err(_) => {
                shared.metrics.http.timed_out(TimedOut::TlsHandshake);
                return;
            }
        },
    };
    exchange(Admitted::new(stream, permit), shared).await;
}

/// The HTTP exchange on one connection, until it closes, is upgraded to a WebSocket, or is
/// idle too long.
async fn exchange<S>(stream: S, mut shared: Shared)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (activity, mut idle) = activity();
    // Each request marks the connection busy until it is answered.
    let service = {
        let app = TowerToHyperService::new(shared.app.clone());
        service_fn(move |request: Request<Incoming>| {
            let busy = activity.begin();
            let answer = hyper::service::Service::call(&app, request);
            async move {
                let response = answer.await;
                drop(busy);
                response
            }
        })
    };
    let connection = shared
        .http
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        let idle_deadline = shared
            .timeouts
            .idle
            .and_then(|timeout| idle.deadline(timeout))
            .filter(|_| !closing);
        tokio::select! {
            finished = connection.as_mut() => {
                if let Err(error) = finished {
                    if error.is_timeout() {
                        shared.metrics.http.timed_out(TimedOut::Header);
                    }
                    debug!(%error, "HTTP connection ended");
                }
                return;
            }
            () = stopped(&mut shared.stop), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            // A request began or ended: the deadline moved.
            () = idle.changed(), if !closing => {}
            () = sleep_until(idle_deadline), if idle_deadline.is_some() => {
                shared.metrics.http.timed_out(TimedOut::Idle);
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
