//! Signing keys and the circle of trust.
//!
//! Private keys live only in `<data-dir>/keys/` as files with mode 0600 (never in the
//! event log, never in responses or logs). The log records only public halves
//! (`SigningKeyAdded`, `TrustedKeyAdded`), so every server that replays it knows which
//! keys verify which tokens. Peers' public keys can also be dropped as PEM files into
//! `<data-dir>/trusted/`; that folder is re-read when a token names an unknown key.

pub mod certificate;
pub mod peer;
pub mod vault;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::{SigningKey, VerifyingKey};
use gatehouse_projections::State;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the key's 32 bytes follow.
pub(crate) const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// One of this server's private signing keys.
///
/// Signatures come from aws-lc: on x86-64 its Ed25519 (s2n-bignum's verified assembly)
/// signs in half the time of ed25519-dalek, and signing was a third of the server's CPU
/// for a token issue. Ed25519 signatures are deterministic (RFC 8032): both libraries
/// make the same bytes (`signatures_are_dalek_s_byte_for_byte`). The dalek key gives the
/// public half and signs certificates.
pub struct PrivateKey {
    dalek: SigningKey,
    /// aws-lc's own check of the pair, made once; it also initialises aws-lc (which picks
    /// its code for this CPU) before any signature.
    pair: aws_lc_rs::signature::Ed25519KeyPair,
}

impl PrivateKey {
    /// The key of a 32-byte seed (RFC 8032's private key). `None` only if aws-lc refuses
    /// the pair, which it does not for a seed and the public key derived from it.
    pub fn from_seed(seed: &[u8; 32]) -> Option<PrivateKey> {
        let dalek = SigningKey::from_bytes(seed);
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_seed_and_public_key(
            seed,
            dalek.verifying_key().as_bytes(),
        )
        .ok()?;
        Some(PrivateKey { dalek, pair })
    }

    /// The Ed25519 signature of `message`, from aws-lc's `ED25519_sign` directly: through
    /// aws-lc-rs each signature also made and freed an EVP context and a heap buffer.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        // The 64 bytes `ED25519_sign` takes (seed ‖ public key), from dalek's key rather
        // than kept twice; zeroed when dropped.
        let keypair = zeroize::Zeroizing::new(self.dalek.to_keypair_bytes());
        // SAFETY: `out` is the 64 bytes a signature takes, `message` is `message.len()`
        // readable bytes, and `keypair` the 64 bytes (seed ‖ public key) the function
        // reads; it keeps no pointer after it returns.
        let signed = unsafe {
            aws_lc_sys::ED25519_sign(
                out.as_mut_ptr(),
                message.as_ptr(),
                message.len(),
                keypair.as_ptr(),
            )
        };
        if signed != 1 {
            // It does not fail for a valid key; if it ever did, the library's own way.
            out.copy_from_slice(self.pair.sign(message).as_ref());
        }
        out
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.dalek.verifying_key()
    }

    /// The same key as ed25519-dalek's, for what is signed through it (certificates).
    pub fn dalek(&self) -> &SigningKey {
        &self.dalek
    }
}

/// A key id: the first 16 hex digits of blake3 of the public key.
pub fn kid_of(public: &VerifyingKey) -> String {
    blake3::hash(public.as_bytes()).to_hex()[..16].to_string()
}

pub fn public_b64(public: &VerifyingKey) -> String {
    URL_SAFE_NO_PAD.encode(public.as_bytes())
}

