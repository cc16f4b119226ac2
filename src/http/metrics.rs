//! `GET /access/api/v1/metrics` (JFrog Access's path for its open metrics) and
//! `GET /metrics` (Prometheus's default): the Prometheus text format, for an admin or
//! the scrape token (`metrics-token`, sent as `Authorization: Bearer <token>`).

use super::error::ApiError;
use super::{resource, AppState};
use crate::metrics::Metrics;
use actix_web::{web, HttpRequest, HttpResponse};
use gatehouse_schemas::UserStatus;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/access/api/v1/metrics").route(web::get().to(metrics)))
        .service(resource("/metrics").route(web::get().to(metrics)));
}

/// The scrape token, compared in constant time (as blake3 digests).
fn is_scrape_token(req: &HttpRequest, app: &AppState) -> bool {
    let Some(token) = &app.config.metrics_token else {
        return false;
    };
    // The scheme in any case (RFC 9110 §11.1), as every other credential here.
    let Some(sent) = super::extract::authorization(req).and_then(|v| {
        let (scheme, rest) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then_some(rest)
    }) else {
        return false;
    };
    blake3::hash(sent.trim().as_bytes()) == blake3::hash(token.0.as_bytes())
}

async fn metrics(req: HttpRequest, app: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !is_scrape_token(&req, &app) {
        let p = super::extract::authenticate_caller(req.clone()).await?;
        if !p.admin {
            return Err(ApiError::Forbidden(
                "the metrics are for admins and the scrape token".into(),
            ));
        }
    }
    // Reading the outboxes' sizes touches disk: off the HTTP threads.
    let text = web::block(move || {
        let app = app.clone();
        app.metrics.encode(|m| refresh(&app, m))
    })
    .await
    .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?;
    Ok(HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(text))
}

/// Set the gauges that describe the state now.
pub(super) fn refresh(app: &AppState, m: &Metrics) {
    let (head, locked, subscriptions, targets) = {
        let s = app.read();
        let locked = s
            .directory
            .users
            .values()
            .filter(|u| u.status == UserStatus::Locked)
            .count();
        (
            s.seq,
            locked,
            s.subscriptions
                .iter()
                .map(|(k, r)| (k.clone(), r.created_seq))
                .collect::<Vec<_>>(),
            s.federation.targets.keys().cloned().collect::<Vec<_>>(),
        )
    };
    let now_ms = crate::auth::unix_millis();
    m.log_position.set(head as i64);
    m.users_locked.set(locked as i64);
    m.writer_queue_depth.set(app.writer.queue_len() as i64);
    let snap_at = m.snapshot_at_ms.load(std::sync::atomic::Ordering::Relaxed);
    let snap_seq = m.snapshot_seq.load(std::sync::atomic::Ordering::Relaxed);
    let since = if snap_at == 0 {
        // None written or loaded yet: as old as this process.
        app.started.elapsed().as_secs()
    } else {
        now_ms.saturating_sub(snap_at) / 1000
    };
    m.snapshot_age_seconds.set(since as i64);
    m.as_of_checkpoints.set(app.history.len() as i64);
    m.snapshot_age_events
        .set(head.saturating_sub(snap_seq) as i64);

    m.lease_held
        .get_or_create(&crate::metrics::LeaseLabels {
            name: app.lease.name(),
        })
        .set(app.lease.held() as i64);

    // Per subscription and target: families are refilled so that deleted ones vanish.
    m.webhook_pending.clear();
    m.webhook_dead_letters.clear();
    m.webhook_lag_events.clear();
    m.webhook_lag_seconds.clear();
    for (key, created_seq) in subscriptions {
        let Ok(status) = app.deliveries.status(&key, created_seq) else {
            continue;
        };
        let l = crate::metrics::SubscriptionLabels { subscription: key };
        m.webhook_pending
            .get_or_create(&l)
            .set(status.pending as i64);
        m.webhook_dead_letters
            .get_or_create(&l)
            .set(status.failed as i64);
        let lag = head.saturating_sub(status.cursor);
        m.webhook_lag_events.get_or_create(&l).set(lag as i64);
        let lag_secs = if lag == 0 {
            0
        } else {
            match app.log.event_at(status.cursor + 1) {
                Ok(Some(e)) => now_ms.saturating_sub(e.time_ms) / 1000,
                _ => 0,
            }
        };
        m.webhook_lag_seconds.get_or_create(&l).set(lag_secs as i64);
    }
    m.federation_pending.clear();
    m.federation_lag_events.clear();
    m.federation_lag_seconds.clear();
    m.federation_broadcast_owed.clear();
    for name in targets {
        let (cursor, pending, oldest, _) = app.federation.stream_status(&name);
        let l = crate::metrics::TargetLabels { target: name };
        m.federation_pending.get_or_create(&l).set(pending as i64);
        // Nothing waiting is caught up: a target whose filter selects little keeps an
        // old cursor (it moves when something is sent), and its lag grew with every
        // write it did not select.
        // A target owed a full broadcast has nothing pending (what was is dropped) and
        // is as far behind as it gets: it read 0 exactly then.
        let owed = app.federation.broadcast_owed(&l.target);
        let lag = if pending == 0 && !owed {
            0
        } else {
            head.saturating_sub(cursor)
        };
        m.federation_lag_events.get_or_create(&l).set(lag as i64);
        let oldest = owed_since(app, owed, cursor, head).or(oldest);
        m.federation_lag_seconds
            .get_or_create(&l)
            .set(oldest.map_or(0, |t| now_ms.saturating_sub(t) / 1000) as i64);
        m.federation_broadcast_owed
            .get_or_create(&l)
            .set(owed as i64);
    }
}

/// A target owed a full broadcast has nothing waiting (what was is dropped), and is
/// behind by everything after its cursor: the time of the first event it has not
/// acknowledged (lag in seconds read 0 for as long as the target was away).
pub(super) fn owed_since(app: &AppState, owed: bool, cursor: u64, head: u64) -> Option<u64> {
    if !owed || cursor >= head {
        return None;
    }
    app.log
        .event_at(cursor + 1)
        .ok()
        .flatten()
        .map(|e| e.time_ms)
}
