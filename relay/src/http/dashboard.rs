//! The consortium dashboard: a static page (HTML, CSS, JavaScript embedded in the binary, no
//! external CDN) that reads the `/v1` API with the operator's token: devices and their sync lag,
//! an organization's referral worklist, closed-loop rates month by month, overdue follow-ups per
//! team. The token is given in the URL fragment (`/dashboard#token=...`, never sent to the
//! server) or typed in, and kept in the browser tab's session storage. Its strings are in one
//! catalogue per language (`dashboard/i18n/`), Chinese first, chosen by the browser's languages
//! or the switch on the page.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX: &str = include_str!("../../dashboard/index.html");
const SCRIPT: &str = include_str!("../../dashboard/app.js");
const STYLE: &str = include_str!("../../dashboard/style.css");
/// The page's message catalogues: every string it shows, per language (Chinese first).
pub const CATALOGUES: [(&str, &str); 2] =
    [("zh-CN", include_str!("../../dashboard/i18n/zh-CN.json")), ("en", include_str!("../../dashboard/i18n/en.json"))];

/// Keeps the page's own assets from being framed, sniffed or replaced by other origins' scripts.
const POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                      connect-src 'self'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// `/dashboard`, its assets and its catalogues.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/dashboard", get(|| async { asset("text/html; charset=utf-8", INDEX) }))
        .route("/dashboard/app.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/dashboard/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
        .route("/dashboard/i18n/zh-CN.json", get(|| async { asset("application/json", CATALOGUES[0].1) }))
        .route("/dashboard/i18n/en.json", get(|| async { asset("application/json", CATALOGUES[1].1) }))
}
