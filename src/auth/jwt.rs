//! JSON Web Tokens signed with Ed25519 (`alg: EdDSA`, RFC 8037), written by hand because
//! the format is three base64url parts and a signature: a crate would add a crypto
//! backend we already have. Tests verify our tokens with the independent `jsonwebtoken`.

use crate::json::Json;
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
    /// Empty when the token names none: an RS256 token (a trusted JFrog's) needs none,
    /// it is tried against every trusted RSA key ("not a JWT" was said of one without).
    #[serde(default)]
    pub kid: String,
    /// Extensions the token says a reader must understand (RFC 7515 §4.1.11): this
    /// server understands none, so a token that names any is refused.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub crit: Option<serde_json::Value>,
}

/// A header field that is there, whatever its value (`"crit": null` is a `crit` too:
/// RFC 7515 allows only an array there).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
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
    /// Not before (RFC 7519 §4.1.5): this server's tokens never carry one; a trusted
    /// peer's may, and is refused until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    pub jti: String,
    /// JFrog's extension: a JSON string, e.g. `{"revocable":"true"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext: Option<String>,
}

/// The claims of a token to sign, borrowed: a token issue signs claims made of the
/// request's own strings without copying each into a [`Claims`] first.
#[derive(Debug, Clone, Copy)]
pub struct ClaimsRef<'a> {
    pub sub: &'a str,
    pub scp: &'a str,
    pub aud: &'a str,
    pub iss: &'a str,
    pub iat: u64,
    pub exp: Option<u64>,
    pub jti: &'a str,
    pub ext: Option<&'a str>,
}

impl<'a> From<&'a Claims> for ClaimsRef<'a> {
    fn from(c: &'a Claims) -> Self {
        ClaimsRef {
            sub: &c.sub,
            scp: &c.scp,
            aud: &c.aud,
            iss: &c.iss,
            iat: c.iat,
            exp: c.exp,
            jti: &c.jti,
            ext: c.ext.as_deref(),
        }
    }
}

impl Claims {
    /// The user name in `sub`.
    pub fn username(&self) -> Option<&str> {
        // What `split_once("/users/")` finds, by the slashes (a byte search): the
        // substring searcher's set-up was a visible part of every bearer request.
        const MARK: &str = "/users/";
        let at = self
            .sub
            .match_indices('/')
            .map(|(i, _)| i)
            .find(|&i| self.sub[i..].starts_with(MARK))?;
        Some(&self.sub[at + MARK.len()..]).filter(|u| !u.is_empty())
    }

