//! How the store reaches its server: the `[store] url` read into a tokio-postgres
//! config, and the rustls connector its `sslmode` asks for (issue 20). Both the pool
//! ([`super::PgStore`]) and the leader's own connection ([`super::leader`]) connect
//! through here, so they trust the same server the same way.
//!
//! `sslmode` means what it means to libpq, whose URLs operators already have:
//!
//! | `sslmode`            | TLS                          | the server's certificate            |
//! |----------------------|------------------------------|-------------------------------------|
//! | `disable`            | never                        | —                                   |
//! | `prefer` (default)   | when the server offers it    | not checked (see below)             |
//! | `require`            | always                       | not checked (see below)             |
//! | `verify-ca`          | always                       | chains to a trusted CA              |
//! | `verify-full`        | always                       | chains to a trusted CA, names host  |
//!
//! As in libpq, `prefer` and `require` check the certificate like `verify-ca` once a CA
//! is given (`store.ca_file`); without one they encrypt but do not authenticate the
//! server. The trusted CAs are those of `store.ca_file` alone when it is set (a private
//! CA), else the system's (the verifier reqwest uses). tokio-postgres itself knows only
//! `disable`, `prefer` and `require`: the two `verify-*` modes are read here and handed
//! to it as `require`.
//!
//! The crypto provider is the aws-lc-rs one reqwest already builds; it is named here
//! rather than installed process-wide, so nothing depends on who starts first.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::StoreError;

/// Where the store's server is and how far to trust it: the `[store] url` and
/// `store.ca_file`.
#[derive(Clone, Debug)]
pub struct PgTarget {
    pub url: String,
    /// PEM file of the CA (or CAs) that signed the server's certificate, trusted
    /// instead of the system's.
    pub ca_file: Option<PathBuf>,
}

impl PgTarget {
    pub fn new(url: &str) -> PgTarget {
        PgTarget {
            url: url.to_owned(),
            ca_file: None,
        }
    }

    /// The target, trusting only the CA certificates in `path`.
    pub fn with_ca_file(mut self, path: &Path) -> PgTarget {
        self.ca_file = Some(path.to_owned());
        self
    }

    /// The URL with any password masked, for messages.
    pub(super) fn shown(&self) -> String {
        super::without_password(&self.url)
    }

    /// The tokio-postgres config and the TLS connector for it.
    pub(super) fn resolve(
        &self,
    ) -> Result<(tokio_postgres::Config, MakeRustlsConnect), StoreError> {
        let (text, check) = read_sslmode(&self.url);
        let config: tokio_postgres::Config = text.parse().map_err(|source| StoreError::PgUrl {
            url: self.shown(),
            source,
        })?;
        let check = match (check, config.get_ssl_mode()) {
            (Some(c), _) => c,
            (None, SslMode::Disable) => return Ok((config, connector(Arc::new(Unchecked::new())))),
            (None, _) if self.ca_file.is_some() => Check::Chain,
            (None, _) => Check::None,
        };
        let verifier: Arc<dyn ServerCertVerifier> = match check {
            Check::None => Arc::new(Unchecked::new()),
            Check::Chain => Arc::new(ChainOnly(self.trusted()?)),
            Check::Full => self.trusted()?,
        };
        Ok((config, connector(verifier)))
    }

    /// The verifier of chain and name against the trusted CAs.
    fn trusted(&self) -> Result<Arc<dyn ServerCertVerifier>, StoreError> {
        let provider = provider();
        let Some(path) = &self.ca_file else {
            let v = rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| tls_error(format!("the system's CA certificates: {e}")))?;
            return Ok(Arc::new(v));
        };
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| tls_error(format!("store.ca_file {}: {e}", path.display())))?;
        for cert in certs {
            let cert =
                cert.map_err(|e| tls_error(format!("store.ca_file {}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| tls_error(format!("store.ca_file {}: {e}", path.display())))?;
        }
        if roots.is_empty() {
            return Err(tls_error(format!(
                "store.ca_file {}: no PEM certificate in it",
                path.display()
            )));
        }
        let v = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| tls_error(format!("store.ca_file {}: {e}", path.display())))?;
        Ok(v)
    }
}

/// How much of the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Check {
    None,
    Chain,
    Full,
}

/// `url` with a `verify-ca` or `verify-full` sslmode turned into `require` (which
/// tokio-postgres reads), and which check that mode asks for. Works on the text, in
/// both the URL (`?sslmode=…`) and the keyword (`sslmode=…`) forms.
fn read_sslmode(url: &str) -> (String, Option<Check>) {
    for (mode, check) in [("verify-full", Check::Full), ("verify-ca", Check::Chain)] {
        let key = format!("sslmode={mode}");
        if let Some(at) = url.find(&key) {
            let rest = &url[at + key.len()..];
            if rest.is_empty() || rest.starts_with(['&', ' ']) {
                return (url.replacen(&key, "sslmode=require", 1), Some(check));
            }
        }
    }
    (url.to_owned(), None)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn tls_error(message: String) -> StoreError {
    StoreError::PgTls(message)
}

fn connector(verifier: Arc<dyn ServerCertVerifier>) -> MakeRustlsConnect {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the aws-lc-rs provider supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    MakeRustlsConnect::new(config)
}

/// `verify-ca`: the chain must lead to a trusted CA, the name need not match (libpq's
/// meaning; a server reached by an address its certificate does not list).
#[derive(Debug)]
struct ChainOnly(Arc<dyn ServerCertVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a CA: any certificate is taken (libpq's meaning:
/// encrypted, not authenticated), but the handshake must still be signed by its key.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl Unchecked {
    fn new() -> Unchecked {
        Unchecked(provider())
    }
}

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_modes_become_require_for_tokio_postgres() {
        assert_eq!(
            read_sslmode("postgres://u@h/db?sslmode=verify-full"),
            (
                "postgres://u@h/db?sslmode=require".into(),
                Some(Check::Full)
            )
        );
        assert_eq!(
            read_sslmode("postgres://u@h/db?sslmode=verify-ca&application_name=x"),
            (
                "postgres://u@h/db?sslmode=require&application_name=x".into(),
                Some(Check::Chain)
            )
        );
        assert_eq!(
            read_sslmode("host=h sslmode=verify-ca user=u"),
            ("host=h sslmode=require user=u".into(), Some(Check::Chain))
        );
        assert_eq!(
            read_sslmode("postgres://u@h/db?sslmode=require"),
            ("postgres://u@h/db?sslmode=require".into(), None)
        );
    }

    #[test]
    fn an_unknown_sslmode_is_refused_with_the_url() {
        let err = PgTarget::new("postgres://u:secret@h/db?sslmode=verify-some")
            .resolve()
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("u:***@h/db"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = PgTarget::new("postgres://u@h/db?sslmode=verify-full")
            .with_ca_file(&path)
            .resolve()
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("store.ca_file") && err.contains("ca.pem"),
            "{err}"
        );
    }
}
