//! Black-box tests: a real Gatehouse on 127.0.0.1 port 0 with its own temporary data
//! directory, spoken to over HTTP the way a client would. One test binary (modules
//! below) so the two-core machines link once.

mod access_keys;
mod audit;
mod bad_input;
mod console;
mod deliveries;
mod dialect;
mod durability;
mod federation;
mod groups;
mod helpers;
mod layout;
mod ldap;
mod nginx;
mod openapi;
mod operations;
mod permissions;
mod postgres;
mod projects;
mod read_your_writes;
mod scim;
mod secrets;
mod seeds;
mod settings;
mod system;
mod tokens;
mod users;
mod webhooks;
