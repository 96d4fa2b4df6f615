//! The admin endpoint's server as `serve` runs it: started on the bound
//! `http` listener, moved when a reload changes `http` (the new address is
//! bound before the old server stops), stopped last on shutdown.
//!
//! Beside the query flow: it reads the shared state, never answers DNS.

use std::sync::Arc;

use tokio::sync::watch;

use crate::runtime::State;

/// The admin endpoint's server; replaced when a reload changes `http`.
pub(crate) struct Admin {
    addr: std::net::SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Admin {
    pub(crate) fn start(listener: tokio::net::TcpListener, state: Arc<State>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| state.current.load().policy.config.http);
        let task = tokio::spawn(crate::http::run(listener, state, stopped));
        Self { addr, stop, task }
    }

    /// Moves the endpoint to `wanted` when it differs: the new address is
    /// bound first, and only then is the old server stopped, so a bind that
    /// fails keeps the old socket serving.
    pub(crate) async fn apply(&mut self, wanted: std::net::SocketAddr, state: &Arc<State>) {
        if wanted == self.addr {
            return;
        }
        match crate::http::bind(wanted).await {
            Ok(listener) => {
                let old = std::mem::replace(self, Self::start(listener, state.clone()));
                tracing::info!(from = %old.addr, to = %self.addr, "admin endpoint moved (`http` changed)");
                old.stop().await;
            }
            Err(e) => tracing::warn!(
                "`http` changed to {wanted}, but {}; the admin endpoint stays on {}",
                super::bind::explain_http(wanted, &e).replace('\n', ";"),
                self.addr
            ),
        }
    }

    /// Stops the server, waiting a little for requests in flight.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.task).await;
    }
}
