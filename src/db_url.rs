//! A database server's URL that never shows its password: [`DbUrl`] prints (and
//! debugs) as `postgres://user:***@host/db`, so a config dump, a log line or an error
//! message cannot leak it; only [`DbUrl::secret`] hands out the full text, for
//! connecting. A leaf module: the config (which reads the URL) and the store (which
//! connects with it) both use it, and neither may depend on the other.

use std::fmt;

/// A `postgres://…` URL as configured, password included.
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl(String);

impl DbUrl {
    pub fn new(url: impl Into<String>) -> DbUrl {
        DbUrl(url.into())
    }

    /// The full URL, password included: for connecting, never for printing.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&without_password(&self.0))
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({self})")
    }
}

/// `url` with any password replaced, for error messages and logs. Done on the text,
/// not with a URL parser: the URLs this must mask are the ones that did not parse.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_masked_in_display_and_debug_but_kept_for_connecting() {
        let u = DbUrl::new("postgres://feedwerk:s3cret@db.example:5432/feedwerk?sslmode=require");
        let shown = "postgres://feedwerk:***@db.example:5432/feedwerk?sslmode=require";
        assert_eq!(u.to_string(), shown);
        assert_eq!(format!("{u:?}"), format!("DbUrl({shown})"));
        assert!(u.secret().contains("s3cret"));
    }

    #[test]
    fn urls_without_a_password_print_unchanged() {
        for url in [
            "postgres://feedwerk@127.0.0.1/feedwerk",
            "postgresql://127.0.0.1:5433/db",
            "host=/run/postgresql dbname=feedwerk",
        ] {
            assert_eq!(without_password(url), url);
        }
    }

    #[test]
    fn a_password_with_an_at_sign_is_masked_whole() {
        assert_eq!(
            without_password("postgres://u:p@ss@h/db"),
            "postgres://u:***@h/db"
        );
    }
}
