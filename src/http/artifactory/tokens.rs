//! `/artifactory/api/security/token`: Artifactory's older token API (dohq-artifactory
//! uses it). Form bodies; the same tokens as `/access/api/v1/tokens`, minted and
//! revoked by the same code.

use super::super::error::ApiError;
use super::super::extract::{Caller, FormOrJson, MaybeCaller, RequestId};
use super::super::tokens::{create, list, revoke_id, token_id_of_value};
use super::super::{resource, written, AppState};
use super::text;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/artifactory/api/security/token")
            .wrap(actix_web::middleware::from_fn(
                super::super::tokens::oauth_error_fields,
            ))
            .route(web::post().to(create_legacy))
            .route(web::get().to(list)),
    )
    .service(resource("/artifactory/api/security/token/revoke").route(web::post().to(revoke)));
}

/// Artifactory's scope words in Access's: `member-of-groups:a,b` is
/// `applied-permissions/groups:a,b`; `api:*` (every API) is what any token may call.
fn scope_in(scope: &str) -> String {
    crate::scope::parts(scope)
        .filter(|s| *s != "api:*")
        .map(|s| match s.strip_prefix("member-of-groups:") {
            Some(groups) => format!("applied-permissions/groups:{groups}"),
            None => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `POST /artifactory/api/security/token`: create or (`grant_type=refresh_token`)
/// refresh, exactly as `POST /access/api/v1/tokens`; the scope in Artifactory's words
/// too.
async fn create_legacy(
    app: web::Data<AppState>,
    caller: MaybeCaller,
    rid: RequestId,
    req: HttpRequest,
    FormOrJson(mut fields): FormOrJson,
) -> Result<HttpResponse, ApiError> {
    if let Some(Value::String(s)) = fields.get("scope") {
        let mapped = scope_in(s);
        if mapped.is_empty() {
            fields.remove("scope");
        } else {
            fields.insert("scope".into(), Value::String(mapped));
        }
    }
    create(app, caller, rid, req, FormOrJson(fields)).await
}

/// `POST /artifactory/api/security/token/revoke` with `token=<value>` or
/// `token_id=<id>`.
async fn revoke(
    app: web::Data<AppState>,
    caller: Caller,
    rid: RequestId,
    req: HttpRequest,
    FormOrJson(fields): FormOrJson,
) -> Result<HttpResponse, ApiError> {
    let form = FormOrJson(fields);
    form.only(&req, &["token", "token_id"]);
    let id = match (form.string("token")?, form.string("token_id")?) {
        (Some(v), _) if !v.is_empty() => {
            // Read, and the read dropped, before `unrecorded` reads again.
            let mut found = token_id_of_value(&app.read(), &v);
            if found.is_none() {
                // Not applied here yet, maybe (issued on another node).
                app.caught_up().await;
                found = token_id_of_value(&app.read(), &v);
            }
            found.ok_or_else(|| super::super::tokens::unrecorded(&app, &v))?
        }
        (_, Some(id)) if !id.is_empty() => id,
        _ => {
            return Err(ApiError::BadRequest(
                "invalid request body: give `token` or `token_id`".into(),
            ))
        }
    };
    let committed = revoke_id(&app, &caller.0, &rid, id).await?;
    Ok(written(
        text(StatusCode::OK, "Token revoked".into()),
        committed,
    ))
}
