//! Password hashing: argon2id with the crate's defaults (m=19 MiB, t=2, p=1, the OWASP
//! recommendation). Slow on purpose; callers run it off the async threads.
//!
//! The 19 MiB of argon2 memory come from a small pool of buffers, one per core, lent
//! for the length of one hash and waited for when all are lent. Allocating them afresh
//! for every hash (as `Argon2::hash_password` does) let each blocking thread's allocator
//! keep a freed 19 MiB block: the server's memory rose by that much with every thread
//! the blocking pool started, and the soak's memory was never flat. With the pool, argon2
//! holds at most one buffer per core, for the life of the process, and never runs more
//! hashes at once than there are cores.

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::{Condvar, Mutex, OnceLock};

/// Hash a password into a PHC string (`$argon2id$v=19$...`) with a fresh random salt.
pub fn hash(password: &str) -> String {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).expect("the OS has randomness");
    let salt_string = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    let params = Params::default();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    with_memory(params.block_count(), |blocks| {
        Argon2::default().hash_password_into_with_memory(
            password.as_bytes(),
            &salt,
            &mut out,
            blocks,
        )
    })
    .expect("argon2 with default parameters accepts any password up to 4 GiB");
    PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).expect("the default parameters print"),
        salt: Some(salt_string.as_salt()),
        hash: Some(Output::new(&out).expect("32 bytes is a valid output")),
    }
    .to_string()
}

/// Check a password against a PHC string. A malformed hash never verifies.
pub fn verify(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let computed = with_memory(params.block_count(), |blocks| {
        argon2.hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, blocks)
    });
    // `Output`'s equality is constant-time.
    computed.is_ok() && Output::new(&out).is_ok_and(|o| o == expected)
}

/// Argon2's working memory: buffers of the default size, at most one per core lent at once.
struct MemoryPool {
    /// Buffers not lent, and how many are lent.
    inner: Mutex<(Vec<Vec<Block>>, usize)>,
    returned: Condvar,
    limit: usize,
}

fn pool() -> &'static MemoryPool {
    static POOL: OnceLock<MemoryPool> = OnceLock::new();
    POOL.get_or_init(|| MemoryPool {
        inner: Mutex::new((Vec::new(), 0)),
        returned: Condvar::new(),
        limit: std::thread::available_parallelism().map_or(2, |n| n.get()),
    })
}

/// Run `f` with `blocks` blocks of argon2 memory, waiting for a buffer when every core
/// already has one. A hash stored with more memory than the default (one imported from
/// elsewhere) gets a buffer of its own for that one computation.
fn with_memory<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    let pool = pool();
    let mut buffer = {
        let mut inner = pool.inner.lock().unwrap_or_else(|p| p.into_inner());
        while inner.0.is_empty() && inner.1 >= pool.limit {
            inner = pool.returned.wait(inner).unwrap_or_else(|p| p.into_inner());
        }
        inner.1 += 1;
        inner.0.pop()
    }
    .unwrap_or_default();
    struct Lent<'a>(&'a MemoryPool, Option<Vec<Block>>);
    impl Drop for Lent<'_> {
        fn drop(&mut self) {
            let mut inner = self.0.inner.lock().unwrap_or_else(|p| p.into_inner());
            inner.1 -= 1;
            if let Some(b) = self.1.take() {
                inner.0.push(b);
            }
            self.0.returned.notify_one();
        }
    }
    let default_blocks = Params::default().block_count();
    if buffer.len() < default_blocks {
        buffer.resize(default_blocks, Block::default());
    }
    let mut lent = Lent(pool, None);
    let result = if blocks <= buffer.len() {
        f(&mut buffer[..blocks])
    } else {
        f(&mut vec![Block::default(); blocks])
    };
    lent.1 = Some(buffer);
    drop(lent);
    result
}

/// A hash of a random password, made once per process with the same parameters as
/// [`hash`]: unknown user names are checked against it, so that they cost the same work.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash(&generate()))
}

/// A random password for the first `admin` (24 url-safe characters, 144 bits).
pub fn generate() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 18];
    getrandom::getrandom(&mut bytes).expect("the OS has randomness");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hash_then_verify() {
        let h = super::hash("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify("correct horse", &h));
        assert!(!super::verify("wrong horse", &h));
        assert!(!super::verify("x", "not a hash"));
    }

    /// Hashes made by the argon2 crate's own `PasswordHasher` (as every stored hash was
    /// before the memory pool) verify, and ours verify with the crate's verifier.
    #[test]
    fn the_crate_and_the_pool_agree() {
        use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
        let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
        let theirs = argon2::Argon2::default()
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        assert!(super::verify("correct horse", &theirs));
        assert!(!super::verify("correct horsf", &theirs));
        let ours = super::hash("battery staple");
        argon2::Argon2::default()
            .verify_password(b"battery staple", &PasswordHash::new(&ours).unwrap())
            .unwrap();
        // Other parameters (more memory than the pool's buffers, another variant) too.
        let params = argon2::Params::new(32 * 1024, 1, 1, Some(24)).unwrap();
        let other = argon2::Argon2::new(argon2::Algorithm::Argon2i, argon2::Version::V0x13, params)
            .hash_password(b"staple", &salt)
            .unwrap()
            .to_string();
        assert!(super::verify("staple", &other));
        assert!(!super::verify("stapler", &other));
    }

    /// Many threads at once: every answer right, and never more buffers than cores.
    #[test]
    fn concurrent_hashes_share_the_pool() {
        let h = super::hash("pool");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let h = h.clone();
                std::thread::spawn(move || {
                    super::verify(if i % 2 == 0 { "pool" } else { "loop" }, &h)
                })
            })
            .collect();
        let answers: Vec<bool> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(
            answers,
            [true, false, true, false, true, false, true, false]
        );
        // (Other tests of this process may be hashing at this moment: no exact count.)
        let inner = super::pool().inner.lock().unwrap();
        assert!(
            inner.0.len() + inner.1 <= super::pool().limit,
            "never more buffers than cores"
        );
    }
}