    /// Whether the issuer keeps a revocation record for this token: its `ext` says so, or
    /// it never expires (seed 003: "tokens with no expiry are revocable"; only tokens
    /// with an expiry are accepted by another instance — a JFrog token without `exp` and
    /// without the flag was accepted by a peer for ever).
    pub fn revocable(&self) -> bool {
        self.exp.is_none()
            || self
                .ext
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

pub fn sign<'a>(claims: impl Into<ClaimsRef<'a>>, kid: &str, key: &PrivateKey) -> String {
    let mut header = Vec::with_capacity(64);
    let mut o = Json::open(&mut header);
    o.str("alg", Some("EdDSA"));
    o.str("typ", Some("JWT"));
    o.str("kid", Some(kid));
    o.close();
    let claims = claims_json(&claims.into());
    // Written into one string of its final size (86 characters of signature), with the
    // SIMD base64 the sealed personal values use: the header and claims through serde,
    // encoded as three parts and joined by two `format!`s, were a tenth of what a token
    // issue spent beside signing (issue 18).
    let b64 = |n: usize| n.div_ceil(3) * 4;
    let mut token = String::with_capacity(b64(header.len()) + b64(claims.len()) + 2 + 88);
    base64_simd::URL_SAFE_NO_PAD.encode_append(&header, &mut token);
    token.push('.');
    base64_simd::URL_SAFE_NO_PAD.encode_append(&claims, &mut token);
    let signature = key.sign(token.as_bytes());
    token.push('.');
    base64_simd::URL_SAFE_NO_PAD.encode_append(&signature[..], &mut token);
    token
}

/// `c` as serde_json serialises it, written with [`crate::json`]. Tokens are signed over
/// these bytes only: the derived `Serialize` of [`Claims`] (and `audience::serialize`)
/// is the reference `claims_are_written_as_serde_writes_them` holds them to.
fn claims_json(c: &ClaimsRef<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(192 + c.ext.map_or(0, |e| e.len() * 2));
    let mut o = Json::open(&mut out);
    o.str("sub", Some(c.sub));
    o.str("scp", Some(c.scp));
    // As `audience::serialize`: one audience a string, several (or none) an array.
    let mut parts = c.aud.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(one), None) => o.str("aud", Some(one)),
        _ => {
            o.key("aud");
            o.out().push(b'[');
            for (i, a) in c.aud.split_whitespace().enumerate() {
                if i > 0 {
                    o.out().push(b',');
                }
                crate::json::string(o.out(), a);
            }
            o.out().push(b']');
        }
    }
    o.str("iss", Some(c.iss));
    o.u64("iat", Some(c.iat));
    o.u64("exp", c.exp);
    o.str("jti", Some(c.jti));
    o.str("ext", c.ext);
    o.close();
    out
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("the token is not a JWT")]
    Malformed,
    #[error("unsupported token algorithm `{0}`")]
    Algorithm(String),
    #[error("the token names critical header extensions (`crit`), which this server does not understand")]
    Critical,
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
    if header.crit.is_some() {
        return Err(JwtError::Critical);
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
            nbf: None,
            jti: "id".into(),
            ext: Some(r#"{"revocable":"true"}"#.into()),
        }
    }

    /// The claims as written by hand are serde_json's serialisation of them: one audience
    /// or several or none, with and without the optional claims, with escapes.
    #[test]
    fn claims_are_written_as_serde_writes_them() {
        for aud in ["*@*", "jfrt@a jfac@b", "", " one ", "a\"b c\\d"] {
            for (exp, ext) in [
                (None, None),
                (Some(u64::MAX), Some(r#"{"r":"t\u0001"}"#.to_string())),
            ] {
                let c = Claims {
                    aud: aud.into(),
                    sub: "jfac@01x/users/al\"ice\n".into(),
                    exp,
                    ext,
                    ..claims()
                };
                assert_eq!(
                    claims_json(&(&c).into()),
                    serde_json::to_vec(&c).unwrap(),
                    "{c:?}"
                );
            }
        }
    }

    /// The token is the compact JWS as written part by part with the `base64` crate
    /// (Ed25519 signatures are deterministic), with and without the optional claims.
    #[test]
    fn the_token_is_the_compact_serialisation() {
        let key = PrivateKey::from_seed(&[3u8; 32]).unwrap();
        for (exp, ext) in [(None, None), (Some(7), Some(r#"{"a":"\"b"}"#.to_string()))] {
            let c = Claims {
                exp,
                ext,
                ..claims()
            };
            let header = Header {
                alg: "EdDSA".into(),
                typ: Some("JWT".into()),
                kid: "k9".into(),
                crit: None,
            };
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
                URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap())
            );
            let expected = format!(
                "{input}.{}",
                URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()))
            );
            assert_eq!(sign(&c, "k9", &key), expected);
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

    #[test]
    fn the_user_of_a_subject() {
        let table = [
            ("jfac@01abc/users/alice", Some("alice")),
            ("jfac@01abc/users/", None),
            ("jfac@01abc/groups/devs", None),
            ("jfac@01abc/nodes/x/users/bob", Some("bob")),
            ("/users/carol", Some("carol")),
            ("jfac@01abc/users/dan/users/eve", Some("dan/users/eve")),
            ("users/frank", None),
            ("", None),
        ];
        for (sub, user) in table {
            let c = Claims {
                sub: sub.into(),
                ..claims()
            };
            assert_eq!(c.username(), user, "{sub}");
            assert_eq!(
                c.username(),
                sub.split_once("/users/")
                    .map(|(_, u)| u)
                    .filter(|u| !u.is_empty()),
                "{sub}"
            );
        }
    }
}
