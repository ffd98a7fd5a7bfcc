//! # beluga-http-middleware
//!
//! A [`tower`](https://docs.rs/tower) layer that records the tutorial's API
//! metrics for every request an axum, tonic or hyper service answers, into a
//! [`beluga_monitor::Monitor`]:
//!
//! | metric | labels | recorded |
//! |---|---|---|
//! | `monitoring_api_requests_total` | `method`, `endpoint`, `status` | once per request, when its response body ends |
//! | `monitoring_response_time_seconds` | `type="api"`, `method`, `endpoint` | request start to the end of the response body |
//! | `monitoring_errors_total` | `component` (default `api`), `error_type` | `server_error` (5xx), `body_error` (the body failed mid-stream), `service_error` (the service returned an error; counted with status 500), `cancelled` (the request or its body was dropped before the end) |
//! | `monitoring_api_requests_in_flight` | `method`, `endpoint` | requests started whose body has not ended |
//!
//! ```
//! use axum::{routing::get, Router};
//! use beluga_http_middleware::MetricsLayer;
//! use beluga_monitor::Monitor;
//!
//! let monitor = Monitor::builder().service_name("agent-api").build()?;
//! let app: Router = Router::new()
//!     .route("/v1/agents/{id}", get(|| async { "ok" }))
//!     .layer(MetricsLayer::new(&monitor)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Bounded labels
//!
//! The `endpoint` label is the route *template* axum matched
//! (`/v1/agents/{id}`, from `MatchedPath`; feature `axum`, on by default) or
//! what [`MetricsLayerBuilder::endpoint_from`] returns, never the raw path:
//! requests nothing names (404s on random paths, scanners) share one value,
//! `unmatched` by default. Methods outside the nine standard ones are
//! `OTHER`. Every family also has the engine's cardinality limit.
//!
//! ## Streaming
//!
//! A response is recorded when its body ends, so a streamed LLM answer is
//! timed to its last chunk, and a body that fails or whose client goes away
//! mid-stream is counted as an error with the status already sent. The
//! in-flight gauge covers the same span.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod body;
mod endpoint;
mod record;
mod service;

use std::borrow::Cow;
use std::sync::Arc;

use beluga_metrics::{Opts, RegistryError};
use beluga_monitor::Monitor;
use tower_layer::Layer;

pub use body::TimedBody;
pub use service::{MetricsService, ResponseFuture};

use endpoint::{EndpointFn, EndpointSource};
use record::Shared;

/// The in-flight gauge's name.
pub const IN_FLIGHT_METRIC: &str = "monitoring_api_requests_in_flight";

/// The `endpoint` label of requests nothing names, unless
/// [`MetricsLayerBuilder::unmatched_label`] says otherwise.
pub const UNMATCHED: &str = "unmatched";

/// Records every request of the service it wraps (see the crate docs).
/// Cloning is cheap; all clones record into the same monitor.
#[derive(Clone)]
pub struct MetricsLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MetricsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsLayer")
            .field("component", &self.shared.component)
            .field("unmatched", &self.shared.unmatched)
            .finish()
    }
}

impl MetricsLayer {
    /// A layer with the defaults: endpoints from axum's matched route
    /// (with feature `axum`; without it, every request is `unmatched`
    /// unless [`MetricsLayerBuilder::endpoint_from`] names it), errors
    /// under component `api`.
    ///
    /// Fails only if the monitor's registry already holds
    /// `monitoring_api_requests_in_flight` with another definition.
    pub fn new(monitor: &Monitor) -> Result<MetricsLayer, RegistryError> {
        MetricsLayer::builder(monitor).build()
    }

    /// Settings, starting from the defaults.
    ///
    /// ```
    /// use std::borrow::Cow;
    /// use beluga_http_middleware::MetricsLayer;
    /// # let monitor = beluga_monitor::Monitor::builder().registry(&Default::default()).build()?;
    /// // A hyper or tonic service has no axum router: name endpoints yourself.
    /// let layer = MetricsLayer::builder(&monitor)
    ///     .component("grpc")
    ///     .endpoint_from(|parts| match parts.uri.path() {
    ///         "/agent.v1.Agent/Chat" => Some(Cow::Borrowed("Chat")),
    ///         _ => None, // counted as `unmatched`
    ///     })
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(monitor: &Monitor) -> MetricsLayerBuilder {
        MetricsLayerBuilder {
            monitor: monitor.clone(),
            component: "api".into(),
            endpoint: None,
            unmatched: UNMATCHED.into(),
        }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Settings for a [`MetricsLayer`].
pub struct MetricsLayerBuilder {
    monitor: Monitor,
    component: String,
    endpoint: Option<EndpointFn>,
    unmatched: String,
}

impl std::fmt::Debug for MetricsLayerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsLayerBuilder")
            .field("component", &self.component)
            .field("endpoint_from", &self.endpoint.is_some())
            .field("unmatched", &self.unmatched)
            .finish()
    }
}

impl MetricsLayerBuilder {
    /// The `component` label of `monitoring_errors_total` (default `api`).
    pub fn component(mut self, component: impl Into<String>) -> Self {
        self.component = component.into();
        self
    }

    /// Names each request's endpoint with `name` instead of axum's matched
    /// route; `None` counts the request as unmatched. Return a small, fixed
    /// set of names (route templates, RPC method names), never the raw path.
    pub fn endpoint_from(
        mut self,
        name: impl Fn(&http::request::Parts) -> Option<Cow<'static, str>> + Send + Sync + 'static,
    ) -> Self {
        self.endpoint = Some(Arc::new(name));
        self
    }

    /// The `endpoint` label of requests nothing names (default
    /// [`UNMATCHED`]).
    pub fn unmatched_label(mut self, label: impl Into<String>) -> Self {
        self.unmatched = label.into();
        self
    }

    /// Builds the layer, registering the in-flight gauge in the monitor's
    /// registry.
    pub fn build(self) -> Result<MetricsLayer, RegistryError> {
        let in_flight = self.monitor.registry().gauge_family(
            Opts::new(
                IN_FLIGHT_METRIC,
                "API requests started whose response body has not ended, by method and endpoint.",
            )
            .labels(["method", "endpoint"]),
        )?;
        let source = match self.endpoint {
            Some(name) => EndpointSource::Function(name),
            #[cfg(feature = "axum")]
            None => EndpointSource::MatchedPath,
            #[cfg(not(feature = "axum"))]
            None => EndpointSource::Unmatched,
        };
        Ok(MetricsLayer {
            shared: Arc::new(Shared {
                monitor: self.monitor,
                in_flight,
                component: self.component,
                source,
                unmatched: self.unmatched,
            }),
        })
    }
}
