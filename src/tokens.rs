//! Minting access tokens: claims, signature, refresh and reference tokens, and the record
//! (hashes only) that goes into the log. The rules about *who* may ask for *what* live in
//! `http::tokens`, next to the request they judge.

use crate::auth::jwt::{self, Claims};
use crate::keys::KeyRing;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gatehouse_schemas::TokenIssued;

/// Scope of pairing tokens: `internal:service-trust/pairing/<use case>:x`.
pub const PAIRING_SCOPE_PREFIX: &str = "internal:service-trust/pairing/";

/// Reference tokens are 128 characters (seed 003): 96 random bytes in base64url.
pub const REFERENCE_TOKEN_LEN: usize = 128;

/// A freshly minted token: the secrets for the caller (once) and the record for the log.
pub struct Minted {
    pub record: TokenIssued,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub reference_token: Option<String>,
}

/// What to put in a token.
pub struct Spec<'a> {
    pub service_id: &'a str,
    pub subject: &'a str,
    pub transient: bool,
    pub scope: &'a str,
    pub audience: &'a str,
    pub description: Option<&'a str>,
    /// `None`: never expires.
    pub expires_in: Option<u64>,
    pub refreshable: bool,
    pub reference: bool,
    pub revocable: bool,
    pub now: u64,
    /// More members of the `ext` claim (pairing tokens carry their URLs there).
    pub ext: Vec<(&'a str, String)>,
    /// `created_seq` of the subject's user record, so a later user of the same name is
    /// not taken for this one.
    pub user_seq: Option<u64>,
}

fn random_b64(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::getrandom(&mut bytes).expect("the OS has randomness");
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn hash_hex(secret: &str) -> String {
    blake3::hash(secret.as_bytes()).to_hex().to_string()
}

/// Sign a token with the active key. `None` when the server has no signing key.
pub fn mint(keys: &KeyRing, kid: &str, spec: &Spec) -> Option<Minted> {
    let key = keys.signing_key(kid)?;
    let token_id = ulid::Ulid::new().to_string().to_lowercase();
    let mut ext = serde_json::Map::new();
    if spec.revocable {
        ext.insert("revocable".into(), "true".into());
    }
    if spec.transient {
        ext.insert("transient".into(), "true".into());
    }
    if let Some(n) = spec.user_seq {
        ext.insert("user_seq".into(), n.to_string().into());
    }
    for (k, v) in &spec.ext {
        ext.insert((*k).into(), v.clone().into());
    }
    let claims = Claims {
        sub: format!("{}/users/{}", spec.service_id, spec.subject),
        scp: spec.scope.to_string(),
        aud: spec.audience.to_string(),
        iss: spec.service_id.to_string(),
        iat: spec.now,
        exp: spec.expires_in.map(|e| spec.now.saturating_add(e)),
        jti: token_id.clone(),
        ext: (!ext.is_empty()).then(|| serde_json::Value::Object(ext).to_string()),
    };
    let access_token = jwt::sign(&claims, kid, &key);
    let refresh_token = spec.refreshable.then(|| random_b64(32));
    let reference_token = spec.reference.then(|| random_b64(96));
    debug_assert!(reference_token
        .as_ref()
        .is_none_or(|r| r.len() == REFERENCE_TOKEN_LEN));
    let record = TokenIssued {
        token_id,
        subject: spec.subject.to_string(),
        transient: spec.transient,
        scope: spec.scope.to_string(),
        audience: spec.audience.to_string(),
        issued_at: spec.now,
        expires_at: claims.exp,
        refreshable: spec.refreshable,
        revocable: spec.revocable,
        description: spec.description.map(str::to_string),
        kid: kid.to_string(),
        access_hash: hash_hex(&access_token),
        refresh_hash: refresh_token.as_deref().map(hash_hex),
        reference_hash: reference_token.as_deref().map(hash_hex),
    };
    Some(Minted {
        record,
        access_token,
        refresh_token,
        reference_token,
    })
}
