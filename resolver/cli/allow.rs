//! `cutoff allow` and `cutoff reload`: the write API of a running server
//! (`/api/v1/allow`, `/api/v1/reload`, docs/api.md) from a terminal. The
//! admin URL comes from `--url` or the config's `http` (as for `cutoff
//! status`), the bearer token from `--token-file` or the config's
//! `http.token_file`. Outside the query flow.

use std::path::PathBuf;
use std::process::ExitCode;

use super::admin_url;
use super::source::InspectedConfig;
use crate::allows::Allow;
use crate::http::ReloadResult;

/// Where a write goes and with what token.
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    /// A running server's admin endpoint, e.g. http://127.0.0.1:9153.
    /// Without it: the `http` address of the config (as for `check`).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// The file holding the bearer token. Without it: the config's
    /// `http.token_file`.
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    #[command(flatten)]
    config: InspectedConfig,
}

/// Arguments of `cutoff allow`.
#[derive(Debug, clap::Args)]
pub struct AllowArgs {
    /// The name to allow (and every name below it).
    #[arg(required_unless_present_any = ["list", "remove"])]
    name: Option<String>,
    /// How long: 30m, 2h, 1d (at most the config's `http.max_allow`).
    #[arg(long = "for", value_name = "DURATION", required_unless_present_any = ["list", "remove"])]
    span: Option<String>,
    /// Only on this network (default: every network that permits it).
    #[arg(long, value_name = "NAME")]
    network: Option<String>,
    /// List the temporary allows in force.
    #[arg(long, conflicts_with_all = ["name", "remove", "span"])]
    list: bool,
    /// End the temporary allows of this name now.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["name", "span"])]
    remove: Option<String>,
    #[command(flatten)]
    target: Target,
}

/// Arguments of `cutoff reload`.
#[derive(Debug, clap::Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    target: Target,
}

impl Target {
    /// The URL and the token (`None` after saying why on stderr).
    fn resolve(&self, token: bool) -> Option<(String, Option<String>)> {
        let config = if self.url.is_none() || (token && self.token_file.is_none()) {
            match self.config.load() {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!(
                        "error: no --url or --token-file given, and the config that names them is invalid:"
                    );
                    super::print_config_error(&e);
                    return None;
                }
            }
        } else {
            None
        };
        let url = match (&self.url, &config) {
            (Some(u), _) => u.clone(),
            (None, Some(c)) => admin_url::local_url(c.http),
            (None, None) => return None,
        };
        if !token {
            return Some((url, None));
        }
        let file = match (&self.token_file, &config) {
            (Some(f), _) => f.clone(),
            (None, Some(c)) => match &c.admin.token_file {
                Some(f) => f.clone(),
                None => {
                    eprintln!(
                        "error: {} has no `http.token_file`, so the server takes no writes; give --token-file if it does",
                        c.origin
                    );
                    return None;
                }
            },
            (None, None) => return None,
        };
        match std::fs::read_to_string(&file) {
            Ok(t) => Some((url, Some(t.trim().to_owned()))),
            Err(e) => {
                eprintln!("error: cannot read the token file {}: {e}", file.display());
                None
            }
        }
    }
}

/// Prints a write's answer: `ok` (2xx) → stdout via `show`, else the
/// server's error on stderr and exit 1.
fn answer(
    url: &str,
    reply: Result<(u16, String, String), admin_url::FetchError>,
    show: impl FnOnce(&str) -> Option<String>,
) -> ExitCode {
    let (status, line, body) = match reply {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if (200..300).contains(&status) {
        match show(&body) {
            Some(text) => {
                print!("{text}");
                return ExitCode::SUCCESS;
            }
            None => eprintln!("error: {url}: unexpected answer: {body}"),
        }
        return ExitCode::FAILURE;
    }
    let why = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or(body);
    eprintln!("error: {url}: {line}: {why}");
    ExitCode::FAILURE
}

fn line(a: &Allow) -> String {
    format!(
        "{} on {} until {}\n",
        a.name,
        a.network
            .as_deref()
            .unwrap_or("every network that permits it"),
        a.until
    )
}

pub(super) fn allow(args: &AllowArgs) -> ExitCode {
    let Some((url, token)) = args.target.resolve(!args.list) else {
        return ExitCode::FAILURE;
    };
    let token = token.as_deref();
    if args.list {
        let reply = admin_url::request(&url, "GET", "/api/v1/allow", token, None);
        return answer(&url, reply, |body| {
            let list: Vec<Allow> = serde_json::from_str(body).ok()?;
            if list.is_empty() {
                return Some("no temporary allow in force\n".to_owned());
            }
            Some(list.iter().map(line).collect())
        });
    }
    if let Some(name) = &args.remove {
        let mut path = format!("/api/v1/allow?name={}", encode(name));
        if let Some(n) = &args.network {
            path.push_str(&format!("&network={}", encode(n)));
        }
        let reply = admin_url::request(&url, "DELETE", &path, token, None);
        return answer(&url, reply, |body| {
            let v: serde_json::Value = serde_json::from_str(body).ok()?;
            Some(format!(
                "removed {} temporary allow(s) of {name}\n",
                v.get("removed")?
            ))
        });
    }
    let body = serde_json::json!({
        "name": args.name,
        "network": args.network,
        "for": args.span,
    })
    .to_string();
    let reply = admin_url::request(&url, "POST", "/api/v1/allow", token, Some(&body));
    answer(&url, reply, |body| {
        let a: Allow = serde_json::from_str(body).ok()?;
        Some(format!("allowed {}", line(&a)))
    })
}

pub(super) fn reload(args: &ReloadArgs) -> ExitCode {
    let Some((url, token)) = args.target.resolve(true) else {
        return ExitCode::FAILURE;
    };
    let reply = admin_url::request(&url, "POST", "/api/v1/reload", token.as_deref(), None);
    // A failed reload answers 422 with every problem: print them all.
    if let Ok((422, _, body)) = &reply
        && let Ok(r) = serde_json::from_str::<ReloadResult>(body)
    {
        eprintln!(
            "error: reload failed; the running config {} stays:",
            r.version
        );
        for e in &r.errors {
            eprintln!("  {e}");
        }
        return ExitCode::FAILURE;
    }
    answer(&url, reply, |body| {
        let r: ReloadResult = serde_json::from_str(body).ok()?;
        Some(format!("reloaded: config {} in force\n", r.version))
    })
}

/// Percent-encodes a query value (names and network names are plain, but
/// an odd byte must not break the request line).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
