//! Keys shared by the nodes of a shared log (`--store` with `--master-key-file`).
//!
//! Every private key file under `<data-dir>/keys/` (token-signing keys, signed-URL keys,
//! personal-data keys, the webhook-secret key) is also kept in PostgreSQL, table
//! `gatehouse_keys(name, sealed, destroyed)`, sealed with XChaCha20-Poly1305 under a
//! key derived from the master key file that every node reads (never in the log, never in
//! the database in clear). Written through when a node makes a key, before the event that
//! needs it is committed; read through when a node misses one; at start-up a node takes
//! every key it lacks and gives every key the others lack. A destroyed key (a purge, a
//! retired signing key) leaves a tombstone, so no node brings it back.
//!
//! The files stay the working copy (the code that uses keys is unchanged); this module
//! is found by path: a vault serves the data directory it was opened for, so several
//! servers in one process (tests) do not share one.

use crate::log::postgres::PgLog;
use crate::log::LogError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

pub struct KeyVault {
    data_dir: PathBuf,
    seal: [u8; 32],
    pg: Mutex<PgLog>,
}

static VAULTS: RwLock<Vec<Arc<KeyVault>>> = RwLock::new(Vec::new());

/// The vault serving `path` (a file under some server's `<data-dir>/keys/`), if any.
fn vault_for(path: &Path) -> Option<(Arc<KeyVault>, String)> {
    let vaults = VAULTS.read().unwrap_or_else(|p| p.into_inner());
    vaults.iter().find_map(|v| {
        let rel = path.strip_prefix(&v.data_dir).ok()?;
        rel.starts_with("keys")
            .then(|| (v.clone(), rel.to_string_lossy().replace('\\', "/")))
    })
}

/// Run a database call off any async runtime's thread: the sync client starts a runtime
/// of its own, which tokio forbids inside another.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().expect("a vault call does not panic"))
}

fn db(e: postgres::Error) -> LogError {
    LogError::Database(e.to_string())
}

