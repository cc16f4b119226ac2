//! TLS with rustls (ring provider): the listener's certificate, re-read on `SIGHUP`, and
//! the client configuration every outgoing call uses (system roots plus `ca-file`).
//!
//! The listener asks [`CertStore`] for the certificate at every handshake, so a reload
//! swaps one `Arc` and touches no connection: connections that are open keep the
//! session they negotiated, new ones get the new certificate. A reload that fails
//! (unreadable file, key that does not match) keeps the old certificate and says why.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read `{path}`: {message}")]
    Read { path: PathBuf, message: String },
    #[error("`{0}` holds no certificate")]
    NoCertificate(PathBuf),
    #[error("the key in `{path}` cannot be used: {message}")]
    Key { path: PathBuf, message: String },
    #[error("{0}")]
    Config(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate the listener presents, replaceable while it runs.
#[derive(Debug)]
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    pub fn open(cert_path: &Path, key_path: &Path) -> Result<Arc<CertStore>, TlsError> {
        let key = load(cert_path, key_path)?;
        Ok(Arc::new(CertStore {
            cert_path: cert_path.into(),
            key_path: key_path.into(),
            current: RwLock::new(key),
        }))
    }

    /// Read the files again; on success new handshakes use them.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load(&self.cert_path, &self.key_path)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = key;
        Ok(())
    }

    /// The listener's configuration (TLS 1.2 and 1.3, HTTP/1.1).
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let read = |path: &Path, e: &dyn std::fmt::Display| TlsError::Read {
        path: path.into(),
        message: e.to_string(),
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| read(cert_path, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| read(cert_path, &e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert_path.into()));
    }
    // Served all the same (the operator may be replacing it), but said: an expired one
    // was served without a word and every client failed its handshake.
    if let Some(warning) = validity_warning(&chain[0], crate::auth::unix_secs()) {
        tracing::warn!(certificate = %cert_path.display(), "{warning}");
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
        // "no items found" said nothing of what was missing, nor why.
        let text = std::fs::read_to_string(key_path).unwrap_or_default();
        let why = if text.contains("ENCRYPTED") {
            "the key is encrypted: give it decrypted (`openssl pkey -in KEY -out PLAIN`), \
             readable by this user only"
                .to_string()
        } else if text.contains("-----BEGIN CERTIFICATE-----") {
            "the file holds a certificate, not a private key".to_string()
        } else {
            format!("no private key (PKCS#8, PKCS#1 or SEC1 PEM) in it: {e}")
        };
        read(key_path, &why)
    })?;
    // A certificate that does not parse is the certificate's fault (it was blamed on the
    // key); a key that does not match it, or does not parse, the key's.
    let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
        rustls::Error::InvalidCertificate(_) => TlsError::Read {
            path: cert_path.into(),
            message: format!("not a certificate this server can use: {e}"),
        },
        _ => TlsError::Key {
            path: key_path.into(),
            message: e.to_string(),
        },
    })?;
    Ok(Arc::new(certified))
}

/// What is wrong with the certificate's validity at `now` (unix seconds): expired, not
/// yet valid, or expiring within 14 days.
fn validity_warning(cert: &CertificateDer<'_>, now: u64) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let validity = parsed.validity();
    let (from, until) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let day = 86_400;
    if until < now {
        Some(format!(
            "the TLS certificate expired {} day(s) ago (notAfter {}): clients will refuse it",
            (now - until) / day,
            validity.not_after
        ))
    } else if from > now {
        Some(format!(
            "the TLS certificate is not valid yet (notBefore {}): clients will refuse it",
            validity.not_before
        ))
    } else if until - now < 14 * day {
        Some(format!(
            "the TLS certificate expires in {} day(s) (notAfter {})",
            (until - now) / day,
            validity.not_after
        ))
    } else {
        None
    }
}

static CLIENT: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();

