//! Entities as the REST API shows them, for code outside the handlers (webhook
//! deliveries carry the entity a change was about). One rendering, shared with the
//! handlers, so a webhook's `data` is exactly what a GET would answer.

use gatehouse_projections::{Group, User};
use gatehouse_schemas::{AccessKey, Entitlement, PermissionTarget, Project, TokenIssued};
use serde_json::Value;

pub fn user(u: &User, personal: &crate::personal::PersonalKeys) -> Value {
    serde_json::to_value(super::users::UserView::new(u, personal)).unwrap_or_default()
}

pub fn group(g: &Group) -> Value {
    serde_json::to_value(super::groups::GroupView::from(g)).unwrap_or_default()
}

pub fn token(t: &TokenIssued, service_id: &str) -> Value {
    super::tokens::token_view(t, service_id)
}

pub fn permission(t: &PermissionTarget) -> Value {
    serde_json::to_value(super::permissions::target_out(t)).unwrap_or_default()
}

pub fn entitlement(e: &Entitlement) -> Value {
    super::access_keys::entitlement_out(e)
}

pub fn access_key(k: &AccessKey) -> Value {
    super::access_keys::key_out(k)
}

pub fn project(p: &Project) -> Value {
    super::projects::project_out(p)
}

pub fn federation_target(t: &gatehouse_schemas::FederationTarget) -> Value {
    super::federation::target_out(t)
}