impl KeyVault {
    /// The master key file: any secret of at least 32 bytes (e.g. `head -c 32
    /// /dev/urandom`); the sealing key is derived from it.
    pub fn read_master(path: &Path) -> Result<[u8; 32], String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read the master key file {}: {e}", path.display()))?;
        if bytes.len() < 32 {
            return Err(format!(
                "the master key file {} holds fewer than 32 bytes",
                path.display()
            ));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
                tracing::warn!(
                    file = %path.display(),
                    "the master key file is readable by others: it opens every private key in the database (chmod 600 it)"
                );
            }
        }
        Ok(blake3::derive_key("gatehouse key vault v1", &bytes))
    }

    /// Open the vault for `data_dir`, exchange keys with it, and serve that data
    /// directory's key files from now on. Blocking: call it off the async threads.
    pub fn open(pg: PgLog, master: [u8; 32], data_dir: &Path) -> Result<(), LogError> {
        let vault = Arc::new(KeyVault {
            data_dir: data_dir.to_path_buf(),
            seal: master,
            pg: Mutex::new(pg),
        });
        vault.exchange()?;
        VAULTS
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(vault);
        Ok(())
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.seal).into())
    }

    fn seal(&self, name: &str, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 24];
        getrandom::getrandom(&mut nonce).expect("the OS has randomness");
        let ct = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: name.as_bytes(),
                },
            )
            .expect("sealing does not fail");
        [nonce.as_slice(), &ct].concat()
    }

    fn open_sealed(&self, name: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < 24 {
            return None;
        }
        self.cipher()
            .decrypt(
                XNonce::from_slice(&sealed[..24]),
                Payload {
                    msg: &sealed[24..],
                    aad: name.as_bytes(),
                },
            )
            .ok()
    }

    /// Start-up: take what this node lacks (and drop what was destroyed), give what the
    /// others lack.
    fn exchange(&self) -> Result<(), LogError> {
        let rows = {
            let mut pg = self.pg.lock().unwrap_or_else(|p| p.into_inner());
            pg.client()?
                .query("SELECT name, sealed, destroyed FROM gatehouse_keys", &[])
                .map_err(db)?
        };
        let mut known = std::collections::HashSet::new();
        for row in rows {
            let name: String = row.get(0);
            let sealed: Vec<u8> = row.get(1);
            let destroyed: bool = row.get(2);
            let path = self.data_dir.join(&name);
            known.insert(name.clone());
            if destroyed {
                if path.exists() {
                    let _ = std::fs::write(&path, [b'0'; 44]);
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            let Some(plain) = self.open_sealed(&name, &sealed) else {
                return Err(LogError::Database(format!(
                    "the shared key `{name}` does not open with this master key: every node needs the same master key file"
                )));
            };
            if let Ok(here) = std::fs::read_to_string(&path) {
                if here.trim().as_bytes() == plain.trim_ascii() {
                    continue;
                }
                // A personal-data key (the webhook-secret key, the LDAP one) may have
                // sealed data in the log: which copy is the key is not this node's to
                // guess, and taking the shared one destroyed the only copy of the one
                // that sealed it. Nothing is changed; the start stops, saying what to do.
                if name.starts_with("keys/personal/") {
                    return Err(LogError::Database(format!(
                        "this node's `{name}` differs from the shared copy another node made: \
                         either may have sealed data in the log, so neither is replaced. If this \
                         node's data directory is the one whose data the log holds (the old server), \
                         stop the other nodes, remove the shared copy (DELETE FROM gatehouse_keys \
                         WHERE name = '{name}'), remove `{name}` from the other nodes' data \
                         directories and start this node first; otherwise remove `{name}` here \
                         (see README, Several nodes)",
                        name = name
                    )));
                }
                // A signed-URL key: the shared copy is the key; a file that differs was
                // made here by a node that lost a race to make it (and signed URLs no
                // other node accepts: they fail, nothing else is lost).
                tracing::warn!(key = %name, "this node's copy of a shared key differed from the shared one; taking the shared one");
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| LogError::Database(e.to_string()))?;
            }
            crate::app::write_private_local(&path, &String::from_utf8_lossy(&plain))
                .map_err(|e| LogError::Database(e.to_string()))?;
        }
        for dir in [
            self.data_dir.join("keys"),
            self.data_dir.join("keys/personal"),
        ] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if !path.is_file() {
                    continue;
                }
                let Ok(rel) = path.strip_prefix(&self.data_dir) else {
                    continue;
                };
                let name = rel.to_string_lossy().replace('\\', "/");
                // Keys a server made on its own log share one file: each is a key of
                // its own here, under the name its file would have had.
                if path.file_name().and_then(|n| n.to_str()) == Some(crate::personal::STORE) {
                    for (id, key) in crate::personal::stored_keys(&path) {
                        let name = format!("keys/personal/{id}");
                        if !known.contains(&name) {
                            // Ids are unique: no other node holds one of these.
                            self.put(&name, &key)?;
                        }
                    }
                    continue;
                }
                if known.contains(&name) {
                    continue;
                }
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| LogError::Database(e.to_string()))?;
                if let Some(kept) = self.put(&name, text.trim())? {
                    tracing::warn!(key = %name, "another node made this shared key first; taking its copy");
                    crate::app::write_private_local(&path, kept.trim())
                        .map_err(|e| LogError::Database(e.to_string()))?;
                }
            }
        }
        Ok(())
    }

    /// Keep `plain` as key `name` unless a node was first: then the key kept is that
    /// node's, returned (two nodes making the webhooks key or signed-URL key N at once
    /// each kept its own, and the one whose value lost signed what the others refused).
    fn put(&self, name: &str, plain: &str) -> Result<Option<String>, LogError> {
        let sealed = self.seal(name, plain.as_bytes());
        let mut pg = self.pg.lock().unwrap_or_else(|p| p.into_inner());
        let client = pg.client()?;
        let inserted = client
            .execute(
                "INSERT INTO gatehouse_keys (name, sealed) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&name, &sealed],
            )
            .map_err(db)?;
        if inserted == 1 {
            return Ok(None);
        }
        let row = client
            .query_one(
                "SELECT sealed, destroyed FROM gatehouse_keys WHERE name = $1",
                &[&name],
            )
            .map_err(db)?;
        if row.get::<_, bool>(1) {
            return Err(LogError::Database(format!(
                "the shared key `{name}` was destroyed and cannot be made again"
            )));
        }
        let kept = self
            .open_sealed(name, row.get::<_, &[u8]>(0))
            .and_then(|p| String::from_utf8(p).ok())
            .ok_or_else(|| {
                LogError::Database(format!(
                    "the shared key `{name}` does not open with this master key: every node needs the same master key file"
                ))
            })?;
        Ok((kept.trim() != plain.trim()).then_some(kept))
    }

    fn get(&self, name: &str) -> Option<String> {
        let row = {
            let mut pg = self.pg.lock().unwrap_or_else(|p| p.into_inner());
            let client = pg.client().ok()?;
            client
                .query_opt(
                    "SELECT sealed FROM gatehouse_keys WHERE name = $1 AND NOT destroyed",
                    &[&name],
                )
                .ok()??
        };
        let plain = self.open_sealed(name, row.get::<_, &[u8]>(0))?;
        String::from_utf8(plain).ok()
    }

    fn destroy(&self, name: &str) -> Result<(), LogError> {
        let mut pg = self.pg.lock().unwrap_or_else(|p| p.into_inner());
        pg.client()?
            .execute(
                "INSERT INTO gatehouse_keys (name, sealed, destroyed) VALUES ($1, ''::BYTEA, true)
                 ON CONFLICT (name) DO UPDATE SET sealed = ''::BYTEA, destroyed = true",
                &[&name],
            )
            .map_err(db)?;
        Ok(())
    }
}