/// Set the roots outgoing calls trust: the system's, plus the certificates of `ca_file`.
/// Called once at start-up; later calls (other servers in the same test process) keep
/// the first configuration.
pub fn init_client(ca_file: Option<&Path>) -> Result<(), TlsError> {
    if CLIENT.get().is_some() {
        return Ok(());
    }
    let _ = CLIENT.set(Arc::new(client_config(ca_file)?));
    Ok(())
}

fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!(error = %e, "a system root certificate could not be read");
    }
    let (_, ignored) = roots.add_parsable_certificates(native.certs);
    if ignored > 0 {
        tracing::debug!(ignored, "system root certificates rustls cannot use");
    }
    if let Some(path) = ca_file {
        let read = |e: &dyn std::fmt::Display| TlsError::Read {
            path: path.into(),
            message: e.to_string(),
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| read(&e))?
            .collect::<Result<_, _>>()
            .map_err(|e| read(&e))?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate(path.into()));
        }
        for c in certs {
            roots.add(c).map_err(|e| read(&e))?;
        }
    }
    if roots.is_empty() {
        tracing::warn!("no root certificates: outgoing https calls will fail (install ca-certificates or give --ca-file)");
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The client configuration outgoing calls use: [`init_client`]'s roots (the system's
/// alone when nothing initialised it).
pub fn client() -> Arc<rustls::ClientConfig> {
    match CLIENT.get() {
        Some(c) => c.clone(),
        None => {
            // Not initialised (a tool or test that builds no Application): system roots.
            let c = Arc::new(client_config(None).unwrap_or_else(|_| {
                rustls::ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default versions")
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
            }));
            let _ = CLIENT.set(c.clone());
            c
        }
    }
}

/// A client configuration that trusts exactly the PEM certificates `pem` (an LDAP
/// setting's own CA).
pub fn client_with_roots(pem: &str) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| TlsError::Config(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| TlsError::Config(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(TlsError::Config("no certificate in the PEM text".into()));
    }
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// The most of a peer's answer read as JSON: federation and pairing answers are a few
/// hundred bytes; a peer (or anyone on the path) sending gigabytes is not read on.
pub const ANSWER_MAX: u64 = 1 << 20;

/// A peer's answer as JSON, read up to [`ANSWER_MAX`] (ureq's `into_json` reads all of
/// it: a `Content-Length: 4GB` answer took the server's memory with it).
pub fn json_answer<T: serde::de::DeserializeOwned>(r: ureq::Response) -> Result<T, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    r.into_reader()
        .take(ANSWER_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("the answer cannot be read: {e}"))?;
    if bytes.len() as u64 > ANSWER_MAX {
        return Err(format!("the answer is larger than {ANSWER_MAX} bytes"));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("the answer is not the JSON expected: {e}"))
}

/// A `ureq` agent builder that verifies servers against [`init_client`]'s roots. Every
/// outgoing call (webhooks, federation, pairing, existence checks) starts here.
pub fn agent() -> ureq::AgentBuilder {
    ureq::AgentBuilder::new().tls_config(client())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(from: i64, until: i64) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_before =
            rcgen::date_time_ymd(1970, 1, 1) + std::time::Duration::from_secs(from as u64);
        params.not_after =
            rcgen::date_time_ymd(1970, 1, 1) + std::time::Duration::from_secs(until as u64);
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn an_expired_or_expiring_certificate_is_told() {
        let now: i64 = 1_800_000_000;
        let day = 86_400;
        let told = |from: i64, until: i64| validity_warning(&cert(from, until), now as u64);
        assert!(told(now - 400 * day, now - 35 * day)
            .unwrap()
            .contains("expired 35 day(s) ago"));
        assert!(told(now + day, now + 400 * day)
            .unwrap()
            .contains("not valid yet"));
        assert!(told(now - day, now + 3 * day)
            .unwrap()
            .contains("expires in"));
        assert_eq!(told(now - day, now + 90 * day), None);
    }
}
