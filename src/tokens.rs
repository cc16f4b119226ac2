//! Minting access tokens: claims, signature, refresh and reference tokens, and the record
//! (hashes only) that goes into the log. The rules about *who* may ask for *what* live in
//! `http::tokens`, next to the request they judge.

use crate::auth::jwt::{self, ClaimsRef};
use crate::keys::KeyRing;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gatehouse_schemas::TokenIssued;
use std::sync::Arc;

/// Scope of pairing tokens: `internal:service-trust/pairing/<use case>:x`.
pub const PAIRING_SCOPE_PREFIX: &str = "internal:service-trust/pairing/";

/// Reference tokens are 128 characters (seed 003): 96 random bytes in base64url.
pub const REFERENCE_TOKEN_LEN: usize = 128;

/// A freshly minted token: the secrets for the caller (once) and the record for the log.
pub struct Minted {
    /// Shared with the command and, once committed, with the event and the read model.
    pub record: Arc<TokenIssued>,
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
    /// Issued by its subject for itself (see `TokenIssued::self_issued`): said in the
    /// `ext` claim too, for tokens kept without a record.
    pub self_issued: bool,
}

/// The ids of the token records in `state` that are past use at `now` (unix seconds;
/// see [`gatehouse_projections::past_use`]).
pub fn past_use_ids(state: &gatehouse_projections::State, now: u64, grace: u64) -> Vec<String> {
    state
        .tokens
        .by_id
        .values()
        .filter(|t| gatehouse_projections::past_use(t, now, grace))
        .map(|t| t.token_id.clone())
        .collect()
}

