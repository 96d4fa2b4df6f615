//! The zones an RPZ feed serves, as the runtime holds them ([`Feed`] is a
//! field of `runtime::State`): built and swapped whole by `rpz::run`, read
//! by the SOA/AXFR answers and the admin endpoint. It lives in `export`,
//! below the runtime, so the runtime can hold it without importing `rpz`.

use std::any::Any;
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;

use super::{Export, Format};

/// One zone as built.
#[derive(Debug)]
pub struct Zone {
    /// The zone name, lowercase, no trailing dot.
    pub name: String,
    /// The name on the wire, lowercase, with its root label.
    pub(crate) wire: Vec<u8>,
    /// What it holds, and its serial (`export.serial`).
    pub export: Export,
}

impl Zone {
    /// The zone file.
    pub fn text(&self) -> String {
        super::formats_render(&self.export, Format::Rpz)
    }

    /// The SOA serial.
    pub fn serial(&self) -> u32 {
        self.export.serial
    }
}

/// The zones in force.
#[derive(Debug)]
pub struct Zones {
    /// Built zones.
    pub zones: Vec<Arc<Zone>>,
    /// The runtime they were built from (held weakly, and as `Any` so
    /// that this file, which the runtime holds, does not import it).
    pub(crate) from: Weak<dyn Any + Send + Sync>,
}

/// The feed's state in the process: the zones in force, swapped whole.
#[derive(Debug, Default)]
pub struct Feed {
    zones: ArcSwap<Zones>,
}

impl Feed {
    /// The zone named `name` (case-insensitive, trailing dot optional).
    pub fn zone(&self, name: &str) -> Option<Arc<Zone>> {
        let want = name.strip_suffix('.').unwrap_or(name);
        self.zones
            .load()
            .zones
            .iter()
            .find(|z| z.name.eq_ignore_ascii_case(want))
            .cloned()
    }

    /// The names of the zones served.
    pub fn names(&self) -> Vec<String> {
        self.zones
            .load()
            .zones
            .iter()
            .map(|z| z.name.clone())
            .collect()
    }

    /// The zone for the admin endpoint's `/rpz/FILE`: `FILE` is the zone
    /// name, or the zone name and `.rpz`.
    pub fn zone_file(&self, file: &str) -> Option<Arc<Zone>> {
        self.zone(file)
            .or_else(|| file.strip_suffix(".rpz").and_then(|n| self.zone(n)))
    }
}

impl Default for Zones {
    fn default() -> Self {
        Self {
            zones: Vec::new(),
            from: Weak::<()>::new(),
        }
    }
}

impl Feed {
    /// The address of the runtime the zones in force were built from.
    pub(crate) fn built_from(&self) -> *const () {
        self.zones.load().from.as_ptr().cast::<()>()
    }

    /// Swaps in newly built zones.
    pub(crate) fn store(&self, zones: Arc<Zones>) {
        self.zones.store(zones);
    }

    /// The zones in force.
    pub(crate) fn load(&self) -> Arc<Zones> {
        self.zones.load_full()
    }
}
