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

/// The link we publish: tracking parameters removed, everything else as the partner wrote it.
pub fn clean(url: &Url) -> Url {
    let mut out = url.clone();
    if url.query().is_some() {
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !is_tracking(k))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            out.set_query(None);
        } else {
            out.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    out
}

/// Identity form: no scheme, lower-case host without `www.` and default port, no
/// fragment, no tracking parameters, remaining parameters sorted, no trailing slash.
pub fn canonical(url: &Url) -> String {
    let cleaned = clean(url);
    let host = cleaned.host_str().unwrap_or("").to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host);
    let mut out = String::with_capacity(url.as_str().len());
    out.push_str(host);
    if let Some(port) = cleaned.port() {
        out.push(':');
        out.push_str(&port.to_string());
    }
    out.push_str(cleaned.path().trim_end_matches('/'));
    let mut pairs: Vec<(String, String)> = cleaned
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if !pairs.is_empty() {
        pairs.sort();
        out.push('?');
        let q: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&q.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn scheme_tracking_and_trailing_slash_do_not_change_identity() {
        let a = canonical(&u(
            "https://www.Example.org/news/1/?utm_source=x&fbclid=y#top",
        ));
        let b = canonical(&u("http://example.org:80/news/1"));
        assert_eq!(a, b);
        assert_eq!(a, "example.org/news/1");
    }

    #[test]
    fn published_links_lose_tracking_only() {
        let c = clean(&u("https://example.org/a?id=3&utm_medium=rss&gclid=1"));
        assert_eq!(c.as_str(), "https://example.org/a?id=3");
    }

    #[test]
    fn relative_links_resolve_and_unsafe_schemes_are_refused() {
        let base = u("https://partner.example/news/");
        assert_eq!(
            resolve("p/1", Some(&base)).unwrap().as_str(),
            "https://partner.example/news/p/1"
        );
        assert!(resolve("javascript:alert(1)", Some(&base)).is_none());
        assert!(resolve("/x", None).is_none());
    }
}