pub fn public_from_b64(text: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = URL_SAFE_NO_PAD.decode(text).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// The public key as PEM (`-----BEGIN PUBLIC KEY-----`, SubjectPublicKeyInfo), the form
/// JWT libraries load for EdDSA.
pub fn public_pem(public: &VerifyingKey) -> String {
    let mut der = SPKI_PREFIX.to_vec();
    der.extend_from_slice(public.as_bytes());
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64"))
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

/// The base64 DER without PEM armour (what `/cert/root` answers unformatted).
pub fn public_der_b64(public: &VerifyingKey) -> String {
    let mut der = SPKI_PREFIX.to_vec();
    der.extend_from_slice(public.as_bytes());
    STANDARD.encode(der)
}

/// Parse a public key from PEM or bare base64 DER (a public key or an Ed25519
/// certificate), or base64url raw 32 bytes.
pub fn parse_public(text: &str) -> Option<VerifyingKey> {
    let body: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("");
    if let Ok(der) = STANDARD.decode(body.as_bytes()) {
        if der.len() == 44 && der[..12] == SPKI_PREFIX {
            return VerifyingKey::from_bytes(&der[12..].try_into().ok()?).ok();
        }
        // An X.509 certificate over an Ed25519 key (what `cert/root` serves): its
        // SubjectPublicKeyInfo has this same fixed encoding inside the certificate.
        if der.first() == Some(&0x30) && der.len() > 44 {
            if let Some(at) = der.windows(12).position(|w| w == SPKI_PREFIX) {
                let key: [u8; 32] = der.get(at + 12..at + 44)?.try_into().ok()?;
                return VerifyingKey::from_bytes(&key).ok();
            }
        }
    }
    public_from_b64(body.trim())
}

#[derive(Debug, thiserror::Error)]
#[error("cannot use the key directory {path}: {source}")]
pub struct KeyError {
    path: PathBuf,
    source: std::io::Error,
}

/// This server's private keys, plus a cache of parsed public keys.
pub struct KeyRing {
    dir: PathBuf,
    trusted_dir: PathBuf,
    signing: RwLock<HashMap<String, Arc<PrivateKey>>>,
    /// Public keys from `trusted/` files by kid, with the time of the last scan.
    trusted_files: RwLock<(HashMap<String, peer::PeerKey>, Option<Instant>)>,
    /// Parsed public keys by kid (parsing decompresses a curve point: worth caching).
    parsed: RwLock<HashMap<String, VerifyingKey>>,
}

/// How often an unknown `kid` may trigger a re-read of `trusted/`.
const TRUSTED_RESCAN: Duration = Duration::from_secs(1);

impl KeyRing {
    /// Load every private key under `<data_dir>/keys/`.
    pub fn open(data_dir: &Path) -> Result<KeyRing, KeyError> {
        let dir = data_dir.join("keys");
        let trusted_dir = data_dir.join("trusted");
        for d in [&dir, &trusted_dir] {
            std::fs::create_dir_all(d).map_err(|source| KeyError {
                path: d.clone(),
                source,
            })?;
        }
        let mut signing = HashMap::new();
        let entries = std::fs::read_dir(&dir).map_err(|source| KeyError {
            path: dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("key") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|source| KeyError {
                path: path.clone(),
                source,
            })?;
            let Some(bytes) = URL_SAFE_NO_PAD
                .decode(text.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
            else {
                tracing::warn!(path = %path.display(), "ignoring a key file that is not 32 base64url bytes");
                continue;
            };
            let Some(key) = PrivateKey::from_seed(&bytes) else {
                tracing::warn!(path = %path.display(), "ignoring a key file that aws-lc refuses");
                continue;
            };
            signing.insert(kid_of(&key.verifying_key()), Arc::new(key));
        }
        Ok(KeyRing {
            dir,
            trusted_dir,
            signing: RwLock::new(signing),
            trusted_files: RwLock::new((HashMap::new(), None)),
            parsed: RwLock::new(HashMap::new()),
        })
    }

    /// Make a new signing key and store it (0600). Returns its kid and public key; the
    /// caller records `SigningKeyAdded` so the key becomes active.
    pub fn generate(&self) -> Result<(String, VerifyingKey), KeyError> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).expect("the OS has randomness");
        let key = PrivateKey::from_seed(&seed).ok_or_else(|| KeyError {
            path: self.dir.clone(),
            source: std::io::Error::other("aws-lc refused a new Ed25519 key"),
        })?;
        let public = key.verifying_key();
        let kid = kid_of(&public);
        let path = self.dir.join(format!("{kid}.key"));
        crate::app::write_private(&path, &URL_SAFE_NO_PAD.encode(seed))
            .map_err(|source| KeyError { path, source })?;
        self.signing
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kid.clone(), Arc::new(key));
        Ok((kid, public))
    }

    pub fn signing_key(&self, kid: &str) -> Option<Arc<PrivateKey>> {
        if let Some(k) = self
            .signing
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(kid)
        {
            return Some(k.clone());
        }
        // Another node of a shared log may have made it.
        let seed =
            vault::fetch(&self.dir.join(format!("{kid}.key"))).and_then(|t| vault::parse32(&t))?;
        let key = Arc::new(PrivateKey::from_seed(&seed)?);
        if kid_of(&key.verifying_key()) != kid {
            return None;
        }
        self.signing
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kid.to_string(), key.clone());
        Some(key)
    }

    /// The key that verifies tokens with this `kid`: ours, a trusted peer's from the log,
    /// or one from the `trusted/` folder.
    pub fn verifying_key(&self, state: &State, kid: &str) -> Option<VerifyingKey> {
        if let Some(k) = self
            .parsed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(kid)
        {
            // Still listed? A removed trusted key (or a signing key retired by a reset)
            // must stop verifying at once.
            if state.keys.is_live_signing_key(kid)
                || state.keys.trusted.values().any(|(k2, _)| k2 == kid)
            {
                return Some(*k);
            }
        }
        let from_state = state
            .keys
            .signing
            .get(kid)
            .filter(|_| !state.keys.retired.contains(kid))
            .or_else(|| {
                state
                    .keys
                    .trusted
                    .values()
                    .find(|(k, _)| k == kid)
                    .map(|(_, p)| p)
            })
            .and_then(|p| public_from_b64(p));
        if let Some(k) = from_state {
            self.parsed
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(kid.to_string(), k);
            return Some(k);
        }
        match self.trusted_file_key(kid) {
            Some(peer::PeerKey::Ed25519(k)) => Some(k),
            _ => None,
        }
    }

    /// The keys that may have signed a token with this header: for EdDSA the one its
    /// `kid` names; for RS256 every trusted RSA key (a JFrog's `kid` is its own
    /// derivation, not ours), the one whose kid matches first.
    pub fn candidate_keys(
        &self,
        state: &State,
        alg: &str,
        kid: &str,
    ) -> Vec<(String, peer::PeerKey)> {
        if alg != "RS256" {
            return self
                .verifying_key(state, kid)
                .map(|k| vec![(kid.to_string(), peer::PeerKey::Ed25519(k))])
                .unwrap_or_default();
        }
        let mut out: Vec<(String, peer::PeerKey)> = state
            .keys
            .trusted
            .values()
            .filter(|(_, p)| p.starts_with(peer::SPKI_TAG))
            .filter_map(|(k, p)| peer::PeerKey::from_stored(p).map(|key| (k.clone(), key)))
            .collect();
        let _ = self.trusted_file_key("");
        let files = self.trusted_files.read().unwrap_or_else(|p| p.into_inner());
        for (k, key) in &files.0 {
            if matches!(key, peer::PeerKey::Rsa(_)) && !out.iter().any(|(o, _)| o == k) {
                out.push((k.clone(), key.clone()));
            }
        }
        out.sort_by_key(|(k, _)| k != kid);
        out
    }

    /// Whether the key `kid` still verifies tokens here (a cached verification is only
    /// good while it does).
    pub fn still_trusted(&self, state: &State, kid: &str) -> bool {
        state.keys.is_live_signing_key(kid)
            || state.keys.trusted.values().any(|(k, _)| k == kid)
            || self.trusted_file_key(kid).is_some()
    }

    fn trusted_file_key(&self, kid: &str) -> Option<peer::PeerKey> {
        {
            let files = self.trusted_files.read().unwrap_or_else(|p| p.into_inner());
            let fresh = files.1.is_some_and(|t| t.elapsed() < TRUSTED_RESCAN);
            if fresh {
                return files.0.get(kid).cloned();
            }
        }
        let mut found = HashMap::new();
        if let Ok(entries) = std::fs::read_dir(&self.trusted_dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue;
                };
                match peer::parse_peer(&text) {
                    Some(k) if k.weak_rsa_bits().is_some() => {
                        tracing::warn!(path = %path.display(), "ignoring a trusted file whose RSA key is under 2048 bits")
                    }
                    Some(k) => {
                        found.insert(k.kid(), k);
                    }
                    None => {
                        tracing::warn!(path = %path.display(), "ignoring a trusted file that is not a certificate or public key (Ed25519 or RSA)")
                    }
                }
            }
        }
        let key = found.get(kid).cloned();
        *self
            .trusted_files
            .write()
            .unwrap_or_else(|p| p.into_inner()) = (found, Some(Instant::now()));
        key
    }

    /// Every public key that verifies tokens here, by kid (for the JWKS document).
    /// The keys that verify this server's own tokens, each once: its signing keys but
    /// those a reset retired, and a retired one again while it is trusted (its tokens
    /// verify here then). Not the peers' keys it trusts: a verifier taking this set for
    /// this server's accepted a token a trusted peer signed in this server's name.
    pub fn own_verifying(&self, state: &State) -> Vec<(String, VerifyingKey)> {
        state
            .keys
            .signing
            .iter()
            .filter(|(kid, _)| !state.keys.retired.contains(*kid) || self.still_trusted(state, kid))
            .filter_map(|(kid, p)| public_from_b64(p).map(|k| (kid.clone(), k)))
            .collect()
    }

    /// The files in `trusted/` that hold a key, with the key (for importing them into
    /// the log, after which the file is removed, as seed 003 describes).
    pub fn trusted_folder_files(&self) -> Vec<(PathBuf, peer::PeerKey)> {
        let Ok(entries) = std::fs::read_dir(&self.trusted_dir) else {
            return vec![];
        };
        entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .filter_map(|p| {
                let text = std::fs::read_to_string(&p).ok()?;
                peer::parse_peer(&text)
                    .filter(|k| k.weak_rsa_bits().is_none())
                    .map(|k| (p, k))
            })
            .collect()
    }

    /// Forget what the last scan of `trusted/` found (a file was imported and removed).
    pub fn rescan_trusted_folder(&self) {
        self.trusted_files
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .1 = None;
    }

    /// Forget the private half of a retired signing key (a reset is often made because
    /// a key may have leaked: it must not be able to sign again).
    pub fn forget_signing_key(&self, kid: &str) {
        self.signing
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(kid);
        let path = self.dir.join(format!("{kid}.key"));
        if let Err(e) = vault::destroyed(&path) {
            tracing::warn!(error = %e, "cannot retire a signing key in the shared key store");
        }
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a retired signing key");
            }
        }
    }

    /// The signed-URL key of `version` of an organisation (`Some`) or the server-wide one.
    pub fn signed_url_key_of(&self, org: Option<&str>, version: u64) -> Option<[u8; 32]> {
        let Some(org) = org else {
            return self.signed_url_key(version);
        };
        let path = self.dir.join(signed_url_file(Some(org), version));
        let text = std::fs::read_to_string(&path)
            .ok()
            .or_else(|| vault::fetch(&path))?;
        URL_SAFE_NO_PAD
            .decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
    }

    /// Make an organisation's signed-URL key of `version` (0600).
    pub fn new_org_signed_url_key(&self, org: &str, version: u64) -> Result<(), KeyError> {
        let path = self.dir.join(signed_url_file(Some(org), version));
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).expect("the OS has randomness");
        // With a key vault, another node may have made this version first: its key
        // was written instead (the file is what signs and verifies).
        crate::app::write_private(&path, &URL_SAFE_NO_PAD.encode(key))
            .map(drop)
            .map_err(|source| KeyError { path, source })
    }

    /// Destroy the signed-URL keys (server-wide: `org` `None`) of versions before
    /// `current`: only the current version verifies a URL, so the replaced ones were
    /// secrets kept for nothing (every replacement left one more on disk). Each file is
    /// overwritten before it is unlinked, as a personal-data key is, and dropped from
    /// the shared key store so that no node fetches it again. Failures are logged: the
    /// replacement itself has committed.
    pub fn retire_signed_url_keys(&self, org: Option<&str>, current: u64) {
        let prefix = signed_url_prefix(org);
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(version) = name
                .to_str()
                .and_then(|n| n.strip_prefix(prefix.as_str()))
                .and_then(|n| n.strip_suffix(".secret"))
                // Digits only: `signed-url-org-…` is not a server-wide version.
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
            else {
                continue;
            };
            if version >= current {
                continue;
            }
            let path = entry.path();
            if let Err(e) = vault::destroyed(&path) {
                tracing::warn!(error = %e, "cannot retire a replaced signed-URL key in the shared key store");
            }
            let gone = std::fs::write(&path, [b'0'; 43]).and_then(|()| std::fs::remove_file(&path));
            if let Err(e) = gone {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a replaced signed-URL key");
            }
        }
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
    }

    /// The signed-URL key of `version`, if it exists.
    pub fn signed_url_key(&self, version: u64) -> Option<[u8; 32]> {
        let path = self.dir.join(signed_url_file(None, version));
        let text = std::fs::read_to_string(&path)
            .ok()
            .or_else(|| vault::fetch(&path))?;
        URL_SAFE_NO_PAD
            .decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
    }

    /// Make the signed-URL key of `version` (0600); the caller then records
    /// `SignedUrlKeyReplaced { version }`.
    pub fn new_signed_url_key(&self, version: u64) -> Result<(), KeyError> {
        let path = self.dir.join(signed_url_file(None, version));
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).expect("the OS has randomness");
        // With a key vault, another node may have made this version first: its key
        // was written instead (the file is what signs and verifies).
        crate::app::write_private(&path, &URL_SAFE_NO_PAD.encode(key))
            .map(drop)
            .map_err(|source| KeyError { path, source })
    }
}

