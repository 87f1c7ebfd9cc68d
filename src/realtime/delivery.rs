//! What to do with the cloud's answer to a batch of events. Pure.

use std::time::Duration;

use crate::http::HttpError;
use crate::protocol::RealtimeAnswer;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Stored (or stored before, `duplicate`): acknowledge it in the journal.
    Delivered { duplicate: bool },
    /// The access token was refused: tell pairing, then try again.
    Unauthorized,
    /// Try the same batch again, no sooner than `at_least` (Retry-After).
    Retry { at_least: Option<Duration> },
    /// The cloud will never take this batch (another 4xx): set it aside
    /// with the reason and go on, as a refused upload is (protocol §5).
    Rejected { reason: String },
}

pub fn verdict(answer: Result<&RealtimeAnswer, &HttpError>) -> Verdict {
    match answer {
        Ok(answer) => Verdict::Delivered {
            duplicate: answer.status.as_deref() == Some("duplicate"),
        },
        Err(e) if crate::cloud::is_unauthorized(e) => Verdict::Unauthorized,
        Err(e) if e.is_retryable() => Verdict::Retry {
            at_least: e.retry_after(),
        },
        Err(e) => Verdict::Rejected {
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
            verdict(Ok(&accepted)),
            Verdict::Delivered { duplicate: false }
        );
        let duplicate = RealtimeAnswer {
            accepted: None,
            status: Some("duplicate".into()),
        };
        assert_eq!(
            verdict(Ok(&duplicate)),
            Verdict::Delivered { duplicate: true }
        );
        assert_eq!(verdict(Err(&status(401))), Verdict::Unauthorized);
        for code in [408, 429, 500, 502, 503] {
            assert!(
                matches!(verdict(Err(&status(code))), Verdict::Retry { .. }),
                "{code}"
            );
        }
        for code in [400, 404, 413, 422] {
            assert!(
                matches!(verdict(Err(&status(code))), Verdict::Rejected { .. }),
                "{code}"
            );
        }
    }
}
