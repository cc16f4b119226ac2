//! Decides webhook subscriptions.

use super::DomainError;
use gatehouse_projections::State;
use gatehouse_schemas::{Event, Subscription};

/// Create (`create_only`) or replace a webhook subscription.
pub(super) fn save(
    state: &State,
    subscription: &Subscription,
    create_only: bool,
) -> Result<Vec<Event>, DomainError> {
    let exists = state.subscriptions.contains_key(&subscription.key);
    if create_only && exists {
        return Err(DomainError::AlreadyExists(format!(
            "subscription `{}`",
            subscription.key
        )));
    }
    if !create_only && !exists {
        return Err(DomainError::NotFound(format!(
            "subscription `{}`",
            subscription.key
        )));
    }
    // Saved again as it is (secrets left out, or given again: the HTTP layer keeps
    // their stored ciphertext): nothing to write.
    if state
        .subscriptions
        .get(&subscription.key)
        .is_some_and(|r| r.subscription == *subscription)
    {
        return Ok(vec![]);
    }
    Ok(vec![Event::SubscriptionSaved(subscription.clone())])
}

pub(super) fn delete(state: &State, key: &str) -> Result<Vec<Event>, DomainError> {
    if !state.subscriptions.contains_key(key) {
        return Err(DomainError::NotFound(format!("subscription `{key}`")));
    }
    Ok(vec![Event::SubscriptionDeleted {
        key: key.to_string(),
    }])
}
