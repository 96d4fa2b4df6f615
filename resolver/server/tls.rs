//! DNS over TLS listeners (RFC 7858): accept, TLS handshake under
//! `tls.handshake_timeout`, then the same connection handler as plain TCP
//! (pipelining, `tcp.max_queries`, `tcp.idle_timeout`) with protocol `dot`.
//!
//! Sits in `server`, before the pipeline. DoT connections have their own
//! connection table (`tcp.max_connections` and `tcp.max_per_client` again,
//! with the same eviction of the connection idle the longest, counted apart), so a flood of handshakes
//! cannot take the slots of plain TCP clients, and the handshake runs in the
//! connection's task, so a slow one never holds up the accept loop.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::{Limits, accept, admit, conns, tcp};
use crate::pipeline::Protocol;
use crate::runtime::State;

/// What a DoT listener needs besides its socket.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The certificate pair and ALPN `dot` at start-up (used while the
    /// running config has none, i.e. after a reload removed `listen_tls`).
    pub server: Arc<rustls::ServerConfig>,
    /// A handshake not done by then is dropped.
    pub handshake_timeout: Duration,
}

pub(super) async fn accept_loop(
    listener: TcpListener,
    settings: Settings,
    state: Arc<State>,
    limits: Limits,
    inflight: Arc<Semaphore>,
    connections: Arc<conns::Table>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut open = JoinSet::new();
    loop {
        let Some((stream, src)) = accept(&listener, &mut shutdown, "tls").await else {
            break;
        };
        let Some(lease) = admit(&state, &connections, src) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (state, inflight, shutdown) = (state.clone(), inflight.clone(), shutdown.clone());
        // The pair of the running config: a reload (SIGHUP) that read a
        // new certificate serves it from the next handshake on, and one
        // that failed (a bad pair) left the old config, so the old pair.
        let server = state
            .current
            .load()
            .policy
            .config
            .tls
            .as_ref()
            .map_or_else(|| settings.server.clone(), |t| t.server.clone());
        let (acceptor, handshake) = (TlsAcceptor::from(server), settings.handshake_timeout);
        open.spawn(async move {
            // A client that never finishes its handshake holds a slot only
            // this long; a failed one is just closed (nothing to answer).
            let session = match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(client = %src, error = %e, "tls handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(client = %src, "tls handshake timed out");
                    return;
                }
            };
            let _ = tcp::connection(
                session,
                tcp::Peer {
                    addr: src,
                    protocol: Protocol::Dot,
                },
                state,
                limits,
                inflight,
                &lease,
                shutdown,
            )
            .await;
            drop(lease);
        });
        while open.try_join_next().is_some() {}
    }
    while open.join_next().await.is_some() {}
}
