//! Security settings (default token expiry, user lock policy, password expiration
//! policy, password policy, basic authentication) and the commands that act on many
//! users' passwords and locks at once.
//!
//! A setting never changed is the configuration file's value (or the built-in default
//! for those the file does not have): the getters below take the configured value and
//! return the one in force, so every reader agrees on how the two combine.

use super::names::default_password_policy;
use super::DomainError;
use gatehouse_projections::State;
use gatehouse_schemas::{
    Event, PasswordExpirationPolicy, PasswordPolicy, UserLockPolicy, UserStatus,
};

/// JFrog's bounds.
pub const MAX_LOGIN_ATTEMPTS: u32 = 100;
pub const MAX_PASSWORD_AGE_DAYS: u32 = 999;
const MAX_POLICY_LENGTH: u32 = super::names::MAX_PASSWORD_BYTES as u32;
/// The longest default token lifetime: a century, as for a token's own `expires_in`.
const MAX_TOKEN_SECONDS: u64 = 100 * 365 * 86_400;

/// A new value for one setting (always whole: the HTTP layer merges partial bodies
/// with the value in force).
#[derive(Debug, Clone)]
pub enum SettingChange {
    /// `max_expiry` is the configured `max-expiry` (0: unlimited), which the default
    /// must respect so that non-admins can still make tokens without an expiry.
    DefaultTokenExpiry {
        seconds: u64,
        max_expiry: u64,
    },
    UserLockPolicy(UserLockPolicy),
    PasswordExpirationPolicy(PasswordExpirationPolicy),
    PasswordPolicy(PasswordPolicy),
    BasicAuthentication(bool),
}

/// Seconds a token made without an expiry lives (0: forever).
pub fn default_token_expiry(state: &State, configured: u64) -> u64 {
    state.settings.default_token_expiry.unwrap_or(configured)
}

/// The lock policy in force; the configured `lockout-threshold` when none was set.
pub fn user_lock_policy(state: &State, configured_threshold: u32) -> UserLockPolicy {
    state
        .settings
        .user_lock_policy
        .clone()
        .unwrap_or(UserLockPolicy {
            enabled: true,
            login_attempts: configured_threshold,
        })
}

/// After how many failed sign-ins in a row a user is locked; `None`: never.
pub fn lock_threshold(state: &State, configured_threshold: u32) -> Option<u32> {
    let policy = user_lock_policy(state, configured_threshold);
    policy.enabled.then_some(policy.login_attempts.max(1))
}

/// The expiration policy in force; JFrog's default (off, 60 days, notify) when none was set.
pub fn password_expiration(state: &State) -> PasswordExpirationPolicy {
    state
        .settings
        .password_expiration
        .clone()
        .unwrap_or(PasswordExpirationPolicy {
            enabled: false,
            max_age_days: 60,
            notify_by_email: true,
        })
}

pub fn password_policy(state: &State) -> PasswordPolicy {
    state
        .settings
        .password_policy
        .clone()
        .unwrap_or_else(default_password_policy)
}

/// Whether users other than admins may sign in with Basic and a password (default yes).
pub fn basic_authentication(state: &State) -> bool {
    state.settings.basic_authentication.unwrap_or(true)
}

pub(super) fn change(state: &State, change: &SettingChange) -> Result<Vec<Event>, DomainError> {
    let s = &state.settings;
    let event = match change {
        SettingChange::DefaultTokenExpiry {
            seconds,
            max_expiry,
        } => {
            if *max_expiry > 0 && (*seconds == 0 || seconds > max_expiry) {
                return Err(DomainError::invalid(
                    "default_token_expiration",
                    format!(
                        "must be between 1 and the configured `max-expiry` ({max_expiry} seconds)"
                    ),
                ));
            }
            // A century at most, as a token's own `expires_in` (a default near u64::MAX
            // made tokens whose `exp` no 64-bit signed date can hold; 0 is "never").
            if *seconds > MAX_TOKEN_SECONDS {
                return Err(DomainError::invalid(
                    "default_token_expiration",
                    format!("must be at most {MAX_TOKEN_SECONDS} seconds (100 years); 0 means tokens do not expire"),
                ));
            }
            if s.default_token_expiry == Some(*seconds) {
                return Ok(vec![]);
            }
            Event::DefaultTokenExpiryChanged { seconds: *seconds }
        }
        SettingChange::UserLockPolicy(p) => {
            if !(1..=MAX_LOGIN_ATTEMPTS).contains(&p.login_attempts) {
                return Err(DomainError::invalid(
                    "loginAttempts",
                    format!("must be between 1 and {MAX_LOGIN_ATTEMPTS}"),
                ));
            }
            if s.user_lock_policy.as_ref() == Some(p) {
                return Ok(vec![]);
            }
            Event::UserLockPolicyChanged(p.clone())
        }
        SettingChange::PasswordExpirationPolicy(p) => {
            if !(1..=MAX_PASSWORD_AGE_DAYS).contains(&p.max_age_days) {
                return Err(DomainError::invalid(
                    "passwordMaxAge",
                    format!("must be between 1 and {MAX_PASSWORD_AGE_DAYS} days"),
                ));
            }
            if s.password_expiration.as_ref() == Some(p) {
                return Ok(vec![]);
            }
            Event::PasswordExpirationPolicyChanged(p.clone())
        }
        SettingChange::PasswordPolicy(p) => {
            if !(1..=MAX_POLICY_LENGTH).contains(&p.length) {
                return Err(DomainError::invalid(
                    "length",
                    format!("must be between 1 and {MAX_POLICY_LENGTH}"),
                ));
            }
            for (field, n) in [
                ("uppercase", p.uppercase),
                ("lowercase", p.lowercase),
                ("digit", p.digit),
                ("special_char", p.special_char),
            ] {
                if n > MAX_POLICY_LENGTH {
                    return Err(DomainError::invalid(
                        field,
                        format!("must be at most {MAX_POLICY_LENGTH}"),
                    ));
                }
            }
            // Counts a password of the longest length cannot all hold make every new
            // password fail (a "length 8" policy that asked for 400 characters).
            let least = p.uppercase + p.lowercase + p.digit + p.special_char;
            if least > MAX_POLICY_LENGTH {
                return Err(DomainError::invalid(
                    "uppercase",
                    format!("uppercase, lowercase, digit and special_char together must be at most {MAX_POLICY_LENGTH} (a password holds at most that many bytes)"),
                ));
            }
            if s.password_policy.as_ref() == Some(p) {
                return Ok(vec![]);
            }
            Event::PasswordPolicyChanged(p.clone())
        }
        SettingChange::BasicAuthentication(enabled) => {
            if s.basic_authentication == Some(*enabled) {
                return Ok(vec![]);
            }
            Event::BasicAuthenticationChanged { enabled: *enabled }
        }
    };
    Ok(vec![event])
}

