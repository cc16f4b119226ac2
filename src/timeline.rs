//! One user as of a past position, fast: instead of rebuilding the whole state (the
//! nearest snapshot plus every event after it), replay only the events that shape that
//! user's record — the ones that name it, and the creation and deletion of the groups it
//! was ever in — into an otherwise empty state, through the same `State::apply`.
//!
//! The index of which positions name which user or group is built from the log on first
//! use and extended with the events written since on every later use.

use crate::log::{EventLog, LogError};
use gatehouse_projections::{State, User};
use gatehouse_schemas::Event;
use std::collections::{BTreeSet, HashMap};

#[derive(Default)]
pub struct Timeline {
    indexed_to: u64,
    by_user: HashMap<String, Vec<u64>>,
    by_group: HashMap<String, Vec<u64>>,
    /// Group names a user's events connect it to.
    groups_of: HashMap<String, BTreeSet<String>>,
    /// `to` -> `from` of every rename, to follow a user back to its earlier names.
    renamed_from: HashMap<String, Vec<String>>,
    /// `from` -> `to` of every rename, to follow a name to the later names of its users.
    renamed_to: HashMap<String, Vec<String>>,
}

impl Timeline {
    fn user(&mut self, name: &str, seq: u64) {
        self.by_user.entry(name.to_string()).or_default().push(seq);
    }

    fn member(&mut self, user: &str, group: &str) {
        self.groups_of
            .entry(user.to_string())
            .or_default()
            .insert(group.to_string());
    }

    /// Index the events after the last indexed position, up to `to`.
    pub fn extend(&mut self, log: &EventLog, to: u64) -> Result<(), LogError> {
        if to <= self.indexed_to {
            return Ok(());
        }
        log.for_each_event(self.indexed_to + 1, Some(to), |seq, _, env| {
            self.index(seq, &env.event);
            true
        })?;
        self.indexed_to = to;
        Ok(())
    }

    fn index(&mut self, seq: u64, event: &Event) {
        {
            match event {
                Event::UserCreated(c) => {
                    self.user(&c.username, seq);
                    for g in &c.groups {
                        self.member(&c.username, g);
                    }
                }
                Event::UserUpdated(u) => self.user(&u.username, seq),
                Event::UserPasswordChanged { username, .. }
                | Event::UserPasswordExpired { username }
                | Event::UserPasswordUnexpired { username }
                | Event::UserLocked { username }
                | Event::UserUnlocked { username }
                | Event::UserDeleted { username }
                | Event::UserScimSaved { username, .. } => self.user(username, seq),
                Event::UserRenamed { from, to } => {
                    self.user(from, seq);
                    self.user(to, seq);
                    self.renamed_from
                        .entry(to.clone())
                        .or_default()
                        .push(from.clone());
                    self.renamed_to
                        .entry(from.clone())
                        .or_default()
                        .push(to.clone());
                }
                Event::UserGroupsChanged {
                    username,
                    added,
                    removed,
                } => {
                    self.user(username, seq);
                    for g in added.iter().chain(removed) {
                        self.member(username, g);
                    }
                }
                Event::GroupMembersChanged {
                    group,
                    added,
                    removed,
                } => {
                    for u in added.iter().chain(removed) {
                        self.user(u, seq);
                        self.member(u, group);
                    }
                }
                Event::GroupCreated(g) => {
                    self.by_group.entry(g.name.clone()).or_default().push(seq);
                    for m in &g.members {
                        self.user(m, seq);
                        self.member(m, &g.name);
                    }
                }
                Event::GroupDeleted { name } => {
                    self.by_group.entry(name.clone()).or_default().push(seq)
                }
                // A group's admin privileges make its members admins (`effective_admin`).
                Event::GroupUpdated(g) if g.admin_privileges.is_some() => {
                    self.by_group.entry(g.name.clone()).or_default().push(seq)
                }
                // The anonymous user's status follows the switch.
                Event::AnonymousAccessChanged { .. } => {
                    self.user(gatehouse_projections::ANONYMOUS, seq)
                }
                // Federation: a replicated group sets its whole member list, so every one
                // of its events shapes each user that was ever listed in it.
                Event::UserReplicated { user, .. } => self.user(&user.username, seq),
                Event::GroupReplicated { group, .. } => {
                    self.by_group
                        .entry(group.name.clone())
                        .or_default()
                        .push(seq);
                    for m in &group.members {
                        self.user(m, seq);
                        self.member(m, &group.name);
                    }
                }
                Event::ReplicaRemoved { entity, name, .. } if entity == "user" => {
                    self.user(name, seq)
                }
                Event::ReplicaRemoved { entity, name, .. } if entity == "group" => {
                    self.by_group.entry(name.clone()).or_default().push(seq)
                }
                _ => {}
            }
        }
    }