/// The start of the file names of the signed-URL keys of `org` (`None`: server-wide);
/// [`signed_url_file`] appends the version.
fn signed_url_prefix(org: Option<&str>) -> String {
    match org {
        None => "signed-url-".to_string(),
        Some(o) => format!("signed-url-org-{o}-"),
    }
}

/// The file (in `<data-dir>/keys/`) of the signed-URL key `version` of `org`.
fn signed_url_file(org: Option<&str>, version: u64) -> String {
    format!("{}{version}.secret", signed_url_prefix(org))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let public = key.verifying_key();
        let pem = public_pem(&public);
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(parse_public(&pem), Some(public));
        assert_eq!(parse_public(&public_der_b64(&public)), Some(public));
        assert_eq!(parse_public(&public_b64(&public)), Some(public));
        assert_eq!(parse_public("not a key"), None);
    }

    /// aws-lc signs; dalek verifies (here, at every peer and in client libraries). The
    /// signatures must be the same bytes, for random keys and messages of every length
    /// a token or checkpoint has and more.
    #[test]
    fn signatures_are_dalek_s_byte_for_byte() {
        use ed25519_dalek::Signer;
        use rand::Rng;
        let mut rng = rand::rng();
        for i in 0..2000 {
            let seed: [u8; 32] = rng.random();
            let len = if i < 1100 {
                i
            } else {
                rng.random_range(0..20_000)
            };
            let message: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let key = PrivateKey::from_seed(&seed).unwrap();
            let dalek = SigningKey::from_bytes(&seed);
            assert_eq!(key.verifying_key(), dalek.verifying_key());
            let ours = key.sign(&message);
            assert_eq!(
                ours,
                dalek.sign(&message).to_bytes(),
                "seed {seed:?}, {len} bytes"
            );
            let sig = ed25519_dalek::Signature::from_bytes(&ours);
            assert!(dalek.verifying_key().verify_strict(&message, &sig).is_ok());
        }
    }
}
