//! Webhook subscriptions: the records behind `State::subscriptions` (by key).

use gatehouse_schemas::Event;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    pub subscription: gatehouse_schemas::Subscription,
    pub created_seq: u64,
    pub updated_seq: u64,
}

/// Subscription events. (`State::subscriptions` is a plain map, so this is a function
/// of it rather than a method.)
pub(crate) fn apply(
    subscriptions: &mut BTreeMap<String, SubscriptionRecord>,
    event: &Event,
    seq: u64,
) {
    match event {
        Event::SubscriptionSaved(sub) => {
            let rec = subscriptions
                .entry(sub.key.clone())
                .or_insert_with(|| SubscriptionRecord {
                    created_seq: seq,
                    ..Default::default()
                });
            rec.subscription = sub.clone();
            rec.updated_seq = seq;
        }
        Event::SubscriptionDeleted { key } => {
            subscriptions.remove(key);
        }
        _ => {}
    }
}
