//! The root certificate: a self-signed X.509 v3 certificate over a token-signing key,
//! which `GET /access/api/v1/cert/root` serves as JFrog does (trust stores and
//! `cryptography.x509` import certificates, not bare keys). It is made from the key,
//! not stored: the same key always gives the same bytes (Ed25519 signatures are
//! deterministic and every field is fixed), and a rotation gives a new certificate.

use ed25519_dalek::SigningKey;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SerialNumber, PKCS_ED25519,
};

/// PKCS#8 v1 of an Ed25519 seed (RFC 8410 §7): a fixed prefix, then the 32 bytes.
fn pkcs8(key: &SigningKey) -> Vec<u8> {
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut der = PREFIX.to_vec();
    der.extend_from_slice(key.as_bytes());
    der
}

/// The certificate of `key` (`kid`), issued to and by `CN=<service id>`: DER.
pub fn root_certificate(key: &SigningKey, kid: &str, service_id: &str) -> Result<Vec<u8>, String> {
    let pkcs8 = pkcs8(key);
    let key_pair =
        KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.as_slice().into(), &PKCS_ED25519)
            .map_err(|e| format!("the signing key `{kid}` cannot sign a certificate: {e}"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, service_id);
    dn.push(DnType::OrganizationName, "Gatehouse");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
    ];
    // A serial from the key id (positive: the top bit clear), so it is fixed per key.
    let mut serial = blake3::hash(kid.as_bytes()).as_bytes()[..16].to_vec();
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    // RFC 5280 §4.1.2.5: 99991231235959Z means "no well-defined expiration"; the key's
    // life ends with a rotation or a reset, not with a date.
    params.not_after = rcgen::date_time_ymd(9999, 12, 31);
    params.use_authority_key_identifier_extension = false;
    let cert = params
        .self_signed(&key_pair)
        .map_err(|e| format!("cannot make the certificate of `{kid}`: {e}"))?;
    Ok(cert.der().to_vec())
}

pub fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_key_gives_the_same_certificate_and_it_carries_the_key() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let a = root_certificate(&key, "k1", "jfac@x").unwrap();
        let b = root_certificate(&key, "k1", "jfac@x").unwrap();
        assert_eq!(a, b);
        // The raw public key appears in the SubjectPublicKeyInfo.
        let public = key.verifying_key().to_bytes();
        assert!(a.windows(32).any(|w| w == public));
        let other = root_certificate(&SigningKey::from_bytes(&[8u8; 32]), "k2", "jfac@x").unwrap();
        assert_ne!(a, other);
        assert!(pem(&a).starts_with("-----BEGIN CERTIFICATE-----\n"));
    }
}
