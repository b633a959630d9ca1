//! What every handler can reach: the services, and what only the HTTP layer needs (the limits
//! on callers, the OpenDSR identity, the web's own settings).

use std::sync::Arc;

use crate::app::Services;
use crate::http::Metrics;

/// The application state shared by all workers.
pub struct AppState {
    /// What the domain services share.
    pub services: Services,
    /// Request rates per key and token exchanges per address.
    pub limits: Arc<super::limits::RateLimits>,
    /// OpenDSR: the processor's identity and the controllers it trusts.
    pub opendsr: OpenDsr,
    /// The web's own: metrics, documents, links, proxies, timeouts.
    pub web: Web,
}

/// OpenDSR as a processor.
pub struct OpenDsr {
    /// Signs OpenDSR answers and callbacks.
    pub identity: Arc<crate::requests::opendsr::ProcessorIdentity>,
    /// Controllers whose signatures OpenDSR requests must carry, when configured.
    pub controllers: Option<crate::requests::opendsr::ControllerKeys>,
    /// Whether OpenDSR callback URLs may be http:// or reach internal addresses.
    pub private_callbacks: bool,
}

/// The web's own settings and state.
pub struct Web {
    /// Request metrics.
    pub metrics: Metrics,
    /// The OpenAPI document, serialized once.
    pub openapi_json: String,
    /// The base of every link handed out.
    pub public_url: crate::net::PublicUrl,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: crate::net::TrustedProxies,
    /// How long a request body may take to arrive in full.
    pub body_timeout: std::time::Duration,
}
