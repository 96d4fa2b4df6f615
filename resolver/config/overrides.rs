//! Command-line values (`cutoff serve --listen …`) laid over a loaded
//! [`Config`]: applied after every load, at start-up and on each reload, so
//! a flag keeps winning over the file.

use super::{Config, Upstream};

/// Command-line values that override the config file on every (re)load.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Vec<std::net::SocketAddr>,
    /// `--upstream`.
    pub upstreams: Vec<Upstream>,
    /// `--http`.
    pub http: Option<std::net::SocketAddr>,
    /// `--query-log`.
    pub query_log: Option<String>,
}

impl Overrides {
    /// Applies the overrides to a loaded config.
    pub fn apply(&self, mut c: Config) -> Config {
        if !self.listen.is_empty() {
            c.listen.clone_from(&self.listen);
        }
        if !self.upstreams.is_empty() {
            c.upstreams.clone_from(&self.upstreams);
        }
        if let Some(h) = self.http {
            c.http = h;
        }
        if let Some(p) = &self.query_log {
            c.query_log.path = Some(p.clone());
        }
        c
    }
}
