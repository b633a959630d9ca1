//! What every handler can reach: the services, and what only the HTTP layer needs (the limits
//! on callers, the OpenDSR identity, the web's own settings).

use std::sync::Arc;

use crate::app::Services;
use crate::http::Metrics;

/// The application state shared by all workers.
pub(crate) struct AppState {
    /// What the domain services share.
    pub(crate) services: Services,
    /// Request rates per key and token exchanges per address.
    pub(crate) limits: Arc<super::limits::RateLimits>,
    /// OpenDSR: the processor's identity and the controllers it trusts.
    pub(crate) opendsr: OpenDsr,
    /// The web's own: metrics, documents, links, proxies, timeouts.
    pub(crate) web: Web,
}

/// OpenDSR as a processor.
pub(crate) struct OpenDsr {
    /// Signs OpenDSR answers and callbacks.
    pub(crate) identity: Arc<crate::requests::opendsr::ProcessorIdentity>,
    /// Controllers whose signatures OpenDSR requests must carry, when configured.
    pub(crate) controllers: Option<crate::requests::opendsr::ControllerKeys>,
    /// Whether OpenDSR callback URLs may be http:// or reach internal addresses.
    pub(crate) private_callbacks: bool,
}

/// The web's own settings and state.
pub(crate) struct Web {
    /// Request metrics.
    pub(crate) metrics: Metrics,
    /// The OpenAPI document, serialized once.
    pub(crate) openapi_json: String,
    /// The base of every link handed out.
    pub(crate) public_url: crate::net::PublicUrl,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub(crate) trusted_proxies: crate::net::TrustedProxies,
    /// How long a request body may take to arrive in full.
    pub(crate) body_timeout: std::time::Duration,
}
