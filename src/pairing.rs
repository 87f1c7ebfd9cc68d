//! Pure pieces of pairing: the PIN offer shown to a person and the banner
//! text. The PairingActor does the I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A PIN a person can type into the integration page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinOffer {
    pub pin: String,
    pub verification_uri: String,
    pub expires_at: DateTime<Utc>,
    /// The client is already linked; this PIN moves it to another
    /// integration, and the current link stays active until then.
    pub relink: bool,
}

impl PinOffer {
    pub fn seconds_left(&self, now: DateTime<Utc>) -> i64 {
        (self.expires_at - now).num_seconds().max(0)
    }
}

/// The banner, one line per element, as the original client shows it.
pub fn banner(offer: &PinOffer, linked_to: Option<&str>, now: DateTime<Utc>) -> Vec<String> {
    let site = url::Url::parse(&offer.verification_uri)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{}:{p}", h.trim_start_matches("www.")),
                None => h.trim_start_matches("www.").to_owned(),
            })
        })
        .unwrap_or_else(|| "injixo.com".to_owned());
    let expires = expires_in(offer.seconds_left(now));
    if offer.relink {
        let linked = linked_to.unwrap_or("an integration");
        vec![
            format!("** This client is linked to {linked}."),
            "** To move it to another integration:".to_owned(),
            format!("**  1) Log in to {site}"),
            format!("**  2) Visit {}", offer.verification_uri),
            "**  3) Select the integration you want to move the client to".to_owned(),
            format!("**  4) Enter your pin: {} ({expires})", offer.pin),
            "** The current link stays active until then.".to_owned(),
        ]
    } else {
        vec![
            "** Before you are able to run the client,".to_owned(),
            "** link it to your injixo account:".to_owned(),
            format!("**  1) Log in to {site}"),
            format!("**  2) Visit {}", offer.verification_uri),
            "**  3) Select an integration you want to connect the client to".to_owned(),
            format!("**  4) Enter your pin: {} ({expires})", offer.pin),
        ]
    }
}

fn expires_in(seconds: i64) -> String {
    match seconds {
        0 => "expired".to_owned(),
        1..=89 => format!("expires in {seconds} seconds"),
        _ => {
            let minutes = (seconds + 30) / 60;
            format!(
                "expires in {minutes} minute{}",
                if minutes == 1 { "" } else { "s" }
            )
        }
    }
}

/// "integration Avaya CMS (int_1)", or "integration int_1" before the name
/// is known.
pub fn describe_integration(id: &str, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("integration {name} ({id})"),
        None => format!("integration {id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(seconds: i64, relink: bool) -> (PinOffer, DateTime<Utc>) {
        let now = Utc::now();
        (
            PinOffer {
                pin: "424242".into(),
                verification_uri: "https://www.injixo.com/account/integrations".into(),
                expires_at: now + chrono::Duration::seconds(seconds),
                relink,
            },
            now,
        )
    }

    #[test]
    fn banner_matches_the_original() {
        let (o, now) = offer(300, false);
        assert_eq!(
            banner(&o, None, now),
            vec![
                "** Before you are able to run the client,",
                "** link it to your injixo account:",
                "**  1) Log in to injixo.com",
                "**  2) Visit https://www.injixo.com/account/integrations",
                "**  3) Select an integration you want to connect the client to",
                "**  4) Enter your pin: 424242 (expires in 5 minutes)",
            ]
        );
    }

    #[test]
    fn relink_banner_names_the_current_link() {
        let (o, now) = offer(60, true);
        let lines = banner(&o, Some("integration A (int_1)"), now);
        assert_eq!(
            lines[0],
            "** This client is linked to integration A (int_1)."
        );
        assert!(lines[5].ends_with("424242 (expires in 60 seconds)"));
    }

    #[test]
    fn expiry_is_said_naturally() {
        assert_eq!(expires_in(0), "expired");
        assert_eq!(expires_in(45), "expires in 45 seconds");
        assert_eq!(expires_in(100), "expires in 2 minutes");
        assert_eq!(expires_in(90), "expires in 2 minutes");
        assert_eq!(expires_in(60 * 5), "expires in 5 minutes");
    }
}
