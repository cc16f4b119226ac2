//! Security settings an admin changed at run time: default token expiry, user lock
//! policy, password expiration policy, password policy, basic authentication.
//!
//! Each is `None` until its first event; the server then uses the configuration file's
//! value (or its built-in default), so the file gives the initial value and an event
//! overrides it. A state whose settings were never changed encodes exactly as it did
//! before this part existed (`State::settings` is left out of the encoding when unset).

use crate::State;
use gatehouse_schemas::{
    Event, PasswordExpirationPolicy, PasswordPolicy, UserCreated, UserLockPolicy,
};
use serde::{Deserialize, Serialize};

const DAY_MS: u64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Seconds; 0: tokens made without an expiry do not expire.
    #[serde(default)]
    pub default_token_expiry: Option<u64>,
    #[serde(default)]
    pub user_lock_policy: Option<UserLockPolicy>,
    #[serde(default)]
    pub password_expiration: Option<PasswordExpirationPolicy>,
    #[serde(default)]
    pub password_policy: Option<PasswordPolicy>,
    #[serde(default)]
    pub basic_authentication: Option<bool>,
    /// When the first password expiration policy was saved (unix milliseconds). From
    /// then on the time of every password change is kept (`User::password_changed_ms`);
    /// a password set before counts from this moment. (Keeping the times from the
    /// start would change the encoding of every existing state.)
    #[serde(default)]
    pub password_ages_since_ms: Option<u64>,
    /// LDAP settings and group settings. INVARIANT: the last field, left out while
    /// empty (a positional encoding may only omit a trailing one).
    #[serde(default, skip_serializing_if = "crate::ldap::Ldap::is_empty")]
    pub ldap: crate::ldap::Ldap,
}

impl Settings {
    /// Nothing was ever changed: every setting is the configuration's.
    pub fn is_unset(&self) -> bool {
        *self == Settings::default()
    }

    pub(crate) fn apply(&mut self, event: &Event, now: u64) {
        match event {
            Event::DefaultTokenExpiryChanged { seconds } => {
                self.default_token_expiry = Some(*seconds)
            }
            Event::UserLockPolicyChanged(p) => self.user_lock_policy = Some(p.clone()),
            Event::PasswordExpirationPolicyChanged(p) => {
                self.password_expiration = Some(p.clone());
                self.password_ages_since_ms.get_or_insert(now);
            }
            Event::PasswordPolicyChanged(p) => self.password_policy = Some(p.clone()),
            Event::BasicAuthenticationChanged { enabled } => {
                self.basic_authentication = Some(*enabled)
            }
            _ => {}
        }
    }

    /// Whether the password of `user` is older than the expiration policy allows at
    /// `now_ms` (false while no policy is enabled, and for users without a password).
    pub fn password_too_old(&self, user: &crate::User, now_ms: u64) -> bool {
        let Some(policy) = self.password_expiration.as_ref().filter(|p| p.enabled) else {
            return false;
        };
        if user.password_hash.is_none() {
            return false;
        }
        let since = user
            .password_changed_ms
            .or(self.password_ages_since_ms)
            .unwrap_or(user.created_ms);
        now_ms.saturating_sub(since) > u64::from(policy.max_age_days) * DAY_MS
    }
}

impl State {
    /// The user whose password `event` sets (or whose expiry it lifts, which starts the
    /// password's age again), judged before the event is applied.
    pub(crate) fn password_set_by<'a>(&self, event: &'a Event) -> Option<&'a str> {
        self.settings.password_ages_since_ms?;
        match event {
            Event::UserCreated(UserCreated {
                username,
                password_hash: Some(_),
                ..
            })
            | Event::UserPasswordChanged { username, .. }
            | Event::UserPasswordUnexpired { username } => Some(username),
            Event::UserReplicated { user, .. }
                if user.password_hash.is_some()
                    && self
                        .directory
                        .users
                        .get(user.username.as_str())
                        .is_none_or(|u| u.password_hash != user.password_hash) =>
            {
                Some(&user.username)
            }
            _ => None,
        }
    }

    /// Record when the password of `username` was set (see [`Settings`]).
    pub(crate) fn record_password_set(&mut self, username: &str, now: u64) {
        if let Some(user) = crate::shared::edit(&mut self.directory.users, username) {
            user.password_changed_ms = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_schemas::{Envelope, UserStatus};

    fn env(seq: u64, time_ms: u64, event: Event) -> Envelope {
        Envelope {
            seq,
            time_ms,
            actor: "admin".into(),
            origin: "jfac@01here".into(),
            request_id: format!("r{seq}"),
            event,
        }
    }

    fn created(name: &str) -> Event {
        Event::UserCreated(UserCreated {
            username: name.into(),
            email: None,
            password_hash: Some("$argon2id$h".into()),
            admin: false,
            profile_updatable: true,
            internal_password_disabled: false,
            disable_ui_access: false,
            realm: "internal".into(),
            status: UserStatus::Enabled,
            groups: vec![],
            scim: None,
        })
    }

    #[test]
    fn password_ages_are_kept_from_the_first_expiration_policy_on() {
        let mut s = State::default();
        s.apply(&env(1, 1_000, created("old")));
        let unset = s.encode();
        assert!(s.settings.is_unset());
        s.apply(&env(
            2,
            5_000,
            Event::PasswordExpirationPolicyChanged(PasswordExpirationPolicy {
                enabled: true,
                max_age_days: 1,
                notify_by_email: false,
            }),
        ));
        assert_ne!(s.encode(), unset);
        s.apply(&env(3, 9_000, created("new")));
        let old = &s.directory.users["old"];
        let new = &s.directory.users["new"];
        assert_eq!(old.password_changed_ms, None);
        assert_eq!(new.password_changed_ms, Some(9_000));
        // `old` counts from the policy (5 000), `new` from its creation (9 000).
        assert!(!s.settings.password_too_old(old, 5_000 + DAY_MS));
        assert!(s.settings.password_too_old(old, 5_001 + DAY_MS));
        assert!(!s.settings.password_too_old(new, 5_001 + DAY_MS));
        s.apply(&env(
            4,
            20_000,
            Event::UserPasswordUnexpired {
                username: "old".into(),
            },
        ));
        assert_eq!(s.directory.users["old"].password_changed_ms, Some(20_000));
        // Round trip of a state that has settings and kept times.
        assert_eq!(State::decode(&s.encode()).unwrap(), s);
    }
}
