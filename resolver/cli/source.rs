//! Which config `check` and `explain` look at: `--config PATH`, else the
//! installed `/etc/cutoff/cutoff.yaml` when it exists (the file an admin just
//! edited), else the embedded default; `--default` asks for the embedded one.
//!
//! Sits outside the query flow. `serve` keeps its own rule (no `--config`: the
//! embedded default), so `cargo run -- serve` never picks up a packaged
//! config by surprise.

use std::path::{Path, PathBuf};

use crate::config::{self, Config, ConfigError};

/// Where the Debian package and docs/operations.md put the config.
pub(crate) const INSTALLED: &str = "/etc/cutoff/cutoff.yaml";

/// The config arguments of `check` and `explain`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct InspectedConfig {
    /// Config file (YAML). Without it: /etc/cutoff/cutoff.yaml when that
    /// exists, else the embedded default policy.
    #[arg(long, short = 'c', value_name = "PATH", env = "CUTOFF_CONFIG")]
    config: Option<PathBuf>,
    /// Use the embedded default policy even where /etc/cutoff/cutoff.yaml exists.
    #[arg(long = "default", conflicts_with = "config")]
    embedded: bool,
    /// Where the installed config is looked for.
    #[arg(long, value_name = "PATH", default_value = INSTALLED, hide = true)]
    installed_config: PathBuf,
}

impl InspectedConfig {
    /// Loads the chosen config. When the installed file was chosen without
    /// being named, says so on stderr first, with how to choose otherwise.
    pub(crate) fn load(&self) -> Result<Config, ConfigError> {
        match self.path() {
            Some((path, named)) => {
                if !named {
                    eprintln!(
                        "note: using the installed config {} (--config PATH for another file, --default for the embedded policy)",
                        path.display()
                    );
                }
                config::load(path)
            }
            None => config::load_default(),
        }
    }

    /// The file to read and whether it was named (`None`: the embedded default).
    fn path(&self) -> Option<(&Path, bool)> {
        if self.embedded {
            return None;
        }
        if let Some(p) = &self.config {
            return Some((p, true));
        }
        self.installed_config
            .is_file()
            .then_some((self.installed_config.as_path(), false))
    }
}