fn random_b64(n: usize) -> String {
    // The thread's CSPRNG (ChaCha12, reseeded from the OS): a token secret per request
    // without a system call each.
    let mut bytes = vec![0u8; n];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn hash_hex(secret: &str) -> String {
    blake3::hash(secret.as_bytes()).to_hex().to_string()
}

/// A token id: a ULID. A short-lived token is never recorded (issue hundreds a second for
/// an hour and a record of each would be gigabytes), so its id carries the mark of one:
/// its lowest 24 bits are a checksum of the rest ([`non_revocable_check`]), which lets a
/// revocation answer "not revocable" instead of "unknown". (The mark was the lowest bit
/// alone: half of all made-up or mistyped ids read as this server's short-lived tokens,
/// and a clean-up script got 400 or 204 by the id's last character.)
fn new_token_id(revocable: bool) -> String {
    let random = ulid::Ulid::new().0;
    let id = if revocable {
        random
    } else {
        let rest = random & !CHECK_MASK;
        rest | non_revocable_check(rest)
    };
    crate::ids::lowercase(ulid::Ulid(id))
}

/// The bits of a token id that hold the mark of a short-lived token.
const CHECK_MASK: u128 = (1 << 24) - 1;

/// The mark of a short-lived token's id: 24 bits of a hash of the id's other bits (not a
/// secret: it says what the id says, and reveals nothing about the token).
fn non_revocable_check(rest: u128) -> u128 {
    let mut h = blake3::Hasher::new_derive_key("gatehouse 2026 token id of a token not recorded");
    h.update(&rest.to_be_bytes());
    let b = h.finalize();
    let b = b.as_bytes();
    u128::from(u32::from_be_bytes([0, b[0], b[1], b[2]]))
}

/// Whether `id` is the id of a token minted here as not revocable (see `new_token_id`);
/// another id passes one time in 16 million. Callers ask only after the id was not
/// found among the records.
pub fn id_marks_non_revocable(id: &str) -> bool {
    ulid::Ulid::from_string(&id.to_ascii_uppercase())
        .is_ok_and(|u| u.0 & CHECK_MASK == non_revocable_check(u.0 & !CHECK_MASK))
}

/// JFrog's `ext` claim, a JSON object of strings in a string: what serde_json writes for
/// a `Map` of them (its keys in order, the last of equal keys kept), written here
/// without building one (a map, its keys and values were six allocations a token).
fn ext_claim(spec: &Spec) -> Option<String> {
    let mut seq = itoa::Buffer::new();
    let mut members: Vec<(&str, &str)> = Vec::with_capacity(3 + spec.ext.len());
    if spec.revocable {
        members.push(("revocable", "true"));
    }
    if spec.transient {
        members.push(("transient", "true"));
    }
    if let Some(n) = spec.user_seq {
        members.push(("user_seq", seq.format(n)));
    }
    if spec.self_issued {
        members.push(("self_issued", "true"));
    }
    members.extend(spec.ext.iter().map(|(k, v)| (*k, v.as_str())));
    if members.is_empty() {
        return None;
    }
    // Stable: reversed first, each key's last member leads its run and is the one kept.
    members.reverse();
    members.sort_by(|a, b| a.0.cmp(b.0));
    members.dedup_by(|later, kept| later.0 == kept.0);
    let mut out = Vec::with_capacity(
        2 + members
            .iter()
            .map(|(k, v)| k.len() + v.len() + 6)
            .sum::<usize>(),
    );
    out.push(b'{');
    for (i, (k, v)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Keys escaped too: a pairing's members are not constants.
        crate::json::string(&mut out, k);
        out.push(b':');
        crate::json::string(&mut out, v);
    }
    out.push(b'}');
    // Whole strings and ASCII punctuation only: valid UTF-8.
    String::from_utf8(out).ok()
}

/// Sign a token with the active key. `None` when the server has no signing key.
pub fn mint(keys: &KeyRing, kid: &str, spec: &Spec) -> Option<Minted> {
    let key = keys.signing_key(kid)?;
    let token_id = new_token_id(spec.revocable);
    // Joined, not `format!`: the formatter's machinery cost a token more than the copy.
    let sub = [spec.service_id, "/users/", spec.subject].concat();
    let ext = ext_claim(spec);
    // Borrowed: the request's strings are signed as they are, not copied into a `Claims`.
    let expires_at = spec.expires_in.map(|e| spec.now.saturating_add(e));
    let claims = ClaimsRef {
        sub: &sub,
        scp: spec.scope,
        aud: spec.audience,
        iss: spec.service_id,
        iat: spec.now,
        exp: expires_at,
        jti: &token_id,
        ext: ext.as_deref(),
    };
    let access_token = jwt::sign(claims, kid, &key);
    let refresh_token = spec.refreshable.then(|| random_b64(32));
    let reference_token = spec.reference.then(|| random_b64(96));
    debug_assert!(reference_token
        .as_ref()
        .is_none_or(|r| r.len() == REFERENCE_TOKEN_LEN));
    let record = Arc::new(TokenIssued {
        token_id,
        subject: spec.subject.to_string(),
        transient: spec.transient,
        scope: spec.scope.to_string(),
        audience: spec.audience.to_string(),
        issued_at: spec.now,
        expires_at,
        refreshable: spec.refreshable,
        revocable: spec.revocable,
        description: spec.description.map(str::to_string),
        kid: kid.to_string(),
        access_hash: hash_hex(&access_token),
        refresh_hash: refresh_token.as_deref().map(hash_hex),
        reference_hash: reference_token.as_deref().map(hash_hex),
        self_issued: spec.self_issued,
        force_revocable: spec.ext.iter().any(|(k, _)| *k == "force_revocable"),
    });
    Some(Minted {
        record,
        access_token,
        refresh_token,
        reference_token,
    })
}

#[cfg(test)]
mod tests {
    use super::{ext_claim, id_marks_non_revocable, new_token_id, Spec};

    /// `ext` is what serde_json writes for the map of its members, as it was built
    /// before: keys in order, a later member of the same key replacing the earlier one
    /// (a pairing's own members may name `revocable` too), escapes included.
    #[test]
    fn the_ext_claim_is_serde_json_s_map_of_its_members() {
        let extras: [&[(&str, &str)]; 5] = [
            &[],
            &[("base_url", "https://a.example/x")],
            &[("revocable", "false"), ("a\"q", "v\n\u{1}")],
            &[
                ("zz", "1"),
                ("transient", "maybe"),
                ("zz", "2"),
                ("aa", "é"),
            ],
            &[("user_seq", "7"), ("user_seq", "8")],
        ];
        for bits in 0..16u8 {
            for extra in extras {
                let spec = Spec {
                    service_id: "jfac@x",
                    subject: "alice",
                    transient: bits & 2 == 2,
                    scope: "applied-permissions/user",
                    audience: "*@*",
                    description: None,
                    expires_in: None,
                    refreshable: false,
                    reference: false,
                    revocable: bits & 1 == 1,
                    now: 1,
                    ext: extra.iter().map(|(k, v)| (*k, v.to_string())).collect(),
                    user_seq: (bits & 4 == 4).then_some(12_345),
                    self_issued: bits & 8 == 8,
                };
                let mut map = serde_json::Map::new();
                if spec.revocable {
                    map.insert("revocable".into(), "true".into());
                }
                if spec.transient {
                    map.insert("transient".into(), "true".into());
                }
                if let Some(n) = spec.user_seq {
                    map.insert("user_seq".into(), n.to_string().into());
                }
                if spec.self_issued {
                    map.insert("self_issued".into(), "true".into());
                }
                for (k, v) in &spec.ext {
                    map.insert((*k).into(), v.clone().into());
                }
                let expected = (!map.is_empty()).then(|| serde_json::to_string(&map).unwrap());
                assert_eq!(ext_claim(&spec), expected, "bits {bits}, extra {extra:?}");
            }
        }
    }

    #[test]
    fn a_token_id_says_whether_the_token_is_revocable() {
        for _ in 0..1000 {
            let revocable = new_token_id(true);
            let not = new_token_id(false);
            assert_eq!(revocable.len(), 26, "a ULID, as before");
            assert!(!id_marks_non_revocable(&revocable), "{revocable}");
            assert!(id_marks_non_revocable(&not), "{not}");
        }
        assert!(!id_marks_non_revocable("not-a-ulid"));
        assert!(!id_marks_non_revocable(""));
    }
}
