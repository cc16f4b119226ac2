//! Gatehouse: an event-sourced access-control server speaking the JFrog Access dialect.
//! See ARCHITECTURE.md at the repository root for the map.

pub mod app;
pub mod auth;
pub mod authorize;
pub mod config;
pub mod domain;
pub mod federation;
pub mod http;
pub mod keys;
pub mod log;
pub mod notices;
pub mod personal;
pub mod scim;
pub mod timefmt;
pub mod timeline;
pub mod tokens;
pub mod webhooks;
pub mod writer;

pub use app::Application;
pub use config::{Config, Settings};
