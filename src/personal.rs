//! Personal data (e-mail addresses, SCIM name parts, addresses, …) is encrypted before
//! it enters an event, with a key per user kept *outside* the event log, as a file in
//! `<data-dir>/keys/personal/`. Deleting a user with `?purge=true` deletes that file
//! (crypto-shredding): the chain still verifies, the events are untouched, and the
//! personal data in them, in snapshots and in exports can no longer be read. Reads
//! (also of the past) then show `[erased]`.
//!
//! A value is stored as `enc:v1:<key id>:<base64url(nonce ‖ ciphertext)>`
//! (XChaCha20-Poly1305, a random 24-byte nonce). Values written before this existed are
//! plain text and are shown as they are.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

const PREFIX: &str = "enc:v1:";
/// What a read shows for personal data whose key was destroyed.
pub const ERASED: &str = "[erased]";

pub struct PersonalKeys {
    dir: PathBuf,
    cache: RwLock<HashMap<String, Option<[u8; 32]>>>,
    /// Moves on every destroyed key: what was decrypted before may now read as erased
    /// (caches of decrypted renderings compare it).
    epoch: std::sync::atomic::AtomicU64,
}

#[derive(Debug, thiserror::Error)]
#[error("personal data keys: {0}")]
pub struct KeyStoreError(String);

/// The key id a stored value was encrypted with, if it is encrypted.
pub fn key_id(value: &str) -> Option<&str> {
    value.strip_prefix(PREFIX)?.split_once(':').map(|(k, _)| k)
}

impl PersonalKeys {
    pub fn open(data_dir: &Path) -> Result<PersonalKeys, KeyStoreError> {
        let dir = data_dir.join("keys").join("personal");
        std::fs::create_dir_all(&dir).map_err(|e| KeyStoreError(e.to_string()))?;
        Ok(PersonalKeys {
            dir,
            cache: RwLock::new(HashMap::new()),
            epoch: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn valid_id(id: &str) -> bool {
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
    }

    fn key(&self, id: &str) -> Option<[u8; 32]> {
        if !Self::valid_id(id) {
            return None;
        }
        if let Some(k) = self.cache.read().unwrap_or_else(|p| p.into_inner()).get(id) {
            return *k;
        }
        let path = self.dir.join(id);
        let k = std::fs::read_to_string(&path)
            .ok()
            // Another node of a shared log may have made it.
            .or_else(|| crate::keys::vault::fetch(&path))
            .and_then(|t| URL_SAFE_NO_PAD.decode(t.trim()).ok())
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok());
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), k);
        k
    }

    /// A new key for a user: a 0600 file, written before any value that needs it.
    pub fn create(&self) -> Result<String, KeyStoreError> {
        let id = ulid::Ulid::new().to_string().to_lowercase();
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).map_err(|e| KeyStoreError(e.to_string()))?;
        crate::app::write_private(&self.dir.join(&id), &URL_SAFE_NO_PAD.encode(key))
            .map_err(|e| KeyStoreError(e.to_string()))?;
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), Some(key));
        Ok(id)
    }

    /// A key with a fixed name (for server secrets such as webhook secrets), made on
    /// first use.
    pub fn named(&self, name: &str) -> Result<String, KeyStoreError> {
        if !Self::valid_id(name) {
            return Err(KeyStoreError(format!("`{name}` is not a key name")));
        }
        if self.key(name).is_none() {
            let mut key = [0u8; 32];
            getrandom::getrandom(&mut key).map_err(|e| KeyStoreError(e.to_string()))?;
            crate::app::write_private(&self.dir.join(name), &URL_SAFE_NO_PAD.encode(key))
                .map_err(|e| KeyStoreError(e.to_string()))?;
            self.cache
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.to_string(), Some(key));
        }
        Ok(name.to_string())
    }

    /// Encrypt `plain` with key `id`.
    pub fn encrypt(&self, id: &str, plain: &str) -> Result<String, KeyStoreError> {
        let key = self
            .key(id)
            .ok_or_else(|| KeyStoreError(format!("key `{id}` does not exist")))?;
        let cipher = XChaCha20Poly1305::new((&key).into());
        let mut nonce = [0u8; 24];
        getrandom::getrandom(&mut nonce).map_err(|e| KeyStoreError(e.to_string()))?;
        let ct = cipher
            .encrypt(XNonce::from_slice(&nonce), plain.as_bytes())
            .map_err(|_| KeyStoreError("encryption failed".into()))?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        Ok(format!("{PREFIX}{id}:{}", URL_SAFE_NO_PAD.encode(blob)))
    }

    /// The plain text of a stored value: itself when it is not encrypted, `None` when
    /// its key was destroyed (or it was tampered with).
    pub fn decrypt(&self, stored: &str) -> Option<String> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Some(stored.to_string());
        };
        let (id, data) = rest.split_once(':')?;
        let key = self.key(id)?;
        let blob = URL_SAFE_NO_PAD.decode(data).ok()?;
        if blob.len() < 24 {
            return None;
        }
        let cipher = XChaCha20Poly1305::new((&key).into());
        let plain = cipher
            .decrypt(XNonce::from_slice(&blob[..24]), &blob[24..])
            .ok()?;
        String::from_utf8(plain).ok()
    }

    /// [`decrypt`](Self::decrypt), or [`ERASED`].
    pub fn show(&self, stored: &str) -> String {
        self.decrypt(stored).unwrap_or_else(|| ERASED.to_string())
    }

    /// Destroy a key: every value encrypted with it becomes unreadable, everywhere.
    pub fn destroy(&self, id: &str) -> Result<(), KeyStoreError> {
        if !Self::valid_id(id) {
            return Ok(());
        }
        // Everywhere: the other nodes of a shared log must not find it again (and drop
        // their copies: `keys::vault::watch_destroyed`).
        crate::keys::vault::destroyed(&self.dir.join(id))
            .map_err(|e| KeyStoreError(e.to_string()))?;
        self.destroy_here(id)
    }

    /// [`destroy`](Self::destroy) on this node only (another node destroyed it).
    pub fn destroy_here(&self, id: &str) -> Result<(), KeyStoreError> {
        if !Self::valid_id(id) {
            return Ok(());
        }
        let path = self.dir.join(id);
        if path.exists() {
            // Overwrite before unlinking, so the key's bytes do not linger in the file's
            // blocks; then make the removal itself durable.
            std::fs::write(&path, [b'0'; 44]).map_err(|e| KeyStoreError(e.to_string()))?;
            std::fs::remove_file(&path).map_err(|e| KeyStoreError(e.to_string()))?;
            if let Ok(d) = std::fs::File::open(&self.dir) {
                let _ = d.sync_all();
            }
        }
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), None);
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// How many keys this process destroyed (see the field).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypt_decrypt_destroy() {
        let dir = tempfile::tempdir().unwrap();
        let keys = PersonalKeys::open(dir.path()).unwrap();
        let id = keys.create().unwrap();
        let stored = keys.encrypt(&id, "alice@example.com").unwrap();
        assert!(!stored.contains("alice"));
        assert_eq!(key_id(&stored), Some(id.as_str()));
        assert_eq!(keys.decrypt(&stored).as_deref(), Some("alice@example.com"));
        assert_eq!(
            keys.decrypt("plain@old.example").as_deref(),
            Some("plain@old.example")
        );
        keys.destroy(&id).unwrap();
        assert_eq!(keys.show(&stored), ERASED);
        // A fresh store (another process) cannot read it either.
        let again = PersonalKeys::open(dir.path()).unwrap();
        assert_eq!(again.decrypt(&stored), None);
    }
}
