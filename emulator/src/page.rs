//! The page a person uses: `GET /account/integrations`, where the PIN shown
//! by the client is typed in. Server-rendered HTML that works without
//! JavaScript: the form posts, then the page redirects or re-renders.

use std::fmt::Write as _;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use injixo_cloud_link_protocol::emulator::{ClientRecord, ImportRecord, INTEGRATIONS_PAGE};
use injixo_cloud_link_protocol::{Integration, IntegrationKind, RealtimeEvent};
use serde::Deserialize;

use crate::app::AppState;
use crate::error::ApiError;
use crate::state::mask_pin;

pub const PAGE_PATH: &str = INTEGRATIONS_PAGE;
/// How many of a feed's latest events the page shows.
const LATEST_EVENTS: usize = 10;

/// How many of an integration's imports the page shows.
const LATEST_IMPORTS: usize = 10;

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f4f6f8;color:#1d2329}
header{background:#0b3d5c;color:#fff;padding:1rem 2rem}
header h1{margin:0;font-size:1.4rem}
header p{margin:.2rem 0 0;opacity:.8;font-size:.9rem}
main{max-width:60rem;margin:1.5rem auto;padding:0 1rem}
section{background:#fff;border:1px solid #d8dee4;border-radius:6px;padding:1rem 1.5rem;margin-bottom:1.5rem}
h2{margin:.2rem 0;font-size:1.2rem}
h3{font-size:1rem;margin:1.2rem 0 .4rem}
.meta{color:#5b6670;font-size:.85rem;margin:0 0 .8rem}
form{display:flex;gap:.6rem;align-items:center;flex-wrap:wrap}
label{font-weight:600}
input{font:inherit;font-size:1.2rem;letter-spacing:.3em;width:10ch;padding:.3rem .5rem;border:1px solid #8c959f;border-radius:4px}
button{font:inherit;background:#0969da;color:#fff;border:0;border-radius:4px;padding:.45rem 1.2rem;cursor:pointer}
button:hover{background:#0757b8}
.error{background:#ffebe9;border:1px solid #ff8182;color:#82071e;padding:.5rem .8rem;border-radius:4px}
.success{background:#dafbe1;border:1px solid #4ac26b;color:#116329;padding:.5rem .8rem;border-radius:4px}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eaeef2}
th{color:#5b6670;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.none{color:#5b6670;font-style:italic}
code{background:#eaeef2;padding:.1rem .3rem;border-radius:3px}
";

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A message shown above the form of one integration.
struct Notice {
    integration_id: String,
    text: String,
    is_error: bool,
}

pub async fn home() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, PAGE_PATH))
        .finish()
}

#[derive(Deserialize)]
pub struct ShowQuery {
    connected: Option<String>,
}

pub async fn show(app: web::Data<AppState>, query: web::Query<ShowQuery>) -> HttpResponse {
    let notice = query.connected.as_ref().and_then(|id| {
        let client = app.read(|s| s.client_of(id))?;
        Some(Notice {
            integration_id: id.clone(),
            text: format!("Connected: {} on {}.", client.instance, client.hostname),
            is_error: false,
        })
    });
    render(&app, StatusCode::OK, notice.as_ref(), None)
}

#[derive(Deserialize)]
pub struct ConnectForm {
    #[serde(default)]
    pin: String,
}

pub async fn connect(
    app: web::Data<AppState>,
    req: HttpRequest,
    integration_id: web::Path<String>,
    form: web::Form<ConnectForm>,
) -> HttpResponse {
    let integration_id = integration_id.into_inner();
    let pin = form.into_inner().pin;
    let source = req
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
    match app.update(|s| s.connect(&pin, &integration_id, source, Utc::now())) {
        Ok(connected) => {
            tracing::info!(
                "PIN {} connected {:?} to {integration_id} (web page)",
                mask_pin(&pin),
                connected.instance
            );
            // Post/redirect/get: reloading the page does not post the PIN again.
            HttpResponse::SeeOther()
                .insert_header((
                    header::LOCATION,
                    format!("{PAGE_PATH}?connected={integration_id}#int-{integration_id}"),
                ))
                .finish()
        }
        Err(e) => {
            tracing::info!(
                "PIN {} refused for {integration_id} (web page): {e}",
                mask_pin(&pin)
            );
            let error = ApiError::from(e);
            let notice = Notice {
                integration_id: integration_id.clone(),
                text: error.message.clone(),
                is_error: true,
            };
            let mut response = render(&app, error.status, Some(&notice), Some(&pin));
            if let Some(seconds) = error.retry_after {
                if let Ok(value) = header::HeaderValue::from_str(&seconds.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
            }
            response
        }
    }
}

fn render(
    app: &AppState,
    status: StatusCode,
    notice: Option<&Notice>,
    typed_pin: Option<&str>,
) -> HttpResponse {
    let (integrations, clients, imports, feeds) = app.read(|s| {
        let integrations = s.integrations().cloned().collect::<Vec<_>>();
        let feeds: Vec<Vec<RealtimeEvent>> = integrations
            .iter()
            .map(|i| s.latest_realtime_events(&i.id, LATEST_EVENTS))
            .collect();
        (integrations, s.clients(), s.imports(None), feeds)
    });
    let now = Utc::now();
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Integrations · injixo</title><style>{STYLE}</style></head><body>\
         <header><h1>Integrations</h1><p>injixo Cloud Link · cloud emulator</p></header><main>"
    );
    if integrations.is_empty() {
        html.push_str(
            "<section><p class=\"none\">No integrations yet.</p><p>Create one with \
             <code>curl -X POST -H 'Content-Type: application/json' \
             -d '{\"name\":\"CSV files\",\"kind\":\"csv\",\"csv\":{\"pattern\":\"*.csv\"}}' \
             http://HOST:PORT/_emulator/integrations</code></p></section>",
        );
    }
    for (integration, events) in integrations.iter().zip(&feeds) {
        let notice = notice.filter(|n| n.integration_id == integration.id);
        let client = clients.iter().find(|c| c.integration_id == integration.id);
        let mut latest: Vec<&ImportRecord> = imports
            .iter()
            .filter(|i| i.integration_id == integration.id)
            .collect();
        latest.reverse();
        latest.truncate(LATEST_IMPORTS);
        let pin = notice.filter(|n| n.is_error).and(typed_pin).unwrap_or("");
        render_integration(&mut html, integration, notice, pin, client, &latest, now);
        if integration.realtime.is_some() || !events.is_empty() {
            render_feed(&mut html, &integration.id, client, events);
        }
        html.push_str("</section>");
    }
    html.push_str("</main></body></html>");
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html)
}

fn render_integration(
    html: &mut String,
    integration: &Integration,
    notice: Option<&Notice>,
    typed_pin: &str,
    client: Option<&ClientRecord>,
    imports: &[&ImportRecord],
    now: DateTime<Utc>,
) {
    let id = escape(&integration.id);
    let kind = match integration.kind {
        IntegrationKind::Csv => "CSV files",
        IntegrationKind::Database => "Database (ODBC)",
    };
    let _ = write!(
        html,
        "<section class=\"integration\" id=\"int-{id}\"><h2>{name}</h2>\
         <p class=\"meta\">{id} · {kind}</p>",
        name = escape(&integration.name),
    );
    if let Some(notice) = notice {
        let (class, role) = if notice.is_error {
            ("error", "alert")
        } else {
            ("success", "status")
        };
        let _ = write!(
            html,
            "<p class=\"{class}\" id=\"{class}-{id}\" role=\"{role}\">{}</p>",
            escape(&notice.text)
        );
    }
    let _ = write!(
        html,
        "<form method=\"post\" action=\"{PAGE_PATH}/{id}/connect\">\
         <label for=\"pin-{id}\">PIN shown during installation</label>\
         <input id=\"pin-{id}\" name=\"pin\" inputmode=\"numeric\" pattern=\"[0-9]{{6}}\" \
         maxlength=\"6\" autocomplete=\"off\" required placeholder=\"000000\" value=\"{pin}\">\
         <button type=\"submit\" id=\"connect-{id}\">Connect</button></form>",
        pin = escape(typed_pin),
    );
    html.push_str("<h3>Connected client</h3>");
    match client {
        None => {
            let _ = write!(
                html,
                "<p class=\"none\" id=\"client-{id}\">No client connected.</p>"
            );
        }
        Some(client) => {
            let last_heartbeat = client
                .last_heartbeat
                .map(|t| when(t, now))
                .unwrap_or_else(|| "never".to_owned());
            let _ = write!(
                html,
                "<table id=\"client-{id}\"><tr><th>Instance</th><th>Hostname</th><th>Version</th>\
                 <th>Connected</th><th>Last heartbeat</th></tr>\
                 <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
                escape(&client.instance),
                escape(&client.hostname),
                escape(&client.version),
                escape(&when(client.connected_at, now)),
                escape(&last_heartbeat),
            );
        }
    }
    html.push_str("<h3>Latest imports</h3>");
    if imports.is_empty() {
        html.push_str("<p class=\"none\">No imports yet.</p>");
        return;
    }
    let _ = write!(
        html,
        "<table id=\"imports-{id}\"><tr><th>Import</th><th>File</th><th>Committed</th>\
         <th class=\"num\">Rows</th><th class=\"num\">Bytes</th><th class=\"num\">Duplicates</th></tr>"
    );
    for import in imports {
        let rows = import
            .metadata
            .get("rows")
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| "–".to_owned());
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&import.import_id),
            escape(&import.file_name),
            escape(&when(import.committed_at, now)),
            escape(&rows),
            import.size,
            import.duplicates,
        );
    }
    html.push_str("</table>");
}

/// The real-time feed: connected or not (from the client's heartbeat), and
/// its latest events.
fn render_feed(
    html: &mut String,
    integration_id: &str,
    client: Option<&ClientRecord>,
    events: &[RealtimeEvent],
) {
    let id = escape(integration_id);
    let feed = client
        .and_then(|c| c.heartbeat.as_ref())
        .and_then(|h| h.feeds.first());
    let state = match feed {
        None => "no report from the client yet".to_owned(),
        Some(f) if f.peers.is_empty() => format!("{}; nothing connected", f.state),
        Some(f) => format!(
            "{}; connected: {}; {} event(s) in the last minute",
            f.state,
            f.peers.join(", "),
            f.events_last_minute
        ),
    };
    let _ = write!(
        html,
        "<h3>Real-time feed</h3><p id=\"feed-{id}\">{}</p>",
        escape(&state)
    );
    if events.is_empty() {
        html.push_str("<p class=\"none\">No events yet.</p>");
        return;
    }
    let _ = write!(
        html,
        "<table id=\"events-{id}\"><tr><th class=\"num\">Sequence</th><th>Agent</th>\
         <th>Activity</th><th>Reason</th><th>Since</th></tr>"
    );
    for event in events {
        let _ = write!(
            html,
            "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            event.sequence,
            escape(&event.agentidentifier),
            escape(&event.activity),
            escape(event.reason.as_deref().unwrap_or("")),
            escape(&event.timestamp),
        );
    }
    html.push_str("</table>");
}

/// `2025-01-01 12:00:00 UTC (3 min ago)`
fn when(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - t).num_seconds().max(0);
    let ago = match seconds {
        0..=59 => format!("{seconds} s ago"),
        60..=3599 => format!("{} min ago", seconds / 60),
        3600..=86_399 => format!("{} h ago", seconds / 3600),
        _ => format!("{} d ago", seconds / 86_400),
    };
    format!("{} ({ago})", t.format("%Y-%m-%d %H:%M:%S UTC"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn times_say_how_long_ago() {
        let now = Utc::now();
        assert!(when(now - chrono::Duration::seconds(125), now).ends_with("(2 min ago)"));
        assert!(when(now, now).ends_with("(0 s ago)"));
    }
}
