//! JSON Web Tokens signed with Ed25519 (`alg: EdDSA`, RFC 8037), written by hand because
//! the format is three base64url parts and a signature: a crate would add a crypto
//! backend we already have. Tests verify our tokens with the independent `jsonwebtoken`.

use crate::keys::peer::PeerKey;
use crate::keys::PrivateKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Header {
    pub alg: String,
    #[serde(default)]
    pub typ: Option<String>,
    pub kid: String,
}

/// The claims Gatehouse puts in a token (seed 004 "Access Tokens").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// `<service-id>/users/<name>`
    pub sub: String,
    pub scp: String,
    /// Space-separated service ids (JFrog's form); on the wire a string when there is
    /// one and an array when there are several (RFC 7519 §4.1.3), so JWT libraries
    /// check each audience.
    #[serde(with = "audience")]
    pub aud: String,
    /// The issuing service id.
    pub iss: String,
    pub iat: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    pub jti: String,
    /// JFrog's extension: a JSON string, e.g. `{"revocable":"true"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext: Option<String>,
}

impl Claims {
    /// The user name in `sub`.
    pub fn username(&self) -> Option<&str> {
        self.sub
            .split_once("/users/")
            .map(|(_, u)| u)
            .filter(|u| !u.is_empty())
    }

    /// Whether the issuer keeps a revocation record for this token.
    pub fn revocable(&self) -> bool {
        self.ext
            .as_deref()
            .and_then(|e| serde_json::from_str::<serde_json::Value>(e).ok())
            .is_some_and(|v| v["revocable"] == "true" || v["revocable"] == true)
    }
}

mod audience {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(aud: &str, s: S) -> Result<S::Ok, S::Error> {
        let parts: Vec<&str> = aud.split_whitespace().collect();
        if parts.len() == 1 {
            s.serialize_str(parts[0])
        } else {
            s.collect_seq(parts)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(s) => s,
            OneOrMany::Many(v) => v.join(" "),
        })
    }
}

pub fn sign(claims: &Claims, kid: &str, key: &PrivateKey) -> String {
    let header = Header {
        alg: "EdDSA".into(),
        typ: Some("JWT".into()),
        kid: kid.into(),
    };
    let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("header encodes"));
    let c = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims encode"));
    let input = format!("{h}.{c}");
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()))
    )
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("the token is not a JWT")]
    Malformed,
    #[error("unsupported token algorithm `{0}`")]
    Algorithm(String),
    #[error("the token's signature does not verify")]
    BadSignature,
}

/// A token split into its parts, not yet verified.
pub struct Unverified {
    pub header: Header,
    pub claims: Claims,
    signing_input: String,
    /// Ed25519 (64 bytes) for `EdDSA`; PKCS#1 v1.5 for `RS256` (a trusted JFrog's).
    signature: Vec<u8>,
}

pub fn parse(token: &str) -> Result<Unverified, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header: Header = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwtError::Malformed)?;
    if header.alg != "EdDSA" && header.alg != "RS256" {
        return Err(JwtError::Algorithm(header.alg));
    }
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwtError::Malformed)?;
    let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
    if header.alg == "EdDSA" && signature.len() != 64 {
        return Err(JwtError::Malformed);
    }
    Ok(Unverified {
        header,
        claims,
        signing_input: format!("{h}.{c}"),
        signature,
    })
}

impl Unverified {
    /// Verify an EdDSA token with an Ed25519 key.
    pub fn verify(self, key: &VerifyingKey) -> Result<Claims, JwtError> {
        self.check(&PeerKey::Ed25519(*key))?;
        Ok(self.claims)
    }

    /// Whether the signature verifies with `key` (whose kind must match `alg`: an RSA key
    /// never verifies an EdDSA token, nor the other way round).
    pub fn check(&self, key: &PeerKey) -> Result<(), JwtError> {
        let input = self.signing_input.as_bytes();
        let ok = match (key, self.header.alg.as_str()) {
            (PeerKey::Ed25519(k), "EdDSA") => <[u8; 64]>::try_from(self.signature.as_slice())
                .is_ok_and(|b| k.verify_strict(input, &Signature::from_bytes(&b)).is_ok()),
            (PeerKey::Rsa(k), "RS256") => {
                use sha2::Digest;
                let hashed = sha2::Sha256::digest(input);
                k.verify(
                    rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                    &hashed,
                    &self.signature,
                )
                .is_ok()
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(JwtError::BadSignature)
        }
    }

    pub fn into_claims(self) -> Claims {
        self.claims
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            sub: "jfac@01x/users/alice".into(),
            scp: "applied-permissions/user".into(),
            aud: "*@*".into(),
            iss: "jfac@01x".into(),
            iat: 1,
            exp: Some(2),
            jti: "id".into(),
            ext: Some(r#"{"revocable":"true"}"#.into()),
        }
    }

    #[test]
    fn sign_parse_verify() {
        let key = PrivateKey::from_seed(&[1u8; 32]).unwrap();
        let token = sign(&claims(), "k1", &key);
        let parsed = parse(&token).unwrap();
        assert_eq!(parsed.header.kid, "k1");
        let c = parsed.verify(&key.verifying_key()).unwrap();
        assert_eq!(c, claims());
        assert_eq!(c.username(), Some("alice"));
        assert!(c.revocable());
        let other = ed25519_dalek::SigningKey::from_bytes(&[2u8; 32]);
        assert_eq!(
            parse(&token).unwrap().verify(&other.verifying_key()),
            Err(JwtError::BadSignature)
        );
        let mut tampered = token.clone();
        tampered.insert(token.find('.').unwrap() + 3, 'x');
        assert!(parse(&tampered)
            .map(|u| u.verify(&key.verifying_key()))
            .map_or(true, |r| r.is_err()));
        assert_eq!(parse("a.b").err(), Some(JwtError::Malformed));
    }
}
