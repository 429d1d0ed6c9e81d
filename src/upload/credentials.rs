//! The AWS shared credentials file (`~/.aws/credentials`, or `AWS_SHARED_CREDENTIALS_FILE`;
//! the profile `AWS_PROFILE`, else `default`), which `object_store` does not read itself.
//! Consulted only when `AWS_ACCESS_KEY_ID` is not set, as the AWS SDKs order them: the
//! environment first, then this file, then web identity, container and instance roles
//! (left to `object_store`).

use std::path::{Path, PathBuf};

/// Keys read from a credentials file.
#[derive(PartialEq, Eq)]
pub struct FileCredential {
    pub key_id: String,
    pub secret_key: String,
    pub token: Option<String>,
}

impl std::fmt::Debug for FileCredential {
    // Never the secret, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCredential")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// The credential of the selected profile from the shared credentials file, if the
/// environment has none of its own. `Err` for a file named by `AWS_SHARED_CREDENTIALS_FILE`
/// that cannot be read, or a profile named by `AWS_PROFILE` that it lacks.
pub fn from_shared_file() -> Result<Option<FileCredential>, String> {
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        return Ok(None);
    }
    let explicit = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from);
    let Some(path) = explicit
        .clone()
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".aws/credentials")))
    else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if explicit.is_some() => {
            return Err(format!(
                "AWS_SHARED_CREDENTIALS_FILE {}: {e}",
                path.display()
            ))
        }
        Err(_) => return Ok(None),
    };
    let named = std::env::var("AWS_PROFILE").ok();
    let profile = named.as_deref().unwrap_or("default");
    match parse(&text, profile) {
        Some(c) => Ok(Some(c)),
        None if named.is_some() => Err(format!(
            "{}: no profile [{profile}] with aws_access_key_id and aws_secret_access_key (AWS_PROFILE)",
            path.display()
        )),
        None => Ok(None),
    }
}

/// The keys of `[profile]` in an INI-style credentials file.
fn parse(text: &str, profile: &str) -> Option<FileCredential> {
    let (mut key_id, mut secret_key, mut token) = (None, None, None);
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == profile;
            continue;
        }
        let Some((k, v)) = line.split_once('=').filter(|_| inside) else {
            continue;
        };
        let v = Some(v.trim().to_owned()).filter(|v| !v.is_empty());
        match k.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" => key_id = v,
            "aws_secret_access_key" => secret_key = v,
            "aws_session_token" => token = v,
            _ => {}
        }
    }
    Some(FileCredential {
        key_id: key_id?,
        secret_key: secret_key?,
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::parse;

    const FILE: &str = "
# comment
[default]
aws_access_key_id = AKIADEFAULT
aws_secret_access_key = default-secret

[feeds]
aws_access_key_id=AKIAFEEDS
aws_secret_access_key=feeds-secret
aws_session_token = token-1
region = eu-central-1
";

    #[test]
    fn the_named_profile_is_read_and_others_ignored() {
        let c = parse(FILE, "feeds").unwrap();
        assert_eq!(c.key_id, "AKIAFEEDS");
        assert_eq!(c.secret_key, "feeds-secret");
        assert_eq!(c.token.as_deref(), Some("token-1"));
        let d = parse(FILE, "default").unwrap();
        assert_eq!(d.key_id, "AKIADEFAULT");
        assert_eq!(d.token, None);
    }

    #[test]
    fn a_profile_without_both_keys_gives_nothing() {
        assert!(parse(FILE, "missing").is_none());
        assert!(parse("[default]\naws_access_key_id = A\n", "default").is_none());
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let c = parse(FILE, "feeds").unwrap();
        assert!(!format!("{c:?}").contains("feeds-secret"));
    }
}
