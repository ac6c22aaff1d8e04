//! Floods for the hardening tests: connections from attacking loopback addresses (127.0.0.2
//! and up, so the per-address caps engage as they would on the internet while 127.0.0.1 stays
//! free for the checks), and a `/healthz` poller that times every answer meanwhile.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use super::PATIENCE;

/// The `n`th attacking address: 127.0.0.2 and up.
pub fn attacker(n: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + u8::try_from(n).expect("a few attackers"))
}

/// A TCP connection to `server` from `source`.
pub async fn connect_from(source: Ipv4Addr, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("bound to the attacking address");
    socket.connect(server).await.expect("the kernel accepts it")
}

/// Reads `stream` until the server closes it (or resets it), and says when; `None` if it is
/// still open at `deadline`.
pub async fn closed_at(mut stream: TcpStream, deadline: Instant) -> Option<Instant> {
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(Instant::now()),
            Ok(Ok(_)) => {}
        }
    }
}

/// GETs `/healthz` from 127.0.0.1 until `stop`, once every 50 ms; returns how long each took.
pub async fn poll_healthz(address: SocketAddr, mut stop: watch::Receiver<bool>) -> Vec<Duration> {
    let mut took = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            () = stopped(&mut stop) => return took,
            _ = ticker.tick() => {
                let started = Instant::now();
                let answer = tokio::time::timeout(PATIENCE, super::http::get(address, "/healthz"))
                    .await
                    .expect("/healthz answers at all");
                assert_eq!(answer.expect("/healthz"), (200, "ok\n".to_owned()));
                took.push(started.elapsed());
            }
        }
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