/// The users a command about "these users, or all (`None`)" is about. Named users must
/// exist unless `skip_unknown`.
fn chosen<'a>(
    state: &'a State,
    usernames: Option<&'a [String]>,
    skip_unknown: bool,
) -> Result<Vec<&'a gatehouse_projections::User>, DomainError> {
    let dir = &state.directory;
    match usernames {
        None => Ok(dir.users.values().map(|u| &**u).collect()),
        Some(names) => {
            let mut out: Vec<&gatehouse_projections::User> = Vec::with_capacity(names.len());
            for name in names {
                match dir.users.get(name.to_lowercase().as_str()) {
                    Some(u) if out.iter().any(|o| o.username == u.username) => {}
                    Some(u) => out.push(u),
                    None if skip_unknown => {}
                    None => return Err(DomainError::NotFound(format!("user `{name}`"))),
                }
            }
            Ok(out)
        }
    }
}

/// Expire the passwords of these users (all that exist, or 404 naming the first that
/// does not), or of every user that has a password but `except`. Already expired ones
/// are left.
///
/// "Every user" leaves out the admin who asks: an expired password also stops the
/// user's tokens (but for changing it), so expiring one's own would leave no one able
/// to undo it — nor to do anything else — until a password is changed.
pub(super) fn expire_passwords(
    state: &State,
    usernames: Option<&[String]>,
    except: Option<&str>,
) -> Result<Vec<Event>, DomainError> {
    let users = chosen(state, usernames, false)?;
    // A user named who has no password here (a directory's, or one whose internal
    // password is disabled) cannot change one: expired, it could do nothing at all.
    if usernames.is_some() {
        if let Some(u) = users
            .iter()
            .find(|u| u.password_hash.is_none() || u.internal_password_disabled)
        {
            return Err(DomainError::invalid(
                "username",
                format!(
                    "user `{}` has no password here (realm `{}`, or its internal password is disabled): there is none to expire",
                    u.username, u.realm
                ),
            ));
        }
    }
    Ok(users
        .into_iter()
        .filter(|u| !u.password_expired && (usernames.is_some() || u.password_hash.is_some()))
        .filter(|u| usernames.is_some() || Some(u.username.as_str()) != except)
        .map(|u| Event::UserPasswordExpired {
            username: u.username.clone(),
        })
        .collect())
}

/// Lift the expiry of one user's password without changing it; under an expiration
/// policy its age starts again.
pub(super) fn unexpire_password(state: &State, username: &str) -> Result<Vec<Event>, DomainError> {
    super::user_must_exist(state, username)?;
    Ok(vec![Event::UserPasswordUnexpired {
        username: username.to_string(),
    }])
}

/// Lift the expiry of these users' passwords, or of every expired one: expired by an
/// admin, or (at `now_ms`) older than the expiration policy allows.
pub(super) fn unexpire_passwords(
    state: &State,
    usernames: Option<&[String]>,
    now_ms: u64,
) -> Result<Vec<Event>, DomainError> {
    let users = chosen(state, usernames, false)?;
    Ok(users
        .into_iter()
        .filter(|u| {
            usernames.is_some() || u.password_expired || state.settings.password_too_old(u, now_ms)
        })
        .map(|u| Event::UserPasswordUnexpired {
            username: u.username.clone(),
        })
        .collect())
}

/// Unlock these users (unknown or unlocked ones are skipped, as Artifactory does), or
/// every locked user.
pub(super) fn unlock_users(
    state: &State,
    usernames: Option<&[String]>,
) -> Result<Vec<Event>, DomainError> {
    let users = chosen(state, usernames, true)?;
    Ok(users
        .into_iter()
        .filter(|u| u.status == UserStatus::Locked)
        .map(|u| Event::UserUnlocked {
            username: u.username.clone(),
        })
        .collect())
}
