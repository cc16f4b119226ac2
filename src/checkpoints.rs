//! Signed checkpoints: the head position and chain hash of the log, signed with the
//! server's active token-signing key, so that an export can be proven to be a prefix of
//! what this server wrote. Recorded in the log by `Command::RecordCheckpoint`.

use crate::keys::KeyRing;
use crate::log::EventLog;
use gatehouse_projections::State;
use gatehouse_schemas::Checkpoint;

/// Sign a checkpoint of the log at `state`'s position. `state` must be a state the log
/// has flushed (the shared one), or the hash would not be found.
pub fn sign(state: &State, keys: &KeyRing, log: &EventLog) -> Result<Checkpoint, String> {
    let position = state.seq;
    let hash = log
        .hash_at(position)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("position {position} is not in the log"))?;
    sign_position(state, keys, position, &hash, state.time_ms)
}

/// What [`check`] found: how many checkpoints hold, and the last position a checkpoint
/// signed by the given key vouches for (with the chain, every event up to it).
pub struct Checked {
    pub verified: usize,
    pub proven_to: Option<u64>,
}

/// Every checkpoint names the hash the chain really has at its position and carries a
/// valid signature: by `key` when given or by the log's own key of its kid (a
/// checkpoint signed before a rotation is by another key, and proves nothing for
/// `key`), else by the log's own key.
pub fn check(
    state: &State,
    hash_at: impl Fn(u64) -> Option<[u8; 32]>,
    key: Option<&ed25519_dalek::VerifyingKey>,
) -> Result<Checked, String> {
    let mut proven_to = None;
    for c in state.checkpoints.iter() {
        let actual = hash_at(c.position).map(|h| crate::hex(&h));
        if actual.as_deref() != Some(c.head_hash.as_str()) {
            return Err(format!(
                "checkpoint at position {} does not match the chain (checkpoint {}, chain {})",
                c.position,
                c.head_hash,
                actual.unwrap_or_else(|| "missing".into())
            ));
        }
        match signature_holds(state, c, key) {
            Ok(()) if key.is_some() => proven_to = proven_to.max(Some(c.position)),
            Ok(()) => {}
            Err(e) => {
                if key.is_none() || signature_holds(state, c, None).is_err() {
                    return Err(e);
                }
            }
        }
    }
    Ok(Checked {
        verified: state.checkpoints.len(),
        proven_to,
    })
}

/// A checkpoint's signature verifies: by `key` when given, else by the log's own key of
/// its kid.
pub fn signature_holds(
    state: &State,
    c: &Checkpoint,
    key: Option<&ed25519_dalek::VerifyingKey>,
) -> Result<(), String> {
    use base64::Engine;
    let public = match key {
        Some(k) => Some(*k),
        None => state
            .keys
            .signing
            .get(&c.kid)
            .and_then(|b| crate::keys::public_from_b64(b)),
    };
    let public = public.ok_or(format!(
        "checkpoint at position {}: unknown signing key `{}`",
        c.position, c.kid
    ))?;
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&c.signature)
        .ok()
        .and_then(|b| ed25519_dalek::Signature::from_slice(&b).ok())
        .ok_or(format!(
            "checkpoint at position {}: malformed signature",
            c.position
        ))?;
    public.verify_strict(&c.message(), &sig).map_err(|_| {
        format!(
            "checkpoint at position {}: the signature does not verify",
            c.position
        )
    })
}

/// Sign `position` with `hash` (a backup's last record) by the active key, as a
/// checkpoint that is not recorded in the log: what proves a backup file is this
/// server's own.
pub fn sign_position(
    state: &State,
    keys: &KeyRing,
    position: u64,
    hash: &[u8; 32],
    time_ms: u64,
) -> Result<Checkpoint, String> {
    use base64::Engine;
    let kid = state
        .keys
        .active
        .clone()
        .ok_or_else(|| "the server has no signing key".to_string())?;
    let key = keys
        .signing_key(&kid)
        .ok_or_else(|| format!("the private key `{kid}` is missing"))?;
    let mut c = Checkpoint {
        position,
        head_hash: crate::hex(hash),
        time_ms,
        service_id: state.service_id.clone().unwrap_or_default(),
        kid,
        signature: String::new(),
    };
    c.signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.sign(&c.message()));
    Ok(c)
}
