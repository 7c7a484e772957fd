//! The HTTP side: /metrics, /healthz, /api/v1/state and /api/v1/policy/explain.

use crate::cycle::explain;
use crate::cycle::report::CycleReport;
use crate::metrics::Metrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// What the handlers share with the daemon loop.
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub last_cycle: RwLock<Option<Arc<CycleReport>>>,
    pub last_cycle_at: RwLock<Option<Instant>>,
    pub started: Instant,
    /// A cycle older than this makes /healthz answer 503 (the loop is stuck).
    pub stale_after: Duration,
}

impl AppState {
    /// `health_window`: how long since the last cycle /healthz accepts
    /// (`Config::health_window`).
    pub fn new(metrics: Arc<Metrics>, health_window: Duration) -> AppState {
        AppState {
            metrics,
            last_cycle: RwLock::new(None),
            last_cycle_at: RwLock::new(None),
            started: Instant::now(),
            stale_after: health_window,
        }
    }

    pub fn record_cycle(&self, report: CycleReport) {
        *self.last_cycle.write().unwrap() = Some(Arc::new(report));
        *self.last_cycle_at.write().unwrap() = Some(Instant::now());
    }
}

pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/api/v1/state", get(api_state))
        .route("/api/v1/policy/explain", get(api_explain))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let since = (*state.last_cycle_at.read().unwrap()).unwrap_or(state.started);
    let age = since.elapsed();
    let body = serde_json::json!({
        "status": if age <= state.stale_after { "ok" } else { "stale" },
        "seconds_since_last_cycle": age.as_secs_f64(),
        "cycles": state.last_cycle.read().unwrap().as_ref().map_or(0, |c| c.cycle),
    });
    let code = if age <= state.stale_after {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn api_state(State(state): State<Arc<AppState>>) -> Response {
    match state.last_cycle.read().unwrap().clone() {
        Some(report) => Json(report.as_ref().clone()).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"error": "no cycle has run yet"})),
        )
            .into_response(),
    }
}

/// What the last cycle's policy decided for each container, and why.
async fn api_explain(State(state): State<Arc<AppState>>) -> Response {
    match state.last_cycle.read().unwrap().clone() {
        Some(report) => Json(explain::entries(&report)).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"error": "no cycle has run yet"})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(app: Router, path: &str) -> (StatusCode, String) {
        let resp = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn metrics_healthz_and_state() {
        let state = Arc::new(AppState::new(
            Arc::new(Metrics::new("t")),
            Duration::from_secs(60),
        ));
        let (code, body) = get(app(state.clone()), "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("gestor_build_info"));
        let (code, body) = get(app(state.clone()), "/healthz").await;
        assert_eq!(code, StatusCode::OK, "{body}");
        let (code, _) = get(app(state.clone()), "/api/v1/state").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        let (code, _) = get(app(state), "/nope").await;
        assert_eq!(code, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn healthz_turns_503_when_cycles_stop() {
        let mut state = AppState::new(Arc::new(Metrics::new("t")), Duration::from_secs(60));
        state.stale_after = Duration::ZERO;
        std::thread::sleep(Duration::from_millis(5));
        let (code, body) = get(app(Arc::new(state)), "/healthz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("stale"));
    }
}
