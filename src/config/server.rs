//! The limits of `[server]`: how much any one client may take of the HTTP server — the
//! timeouts, the cap on open connections and the request limits. Checked here, with
//! their defaults (the keys are read into `RawServer` with `listen`, which
//! `sections` checks); [`crate::serve`] applies them.

use std::time::Duration;

use toml::Spanned;

use super::problems::{duration, Problems};
use super::raw::RawServer;

/// How long a connection may take over each part of its life, how many may be open,
/// and what a request may contain. The defaults are for a server on the open internet
/// answering feed readers and browsers: every request it serves is a short GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// From accepting a connection, or from the first byte of a later request on it,
    /// until the request head is complete (slowloris).
    pub header_timeout: Duration,
    /// A kept-alive connection waiting for its next request.
    pub idle_timeout: Duration,
    /// Writing a response that makes no progress (a client that does not read).
    pub write_timeout: Duration,
    /// Connections open at once; `None`: sized to the open-file limit at start.
    pub max_connections: Option<usize>,
    /// The request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Header fields in one request.
    pub max_headers: usize,
    /// The request target (path and query), in bytes.
    pub max_uri_bytes: usize,
    /// The listening socket's accept queue (the kernel caps it at
    /// `net.core.somaxconn`).
    pub backlog: u32,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            // nginx waits 60 s for a head; a feed reader sends its whole head in
            // one segment, and 10 s is ample for the slowest mobile link.
            header_timeout: Duration::from_secs(10),
            // Readers poll every few minutes: a connection kept longer than a page
            // view's follow-up requests only holds a descriptor.
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            max_connections: None,
            max_header_bytes: 16 * 1024,
            // hyper's own default, kept on the stack: any other count costs a heap
            // allocation per request.
            max_headers: 100,
            max_uri_bytes: 2048,
            backlog: 4096,
        }
    }
}

impl ServerLimits {
    pub(super) fn from_raw(raw: &RawServer, p: &mut Problems) -> ServerLimits {
        let d = ServerLimits::default();
        let timeout = |v: &Option<Spanned<String>>, key: &str, dflt, p: &mut Problems| {
            let Some(s) = v else { return dflt };
            match duration(s, key, p) {
                Some(t) if t.is_zero() => {
                    p.add(key, s.span(), "must be longer than 0");
                    dflt
                }
                Some(t) => t,
                None => dflt,
            }
        };
        let count = |v: &Option<Spanned<i64>>, key: &str, range: (i64, i64), p: &mut Problems| {
            let s = v.as_ref()?;
            let n = *s.get_ref();
            if n < range.0 || n > range.1 {
                p.add(
                    key,
                    s.span(),
                    format!("must be from {} to {}", range.0, range.1),
                );
                return None;
            }
            Some(n as usize)
        };
        ServerLimits {
            header_timeout: timeout(
                &raw.header_timeout,
                "server.header_timeout",
                d.header_timeout,
                p,
            ),
            idle_timeout: timeout(&raw.idle_timeout, "server.idle_timeout", d.idle_timeout, p),
            write_timeout: timeout(
                &raw.write_timeout,
                "server.write_timeout",
                d.write_timeout,
                p,
            ),
            max_connections: count(
                &raw.max_connections,
                "server.max_connections",
                (1, 1 << 24),
                p,
            ),
            // hyper's read buffer is at least 8 KiB; a smaller head limit would only
            // refuse ordinary browsers.
            max_header_bytes: count(
                &raw.max_header_bytes,
                "server.max_header_bytes",
                (1024, 1 << 20),
                p,
            )
            .unwrap_or(d.max_header_bytes),
            max_headers: count(&raw.max_headers, "server.max_headers", (8, 1000), p)
                .unwrap_or(d.max_headers),
            max_uri_bytes: count(&raw.max_uri_bytes, "server.max_uri_bytes", (64, 65534), p)
                .unwrap_or(d.max_uri_bytes),
            backlog: count(&raw.backlog, "server.backlog", (1, 65535), p)
                .map_or(d.backlog, |n| n as u32),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn server(table: &str) -> Result<ServerLimits, String> {
        let text = format!(
            "[site]\ntitle = \"T\"\nbase_url = \"https://example.org/\"\n\n[server]\n{table}\n[[source]]\nid = \"a\"\nkind = \"local\"\npath = \"posts\"\n"
        );
        Config::parse(&text, Path::new("config.toml"))
            .map(|c| c.server.limits)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn limits_default_when_not_given_and_are_read_when_given() {
        assert_eq!(server("").unwrap(), ServerLimits::default());
        let l = server(
            "header_timeout = \"2s\"\nidle_timeout = \"500ms\"\nwrite_timeout = \"1m\"\nmax_connections = 100\nmax_header_bytes = 4096\nmax_headers = 20\nmax_uri_bytes = 512\nbacklog = 64\n",
        )
        .unwrap();
        assert_eq!(
            l,
            ServerLimits {
                header_timeout: Duration::from_secs(2),
                idle_timeout: Duration::from_millis(500),
                write_timeout: Duration::from_secs(60),
                max_connections: Some(100),
                max_header_bytes: 4096,
                max_headers: 20,
                max_uri_bytes: 512,
                backlog: 64,
            }
        );
    }

    #[test]
    fn bad_limits_are_all_named_with_their_lines() {
        let err = server(
            "header_timeout = \"0s\"\nidle_timeout = \"soon\"\nmax_connections = 0\nmax_header_bytes = 100\nbacklog = 100000\n",
        )
        .unwrap_err();
        for want in [
            "line 6: `server.header_timeout`: must be longer than 0",
            "line 7: `server.idle_timeout`: invalid duration `soon`",
            "line 8: `server.max_connections`: must be from 1 to",
            "line 9: `server.max_header_bytes`: must be from 1024 to",
            "line 10: `server.backlog`: must be from 1 to 65535",
        ] {
            assert!(err.contains(want), "{want} not in\n{err}");
        }
    }
}
