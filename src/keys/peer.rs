//! Keys of other JFrog services in the circle of trust (seed 003): a real JFrog
//! `root.crt` is an X.509 certificate over an RSA key, and its tokens are signed RS256.
//! A trusted key is therefore Ed25519 (Gatehouse peers) or RSA, given as a certificate
//! (PEM or base64 DER), a SubjectPublicKeyInfo (`PUBLIC KEY`), a PKCS#1 `RSA PUBLIC KEY`,
//! or the bare Ed25519 forms `parse_public` reads.

use super::{kid_of, parse_public, public_b64, SPKI_PREFIX};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use der::{asn1::AnyRef, Decode, Encode, Reader, SliceReader, Tagged};
use ed25519_dalek::VerifyingKey;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
use rsa::RsaPublicKey;

/// Prefix of the public key of a non-Ed25519 trusted key in the read model
/// (`Keys::trusted`): `spki:<standard base64 of the SubjectPublicKeyInfo DER>`.
pub const SPKI_TAG: &str = "spki:";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerKey {
    Ed25519(VerifyingKey),
    Rsa(Box<RsaPublicKey>),
}

impl PeerKey {
    /// The key id Gatehouse files it under: Ed25519 as its own keys; RSA by the first 16
    /// hex digits of blake3 of the SubjectPublicKeyInfo. (JFrog's own `kid` header is not
    /// this: RS256 tokens are tried against every trusted RSA key, see `KeyRing`.)
    pub fn kid(&self) -> String {
        match self {
            PeerKey::Ed25519(k) => kid_of(k),
            PeerKey::Rsa(_) => blake3::hash(&self.spki_der()).to_hex()[..16].to_string(),
        }
    }

    pub fn spki_der(&self) -> Vec<u8> {
        match self {
            PeerKey::Ed25519(k) => {
                let mut der = SPKI_PREFIX.to_vec();
                der.extend_from_slice(k.as_bytes());
                der
            }
            PeerKey::Rsa(k) => k
                .to_public_key_der()
                .map(|d| d.as_bytes().to_vec())
                .unwrap_or_default(),
        }
    }

    /// How the read model keeps it: base64url raw Ed25519, or `spki:<base64 DER>`.
    pub fn stored(&self) -> String {
        match self {
            PeerKey::Ed25519(k) => public_b64(k),
            PeerKey::Rsa(_) => format!("{SPKI_TAG}{}", STANDARD.encode(self.spki_der())),
        }
    }

    /// The size in bits of an RSA key too small to be trusted (under 2,048: one weak key
    /// a forger can factor signs any token, RS256 tokens being tried against every
    /// trusted RSA key).
    pub fn weak_rsa_bits(&self) -> Option<usize> {
        use rsa::traits::PublicKeyParts;
        match self {
            PeerKey::Rsa(k) if k.size() * 8 < 2048 => Some(k.size() * 8),
            _ => None,
        }
    }

    pub fn from_stored(text: &str) -> Option<PeerKey> {
        match text.strip_prefix(SPKI_TAG) {
            Some(b64) => spki(&STANDARD.decode(b64).ok()?),
            None => super::public_from_b64(text).map(PeerKey::Ed25519),
        }
    }

    /// `-----BEGIN PUBLIC KEY-----` of the key.
    pub fn pem(&self) -> String {
        let b64 = STANDARD.encode(self.spki_der());
        let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            out.push('\n');
        }
        out.push_str("-----END PUBLIC KEY-----\n");
        out
    }

    pub fn algorithm(&self) -> &'static str {
        match self {
            PeerKey::Ed25519(_) => "EdDSA",
            PeerKey::Rsa(_) => "RS256",
        }
    }
}

/// A SubjectPublicKeyInfo (DER): Ed25519 or RSA.
fn spki(der: &[u8]) -> Option<PeerKey> {
    if der.len() == 44 && der[..12] == SPKI_PREFIX {
        let bytes: [u8; 32] = der[12..].try_into().ok()?;
        return VerifyingKey::from_bytes(&bytes).ok().map(PeerKey::Ed25519);
    }
    RsaPublicKey::from_public_key_der(der)
        .ok()
        .map(|k| PeerKey::Rsa(Box::new(k)))
}

/// The SubjectPublicKeyInfo of an X.509 certificate (RFC 5280 §4.1: the seventh field of
/// `tbsCertificate`, the sixth when the optional `[0] version` is absent).
fn certificate_spki(der: &[u8]) -> Option<Vec<u8>> {
    let cert = AnyRef::from_der(der).ok()?;
    let mut r = SliceReader::new(cert.value()).ok()?;
    let tbs: AnyRef = r.decode().ok()?;
    let mut t = SliceReader::new(tbs.value()).ok()?;
    let mut fields = Vec::new();
    while !t.is_finished() && fields.len() < 8 {
        fields.push(t.decode::<AnyRef>().ok()?);
    }
    let skip = usize::from(fields.first()?.tag().is_context_specific());
    fields.get(skip + 5)?.to_der().ok()
}

/// Parse a trusted key from any of the forms in the module docs.
pub fn parse_peer(text: &str) -> Option<PeerKey> {
    let label = text
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .unwrap_or("");
    // The first PEM block only (a chain's leaf comes first); or the whole text.
    let body: String = if label.is_empty() {
        text.split_whitespace().collect()
    } else {
        text.lines()
            .map(str::trim)
            .skip_while(|l| !l.starts_with("-----BEGIN"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .filter(|l| !l.contains(':'))
            .collect()
    };
    if let Ok(der) = STANDARD.decode(body.as_bytes()) {
        match label {
            "RSA PUBLIC KEY" => {
                return RsaPublicKey::from_pkcs1_der(&der)
                    .ok()
                    .map(|k| PeerKey::Rsa(Box::new(k)))
            }
            "PUBLIC KEY" => return spki(&der),
            _ => {}
        }
        if let Some(k) = certificate_spki(&der).and_then(|s| spki(&s)) {
            return Some(k);
        }
        if let Some(k) = spki(&der) {
            return Some(k);
        }
    }
    parse_public(text).map(PeerKey::Ed25519)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_and_keys_of_both_kinds() {
        let ed = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        let cert = super::super::certificate::root_certificate(
            &ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]),
            "k",
            "jfac@x",
        )
        .unwrap();
        let pem = super::super::certificate::pem(&cert);
        assert_eq!(parse_peer(&pem), Some(PeerKey::Ed25519(ed)));
        assert_eq!(
            parse_peer(&super::super::public_pem(&ed)),
            Some(PeerKey::Ed25519(ed))
        );
        let rsa = parse_peer(include_str!("../../tests/it/fixtures/jfrog-root.crt")).unwrap();
        assert!(matches!(rsa, PeerKey::Rsa(_)));
        assert_eq!(PeerKey::from_stored(&rsa.stored()), Some(rsa.clone()));
        assert_eq!(parse_peer(&rsa.pem()), Some(rsa));
        assert_eq!(parse_peer("not a key"), None);
    }
}
