//! The client commands: each function parses nothing, calls the client, and prints.

pub mod admin;
pub mod audit;
pub mod bucket;
pub mod server;
pub mod volume;
pub mod capsule;
pub mod deprecation;
pub mod favorite;
pub mod image;
pub mod job;
pub mod kms;
pub mod market;
pub mod member;
pub mod metadefs;
pub mod migrate;
pub mod node;
pub mod own_quota;
pub mod pending_shares;
pub mod share_auto_accept;
pub mod pipeline;
pub mod quota;
pub mod recycle_bin;
pub mod seed_public_images;
pub mod store;

use std::io::{IsTerminal, Write};

use anyhow::Context;
use clap::Args;
use ims_client::Client;

use crate::output::OutputFormat;

/// Where and as whom the client commands talk, and how they print. Accepted at any depth of the
/// `image`, `admin` and `whoami` commands.
#[derive(Debug, Clone, Args)]
pub struct ClientOpts {
    /// IMS server URL.
    #[arg(long, env = "IMS_URL", default_value = ims_client::DEFAULT_URL, global = true, help_heading = "Client options")]
    pub url: String,
    /// Bearer token (sent as X-Auth-Token).
    #[arg(long, env = "IMS_TOKEN", hide_env_values = true, global = true, help_heading = "Client options")]
    pub token: Option<String>,
    /// Output format: a human table, or the JSON object(s) for scripts.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table, global = true, help_heading = "Client options")]
    pub output: OutputFormat,
    /// Show progress bars even when stderr is not a terminal.
    #[arg(long, global = true, help_heading = "Client options")]
    pub progress: bool,
}

/// What every client command needs.
pub struct Ctx {
    pub client: Client,
    pub output: OutputFormat,
    /// `--progress` was given.
    pub force_progress: bool,
}

impl Ctx {
    pub fn new(opts: &ClientOpts) -> anyhow::Result<Ctx> {
        let token = opts.token.clone().filter(|t| !t.is_empty()).context(
            "no token: set IMS_TOKEN or pass --token (the server's first admin token is in <data-dir>/admin-token)",
        )?;
        // An empty IMS_URL means the default, like an unset one.
        let url = if opts.url.trim().is_empty() { ims_client::DEFAULT_URL } else { opts.url.as_str() };
        let client = Client::new(url, token)?;
        Ok(Ctx { client, output: opts.output, force_progress: opts.progress })
    }

    /// Whether to draw progress bars on stderr.
    pub fn progress_enabled(&self) -> bool {
        self.force_progress || std::io::stderr().is_terminal()
    }

    /// Writes `text` (and a final newline) to stdout. A closed pipe (`| head`) is not an error.
    pub fn print(&self, text: &str) -> anyhow::Result<()> {
        print_stdout(text)
    }
}

pub fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let result = out
        .write_all(text.as_bytes())
        .and_then(|_| if text.ends_with('\n') || text.is_empty() { Ok(()) } else { out.write_all(b"\n") })
        .and_then(|_| out.flush());
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// The message printed after `error: `: the error and its causes, each said once.
pub fn error_message(err: &anyhow::Error) -> String {
    let mut message = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !message.contains(&cause) {
            message.push_str(": ");
            message.push_str(&cause);
        }
    }
    message
}

/// Parses `KEY=VALUE` (the value may contain `=` and be empty; the key may not be empty).
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Keys the Images API sorts by.
pub const SORT_KEYS: [&str; 8] =
    ["name", "status", "container_format", "disk_format", "size", "id", "created_at", "updated_at"];

/// Parses `KEY[:DIR][,KEY[:DIR]...]` into the `sort=` query value, checking keys and directions.
pub fn parse_sort(s: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (key, dir) = match item.split_once(':') {
            Some((k, d)) => (k.trim(), Some(d.trim().to_ascii_lowercase())),
            None => (item, None),
        };
        if !SORT_KEYS.contains(&key) {
            return Err(format!("unknown sort key {key:?}: expected one of {}", SORT_KEYS.join(", ")));
        }
        match dir.as_deref() {
            None => parts.push(key.to_string()),
            Some(d @ ("asc" | "desc")) => parts.push(format!("{key}:{d}")),
            Some(d) => return Err(format!("unknown sort direction {d:?}: expected asc or desc")),
        }
    }
    if parts.is_empty() {
        return Err("expected KEY[:asc|desc][,...]".into());
    }
    Ok(parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value() {
        assert_eq!(parse_key_value("a=b").unwrap(), ("a".into(), "b".into()));
        assert_eq!(parse_key_value("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(parse_key_value("a=").unwrap(), ("a".into(), "".into()));
        assert!(parse_key_value("a").is_err());
        assert!(parse_key_value("=b").is_err());
    }

    #[test]
    fn sort() {
        assert_eq!(parse_sort("name").unwrap(), "name");
        assert_eq!(parse_sort("name:ASC, size:desc").unwrap(), "name:asc,size:desc");
        assert!(parse_sort("bogus:asc").is_err());
        assert!(parse_sort("name:up").is_err());
        assert!(parse_sort("").is_err());
    }

    #[test]
    fn error_chain_is_deduplicated() {
        let inner = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = anyhow::Error::new(inner).context("cannot open x.img");
        assert_eq!(error_message(&err), "cannot open x.img: no such file");
        let err = anyhow::anyhow!("boom: inner").context("outer");
        assert_eq!(error_message(&err), "outer: boom: inner");
    }
}
