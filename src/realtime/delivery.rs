//! What to do with the cloud's answer to a batch of events. Pure.

use std::time::Duration;

use crate::http::HttpError;
use crate::protocol::RealtimeAnswer;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchFate {
    /// Stored (or stored before, `duplicate`): acknowledge it in the journal.
    Delivered { duplicate: bool },
    /// The access token was refused: tell pairing, then try again.
    Unauthorized,
    /// Try the same batch again, no sooner than `at_least` (Retry-After)
    /// and, after a refused certificate, no later than `at_most` (so a CA
    /// installed meanwhile is noticed soon).
    Retry {
        at_least: Option<Duration>,
        at_most: Option<Duration>,
    },
    /// The cloud will never take this batch (another 4xx): set it aside
    /// with the reason and go on, as a refused upload is (protocol §5).
    Rejected { reason: String },
}

pub fn fate(answer: Result<&RealtimeAnswer, &HttpError>) -> BatchFate {
    match answer {
        Ok(answer) => BatchFate::Delivered {
            duplicate: answer.status.as_deref() == Some("duplicate"),
        },
        Err(e) if crate::cloud::is_unauthorized(e) => BatchFate::Unauthorized,
        Err(e) if e.is_retryable() => BatchFate::Retry {
            at_least: e.retry_after(),
            at_most: e.retry_cap(),
        },
        Err(e) => BatchFate::Rejected {
            reason: crate::report::chain(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use awc::http::{header::HeaderMap, StatusCode};

    fn status(code: u16) -> HttpError {
        HttpError::from_status(
            "cloud:443",
            StatusCode::from_u16(code).unwrap(),
            &HeaderMap::new(),
            br#"{"error":"x","message":"y"}"#,
        )
    }

    #[test]
    fn answers_and_their_verdicts() {
        let accepted = RealtimeAnswer {
            accepted: Some(3),
            status: None,
        };
        assert_eq!(
            fate(Ok(&accepted)),
            BatchFate::Delivered { duplicate: false }
        );
        let duplicate = RealtimeAnswer {
            accepted: None,
            status: Some("duplicate".into()),
        };
        assert_eq!(
            fate(Ok(&duplicate)),
            BatchFate::Delivered { duplicate: true }
        );
        assert_eq!(fate(Err(&status(401))), BatchFate::Unauthorized);
        for code in [408, 429, 500, 502, 503] {
            assert!(
                matches!(fate(Err(&status(code))), BatchFate::Retry { .. }),
                "{code}"
            );
        }
        for code in [400, 404, 413, 422] {
            assert!(
                matches!(fate(Err(&status(code))), BatchFate::Rejected { .. }),
                "{code}"
            );
        }
    }
}
