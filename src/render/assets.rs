//! Static documents published beside the feeds: the XSLT stylesheet that turns a feed
//! opened in a browser into a readable page explaining how to subscribe, and the
//! script partner sites include to embed the news list. Their text lives in
//! `assets/` so it can be read and edited as what it is.

/// Output path of the stylesheet every RSS and Atom document points to.
pub const FEED_XSL_PATH: &str = "feed.xsl";
/// Output path of the partner embed script.
pub const EMBED_JS_PATH: &str = "embed.js";

/// XSLT 1.0 (what browsers implement) for RSS 2.0 and Atom 1.0 documents; German text.
pub const FEED_XSL: &str = include_str!("assets/feed.xsl");

/// The partner embed script: fetches a channel's JSON Feed and builds the list with DOM
/// calls only (no `innerHTML`, no inline handlers).
pub const EMBED_JS: &str = include_str!("assets/embed.js");
