//! Gatehouse: an event-sourced access-control server speaking the JFrog Access dialect.
//! See ARCHITECTURE.md at the repository root for the map.

pub mod app;
pub mod auth;
pub mod authorize;
pub mod background;
pub mod checkpoints;
pub mod config;
pub mod console;
pub mod domain;
pub mod federation;
pub mod history;
pub mod http;
pub mod ids;
pub mod json;
pub mod keys;
pub mod ldap;
pub mod lease;
pub mod limits;
pub mod log;
pub mod metrics;
pub mod notices;
pub mod personal;
pub mod recent_logs;
pub mod scim;
pub mod scope;
pub mod timefmt;
pub mod timeline;
pub mod tls;
pub mod tokens;
pub mod views;
pub mod vitals;
pub mod webhooks;
pub mod writer;

pub use app::Application;
pub use config::{Config, Settings};

/// Lower-case hex of `bytes` (hashes, signatures, nonces), without one allocation per
/// byte: it runs for every event of an audit export.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

#[cfg(test)]
mod hex_tests {
    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(super::hex(&[]), "");
    }
}
