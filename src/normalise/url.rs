//! URL rules: resolving relative links, the cleaned link we publish, and the canonical
//! form that serves identity (the same post under `http` and `https`, with or without
//! `utm_*`, is one post).

use url::Url;

/// Query parameters that only track readers; dropped from published links and identity.
const TRACKING_PREFIXES: &[&str] = &["utm_", "mtm_", "pk_"];
const TRACKING_PARAMS: &[&str] = &[
    "fbclid",
    "gclid",
    "dclid",
    "gbraid",
    "wbraid",
    "msclkid",
    "mc_cid",
    "mc_eid",
    "yclid",
    "igshid",
    "_hsenc",
    "_hsmi",
    "mkt_tok",
    "ref",
    "ref_src",
    "oly_anon_id",
    "oly_enc_id",
    "vero_id",
    "wickedid",
    "twclid",
    "ttclid",
    "srsltid",
];

fn is_tracking(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    TRACKING_PREFIXES.iter().any(|p| lower.starts_with(p))
        || TRACKING_PARAMS.contains(&lower.as_str())
}

/// Resolves `href` against `base`; only http(s) results are accepted.
pub fn resolve(href: &str, base: Option<&Url>) -> Option<Url> {
    let href = href.trim();
    if href.is_empty() {
        return None;
    }
    let url = match Url::parse(href) {
        Ok(u) => u,
        Err(url::ParseError::RelativeUrlWithoutBase) => base?.join(href).ok()?,
        Err(_) => return None,
    };
    matches!(url.scheme(), "http" | "https").then_some(url)
}

/// The link we publish: tracking parameters removed, everything else exactly as the
/// partner wrote it (the other parameters keep their order and their encoding, since
/// some servers care).
pub fn clean(url: &Url) -> Url {
    let Some(query) = url.query() else {
        return url.clone();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or("");
            let key = url::form_urlencoded::parse(key.as_bytes())
                .next()
                .map(|(k, _)| k.into_owned())
                .unwrap_or_default();
            !pair.is_empty() && !is_tracking(&key)
        })
        .collect();
    let mut out = url.clone();
    if kept.is_empty() {
        out.set_query(None);
    } else {
        out.set_query(Some(&kept.join("&")));
    }
    out
}

/// The identity form of an item URL: two URLs with the same canonical form are the same
/// post. Each rule has a test below.
///
/// 1. The scheme is dropped: `http` and `https` are the same post.
/// 2. The host is lower case (the URL parser does that) and loses a leading `www.`.
/// 3. The port is dropped when it is the scheme's default (`:80`, `:443`), kept otherwise.
/// 4. The fragment is dropped: `#comments` is a place in the post, not another post.
/// 5. Tracking parameters (`utm_*`, `fbclid`, `gclid`, `mc_cid`, `mc_eid`, `ref`, …,
///    see `TRACKING_PARAMS`) are dropped.
/// 6. The other parameters are decoded and sorted, so their order does not matter.
/// 7. A trailing slash is dropped: `/news/1/` and `/news/1` are the same post.
///
/// The path keeps its case: servers may treat `/News` and `/news` differently.
pub fn canonical(url: &Url) -> String {
    let host = url.host_str().unwrap_or("").to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host);
    let mut out = String::with_capacity(url.as_str().len());
    out.push_str(host);
    if let Some(port) = url.port() {
        out.push(':');
        out.push_str(&port.to_string());
    }
    out.push_str(url.path().trim_end_matches('/'));
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !k.is_empty() && !is_tracking(k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if !pairs.is_empty() {
        pairs.sort();
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.extend_pairs(pairs);
        out.push('?');
        out.push_str(&q.finish());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }
    fn c(s: &str) -> String {
        canonical(&u(s))
    }

    #[test]
    fn canonical_rule_1_http_and_https_are_alike() {
        assert_eq!(c("http://example.org/a"), c("https://example.org/a"));
    }

    #[test]
    fn canonical_rule_2_host_is_lower_case_without_www() {
        assert_eq!(c("HTTPS://WWW.Example.ORG/a"), "example.org/a");
        assert_ne!(
            c("https://example.org/A"),
            c("https://example.org/a"),
            "path keeps case"
        );
    }

    #[test]
    fn canonical_rule_3_default_port_is_dropped_others_kept() {
        assert_eq!(c("http://example.org:80/a"), "example.org/a");
        assert_eq!(c("https://example.org:443/a"), "example.org/a");
        assert_eq!(c("https://example.org:8443/a"), "example.org:8443/a");
    }

    #[test]
    fn canonical_rule_4_fragment_is_dropped() {
        assert_eq!(c("https://example.org/a#comments"), "example.org/a");
    }

    #[test]
    fn canonical_rule_5_tracking_parameters_are_dropped() {
        assert_eq!(
            c("https://example.org/a?utm_source=rss&utm_medium=feed&UTM_Campaign=x&fbclid=1&gclid=2&mc_cid=3&mc_eid=4&ref=tw"),
            "example.org/a"
        );
        assert_eq!(
            c("https://example.org/a?id=7&utm_source=rss"),
            "example.org/a?id=7"
        );
    }

    #[test]
    fn canonical_rule_6_other_parameters_are_sorted() {
        assert_eq!(
            c("https://example.org/a?b=2&a=1"),
            c("https://example.org/a?a=1&b=2")
        );
        assert_eq!(
            c("https://example.org/a?q=x%20y"),
            c("https://example.org/a?q=x+y")
        );
    }

    #[test]
    fn canonical_rule_7_trailing_slash_is_dropped() {
        assert_eq!(
            c("https://example.org/news/1/"),
            c("https://example.org/news/1")
        );
        assert_eq!(c("https://example.org/"), "example.org");
    }

    #[test]
    fn published_links_lose_tracking_only_and_keep_their_encoding() {
        let c = clean(&u(
            "https://example.org/a?id=3&utm_medium=rss&gclid=1&q=a+b%2Bc#x",
        ));
        assert_eq!(c.as_str(), "https://example.org/a?id=3&q=a+b%2Bc#x");
        let c = clean(&u("https://example.org/a?utm_source=x"));
        assert_eq!(c.as_str(), "https://example.org/a");
    }

    #[test]
    fn relative_links_resolve_and_unsafe_schemes_are_refused() {
        let base = u("https://partner.example/news/");
        assert_eq!(
            resolve("p/1", Some(&base)).unwrap().as_str(),
            "https://partner.example/news/p/1"
        );
        assert!(resolve("javascript:alert(1)", Some(&base)).is_none());
        assert!(resolve("data:text/html,x", Some(&base)).is_none());
        assert!(resolve("/x", None).is_none());
    }
}
