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
    use base64::Engine;
    use ed25519_dalek::Signer;
    let position = state.seq;
    let time_ms = state.time_ms;
    let service_id = state.service_id.clone().unwrap_or_default();
    let kid = state
        .keys
        .active
        .clone()
        .ok_or_else(|| "the server has no signing key".to_string())?;
    let key = keys
        .signing_key(&kid)
        .ok_or_else(|| format!("the private key `{kid}` is missing"))?;
    let hash = log
        .hash_at(position)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("position {position} is not in the log"))?;
    let mut c = Checkpoint {
        position,
        head_hash: crate::hex(&hash),
        time_ms,
        service_id,
        kid,
        signature: String::new(),
    };
    c.signature =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.sign(&c.message()).to_bytes());
    Ok(c)
}