/// Whether a vault keeps the key files under `path` (then each is written through).
pub fn serves(path: &Path) -> bool {
    vault_for(path).is_some()
}

/// A key file is about to be written: give it to the other nodes (before it is used).
/// `Some` is the key another node made first under that name, to be written instead.
pub fn written(path: &Path, contents: &str) -> std::io::Result<Option<String>> {
    let Some((vault, name)) = vault_for(path) else {
        return Ok(None);
    };
    off_runtime(|| vault.put(&name, contents.trim())).map_err(std::io::Error::other)
}

/// A key file is missing here: another node may have made it. Written locally when found.
pub fn fetch(path: &Path) -> Option<String> {
    let (vault, name) = vault_for(path)?;
    let text = off_runtime(|| vault.get(&name))?;
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = crate::app::write_private_local(path, &text);
    Some(text)
}

/// A key was destroyed here: everywhere, for good.
pub fn destroyed(path: &Path) -> std::io::Result<()> {
    let Some((vault, name)) = vault_for(path) else {
        return Ok(());
    };
    off_runtime(|| vault.destroy(&name)).map_err(std::io::Error::other)
}

/// Several nodes: call `destroy` with the id of every personal-data key another node
/// destroyed (a purge), within about a second, for as long as `personal` lives — so a
/// purged user's data reads `[erased]` on every node, not only on the one that purged.
pub fn watch_destroyed(data_dir: &Path, personal: std::sync::Weak<crate::personal::PersonalKeys>) {
    let vault = {
        let vaults = VAULTS.read().unwrap_or_else(|p| p.into_inner());
        vaults.iter().find(|v| v.data_dir == data_dir).cloned()
    };
    let Some(vault) = vault else {
        return;
    };
    std::thread::Builder::new()
        .name("gatehouse-key-watch".into())
        .spawn(move || {
            let mut seen = std::collections::HashSet::new();
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                let Some(personal) = personal.upgrade() else {
                    return;
                };
                let names: Vec<String> = {
                    let mut pg = vault.pg.lock().unwrap_or_else(|p| p.into_inner());
                    let Ok(client) = pg.client() else { continue };
                    match client.query(
                        "SELECT name FROM gatehouse_keys WHERE destroyed AND name LIKE 'keys/personal/%'",
                        &[],
                    ) {
                        Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
                        Err(_) => {
                            pg.drop_connection();
                            continue;
                        }
                    }
                };
                for name in names {
                    if seen.insert(name.clone()) {
                        let id = name.trim_start_matches("keys/personal/");
                        if let Err(e) = personal.destroy_here(id) {
                            tracing::warn!(error = %e, "cannot destroy a key another node destroyed");
                        }
                    }
                }
            }
        })
        .expect("spawn the key watch thread");
}

/// Base64url text of 32 bytes, as key files hold them.
pub fn parse32(text: &str) -> Option<[u8; 32]> {
    URL_SAFE_NO_PAD
        .decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
}