    /// Every personal-data key ever used by the user whose deletion is the last
    /// Every deleted user that held `name` at some time up to `position` (each
    /// incarnation of the name, the last and earlier ones, and those renamed away from
    /// it before their deletion — an erasure request often comes after the account is
    /// gone): the keys of their e-mail and SCIM attributes after each of their events,
    /// under their other names too. A cleared and re-set e-mail is sealed with a new key,
    /// so a user's last record alone does not name them all. Records are told apart by
    /// `created_seq` (kept by renames). `None` when no user that held the name was ever
    /// deleted.
    pub fn personal_keys_of_deleted(
        &mut self,
        log: &EventLog,
        name: &str,
        position: u64,
    ) -> Result<Option<BTreeSet<String>>, LogError> {
        self.extend(log, position)?;
        // The name and the later names of users renamed away from it: each one's
        // positions go back through its earlier names (`positions_of`).
        let mut names = vec![name.to_string()];
        let mut i = 0;
        while i < names.len() {
            for later in self.renamed_to.get(&names[i]).into_iter().flatten() {
                if !names.contains(later) {
                    names.push(later.clone());
                }
            }
            i += 1;
        }
        let positions: BTreeSet<u64> = names.iter().flat_map(|n| self.positions_of(n)).collect();
        let mut state = State::default();
        let mut used: HashMap<u64, BTreeSet<String>> = HashMap::new();
        // The users (by `created_seq`) that held `name`.
        let mut held: BTreeSet<u64> = BTreeSet::new();
        let mut deleted = BTreeSet::new();
        for seq in positions.range(..=position) {
            let Some(env) = log.event_at(*seq)? else {
                continue;
            };
            if let Event::UserDeleted { username } = &env.event {
                deleted.extend(
                    state
                        .directory
                        .users
                        .get(username.as_str())
                        .map(|u| u.created_seq)
                        .filter(|c| held.contains(c)),
                );
            }
            state.apply(&env);
            held.extend(state.directory.users.get(name).map(|u| u.created_seq));
            for u in state.directory.users.values() {
                let ids = [u.email.as_deref(), u.scim.as_deref()]
                    .into_iter()
                    .flatten()
                    .filter_map(crate::personal::key_id);
                used.entry(u.created_seq)
                    .or_default()
                    .extend(ids.map(str::to_string));
            }
        }
        if deleted.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            deleted
                .iter()
                .filter_map(|c| used.remove(c))
                .flatten()
                .collect(),
        ))
    }

    /// The positions that shape user `name`: its own events (under its earlier names
    /// too) and the creation and deletion of the groups it was connected to.
    fn positions_of(&self, name: &str) -> BTreeSet<u64> {
        // The user and the names it had before a rename.
        let mut names = vec![name.to_string()];
        let mut i = 0;
        while i < names.len() {
            if let Some(earlier) = self.renamed_from.get(&names[i]) {
                for e in earlier {
                    if !names.contains(e) {
                        names.push(e.clone());
                    }
                }
            }
            i += 1;
        }
        let mut positions: BTreeSet<u64> = BTreeSet::new();
        for n in &names {
            positions.extend(self.by_user.get(n).into_iter().flatten());
            for g in self.groups_of.get(n).into_iter().flatten() {
                positions.extend(self.by_group.get(g).into_iter().flatten());
            }
        }
        positions
    }

    /// The user named `name` right after `position` (`None`: it did not exist then).
    pub fn user_at(
        &mut self,
        log: &EventLog,
        name: &str,
        position: u64,
    ) -> Result<Option<User>, LogError> {
        let mut state = self.user_state_at(log, name, position)?;
        Ok(state.directory.users.remove(name).map(|u| (*u).clone()))
    }

    /// The state of the events that shape user `name` up to `position`: the user, and
    /// its groups as far as they make it an admin.
    pub fn user_state_at(
        &mut self,
        log: &EventLog,
        name: &str,
        position: u64,
    ) -> Result<State, LogError> {
        self.extend(log, position)?;
        let positions = self.positions_of(name);
        let mut state = State::default();
        for seq in positions.range(..=position) {
            if let Some(env) = log.event_at(*seq)? {
                state.apply(&env);
            }
        }
        Ok(state)
    }
}
