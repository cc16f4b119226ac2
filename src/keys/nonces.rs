//! Ed25519 signing nonces made ahead, on a thread that runs only when a core would
//! otherwise be idle.
//!
//! An Ed25519 signature is `R ‖ S` with `R = r·B` and `S = r + H(R ‖ A ‖ M)·a (mod L)`.
//! RFC 8032 derives the secret nonce `r` from the key and the message, so that a signer
//! without a good random source cannot leak its key; any `r` that is uniformly random,
//! secret and never used twice gives a signature every verifier accepts (a *hedged* or
//! randomised signature: RFC 8032 §8.2, draft-irtf-cfrg-det-sigs-with-noise). The
//! fixed-base multiplication `r·B` is three quarters of a signature's cost (7 of the 10
//! µs a token's signature took in a `perf` profile of token issues), and it does not
//! depend on the message: so it is done ahead, here, and a token's signature is then a
//! hash and a scalar multiply-add on the request's thread.
//!
//! Why on an idle-priority thread: during durable writes the two cores of the bench
//! machine are idle about a tenth of the time (every client waits for the same sync),
//! and that is where the nonces come from. When the pool is empty (the cores were busy,
//! or the server just started) a signature is made the deterministic way, as before.
//!
//! Each nonce is taken out of the pool by the one signature that uses it (never
//! copied) and its scalar is zeroed when dropped. `r` is 64 bytes of the operating
//! system's random source reduced modulo `L` (uniform to within 2⁻²⁵⁹).

use curve25519_dalek::{EdwardsPoint, Scalar};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Mutex, OnceLock};
use zeroize::Zeroize;

/// How many nonces the pool holds at most (64 bytes each), and below how many it is
/// refilled.
const POOL: usize = 4096;
const LOW: usize = POOL / 2;

/// A secret nonce `r` and its commitment `R = r·B` (compressed).
pub struct Nonce {
    pub r: Scalar,
    pub big_r: [u8; 32],
}

impl Drop for Nonce {
    fn drop(&mut self) {
        self.r.zeroize();
    }
}

struct Pool {
    nonces: Mutex<Vec<Nonce>>,
    /// Rung when the pool runs low; the thread is started with it.
    doorbell: SyncSender<()>,
}

static POOL_: OnceLock<Option<Pool>> = OnceLock::new();

fn pool() -> Option<&'static Pool> {
    POOL_
        .get_or_init(|| {
            let (doorbell, rx) = sync_channel::<()>(1);
            let spawned = std::thread::Builder::new()
                .name("gatehouse-nonces".into())
                .spawn(move || {
                    crate::background::lower_priority();
                    while rx.recv().is_ok() {
                        fill();
                    }
                });
            match spawned {
                Ok(_) => Some(Pool {
                    nonces: Mutex::new(Vec::with_capacity(POOL)),
                    doorbell,
                }),
                // Without the thread every signature is deterministic, as before.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the signing-nonce thread");
                    None
                }
            }
        })
        .as_ref()
}

/// Make nonces until the pool is full, each put in as soon as it is made (no buffer
/// holds secret nonces beside the pool).
pub(super) fn fill() {
    let Some(pool) = pool() else { return };
    loop {
        if pool.nonces.lock().unwrap_or_else(|p| p.into_inner()).len() >= POOL {
            return;
        }
        let Some(nonce) = make() else { return };
        pool.nonces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(nonce);
    }
}

/// A fresh nonce: 64 bytes from the operating system reduced modulo `L`, and `r·B`.
/// `None` if the operating system has no randomness to give (then signatures stay
/// deterministic).
pub(super) fn make() -> Option<Nonce> {
    let mut wide = [0u8; 64];
    if getrandom::getrandom(&mut wide).is_err() {
        return None;
    }
    let r = Scalar::from_bytes_mod_order_wide(&wide);
    wide.zeroize();
    let big_r = EdwardsPoint::mul_base(&r).compress().to_bytes();
    Some(Nonce { r, big_r })
}

/// A nonce made ahead, if there is one (asking for more when the pool runs low).
pub fn take() -> Option<Nonce> {
    let pool = pool()?;
    let (nonce, left) = {
        let mut nonces = pool.nonces.lock().unwrap_or_else(|p| p.into_inner());
        (nonces.pop(), nonces.len())
    };
    if left < LOW {
        let _ = pool.doorbell.try_send(());
    }
    nonce
}
