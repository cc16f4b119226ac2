//! The one HTTP error type. Every failure leaves as
//! `{"errors":[{"status":<code>,"message":"<text>"}]}`.

use crate::auth::AuthError;
use crate::domain::DomainError;
use crate::writer::SubmitError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// 409 because a name or value is already in use (SCIM's `uniqueness`), where
    /// `Conflict` is any other clash with the current state.
    #[error("{0}")]
    Taken(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Storage or internal failure: the cause is logged, never sent.
    #[error("internal error ({0}); see the server log")]
    Internal(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("the request body was not received within {0} ms")]
    RequestTimeout(u64),
    /// 429 with `Retry-After` (seconds).
    #[error("{0}")]
    TooManyRequests(String, u64),
    /// 503 with `Retry-After: 1`: the server sheds load it cannot take now.
    #[error("{0}")]
    Overloaded(String),
    /// 503 with `Retry-After` (seconds): nothing was written, and a retry after that
    /// long is safe (a full disk).
    #[error("{0}")]
    UnavailableFor(String, u64),
}

impl ApiError {
    /// The same error, a field's name in its message (`` `auto_join` ``) spelt as the
    /// caller's API spells it (`` `autoJoin` ``): an error names the field the client
    /// sent. `names` pairs the domain's name with the API's; a name followed by `[` or
    /// `.` (`` `members[0]` ``) is renamed too.
    pub fn renaming_fields(self, names: &[(&str, &str)]) -> ApiError {
        let rename = |mut m: String| {
            for (ours, theirs) in names {
                for end in ["`", "[", "."] {
                    let from = format!("`{ours}{end}");
                    if m.contains(&from) {
                        m = m.replace(&from, &format!("`{theirs}{end}"));
                    }
                }
            }
            m
        };
        match self {
            ApiError::BadRequest(m) => ApiError::BadRequest(rename(m)),
            ApiError::Conflict(m) => ApiError::Conflict(rename(m)),
            ApiError::Taken(m) => ApiError::Taken(rename(m)),
            ApiError::Forbidden(m) => ApiError::Forbidden(rename(m)),
            other => other,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::Taken(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Overloaded(_) | ApiError::UnavailableFor(..) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let body = serde_json::json!({"errors": [{"status": status.as_u16(), "message": shown(self.to_string())}]});
        let mut res = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            res.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"gatehouse\""));
        }
        match self {
            ApiError::TooManyRequests(_, secs) => {
                res.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            ApiError::Overloaded(_) => {
                res.insert_header((header::RETRY_AFTER, "1"));
            }
            ApiError::UnavailableFor(_, secs) => {
                res.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            // The answer says to look in the log: so the log has it, whoever made it.
            ApiError::Internal(detail) => {
                tracing::error!(detail = %detail, "internal error");
            }
            _ => {}
        }
        res.json(body)
    }
}

/// The most of a message an answer shows: many name what the client sent (a key, a
/// path segment), and a 60 KB name was answered whole. Cut at a character, with the
/// length said.
const MESSAGE_SHOWN: usize = 2048;

pub(crate) fn shown(message: String) -> String {
    match message.char_indices().nth(MESSAGE_SHOWN) {
        Some((cut, _)) => format!("{}… ({} bytes)", &message[..cut], message.len()),
        None => message,
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NotFound(_) => ApiError::NotFound(e.to_string()),
            DomainError::AlreadyExists(_) => ApiError::Taken(e.to_string()),
            DomainError::Conflict(m) => ApiError::Conflict(m),
            DomainError::Forbidden(m) => ApiError::Forbidden(m),
            DomainError::PreconditionFailed(m) => ApiError::PreconditionFailed(m),
            DomainError::Invalid { .. } => ApiError::BadRequest(e.to_string()),
        }
    }
}

/// What a write refused for a full disk tells the client to wait (`Retry-After`): room
/// is made by an operator, not in a second.
pub const DISK_FULL_RETRY_SECS: u64 = 30;
/// `Retry-After` of a write the shared log could not be reached for (nothing written):
/// the wait the writer already spent on it was 20 s.
pub const SHARED_LOG_RETRY_SECS: u64 = 5;

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Domain(d) => d.into(),
            // No `Retry-After`: on a shared log the batch may still turn up (in doubt),
            // and a client retrying at once could apply a command twice.
            SubmitError::Unavailable => {
                ApiError::Unavailable("the event log is not available".into())
            }
            // Nothing of the batch reached the log: a retry is safe, once there is room.
            SubmitError::DiskFull => {
                ApiError::UnavailableFor(SubmitError::DiskFull.to_string(), DISK_FULL_RETRY_SECS)
            }
            SubmitError::SharedLogUnavailable => {
                ApiError::Unavailable(SubmitError::SharedLogUnavailable.to_string())
            }
            // Nothing was sent: a retry is safe.
            SubmitError::SharedLogUnreachable => ApiError::UnavailableFor(
                SubmitError::SharedLogUnreachable.to_string(),
                SHARED_LOG_RETRY_SECS,
            ),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unavailable => ApiError::Unavailable(e.to_string()),
            AuthError::Limited(secs) => ApiError::TooManyRequests(e.to_string(), secs),
            AuthError::Busy => ApiError::Overloaded(e.to_string()),
            AuthError::Directory(_) => ApiError::Unavailable(e.to_string()),
            _ => ApiError::Unauthorized(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding: a write refused for a full disk answered 503 without `Retry-After`,
    /// though nothing of it was written and a retry is safe; a shared log's doubt still
    /// says nothing (a retry at once could apply a command twice).
    #[test]
    fn a_full_disk_says_when_to_retry_and_doubt_does_not() {
        let full = ApiError::from(SubmitError::DiskFull).error_response();
        assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            full.headers().get(header::RETRY_AFTER).unwrap(),
            &DISK_FULL_RETRY_SECS.to_string()
        );
        let doubt = ApiError::from(SubmitError::SharedLogUnavailable).error_response();
        assert_eq!(doubt.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(doubt.headers().get(header::RETRY_AFTER).is_none());
        // Nothing sent to the shared log: as safe to retry as a full disk.
        let unreached = ApiError::from(SubmitError::SharedLogUnreachable).error_response();
        assert_eq!(unreached.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            unreached.headers().get(header::RETRY_AFTER).unwrap(),
            &SHARED_LOG_RETRY_SECS.to_string()
        );
    }
}
