//! The `method` and `endpoint` labels of a request: both bounded, never the
//! raw path.

use std::borrow::Cow;
use std::sync::Arc;

use http::{Method, Request};

/// A user function naming a request's endpoint (`None`: unmatched).
pub(crate) type EndpointFn =
    Arc<dyn Fn(&http::request::Parts) -> Option<Cow<'static, str>> + Send + Sync>;

/// Where the `endpoint` label comes from.
#[derive(Clone)]
pub(crate) enum EndpointSource {
    /// axum's matched route template (`/v1/agents/{id}`), set by the router.
    #[cfg(feature = "axum")]
    MatchedPath,
    /// The user's function.
    Function(EndpointFn),
    /// Nothing names endpoints: every request is unmatched.
    #[cfg(not(feature = "axum"))]
    Unmatched,
}

/// A request's endpoint label, held until the request is recorded.
pub(crate) enum Endpoint {
    Named(Cow<'static, str>),
    #[cfg(feature = "axum")]
    Matched(axum::extract::MatchedPath),
    Unmatched,
}

impl Endpoint {
    pub(crate) fn as_str<'a>(&'a self, unmatched: &'a str) -> &'a str {
        match self {
            Endpoint::Named(name) => name,
            #[cfg(feature = "axum")]
            Endpoint::Matched(path) => path.as_str(),
            Endpoint::Unmatched => unmatched,
        }
    }
}

impl EndpointSource {
    /// The request's endpoint (and the request, given back whole).
    pub(crate) fn endpoint<B>(&self, request: Request<B>) -> (Request<B>, Endpoint) {
        match self {
            #[cfg(feature = "axum")]
            EndpointSource::MatchedPath => {
                let endpoint = request
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map_or(Endpoint::Unmatched, |p| Endpoint::Matched(p.clone()));
                (request, endpoint)
            }
            EndpointSource::Function(name) => {
                let (parts, body) = request.into_parts();
                let endpoint = name(&parts).map_or(Endpoint::Unmatched, Endpoint::Named);
                (Request::from_parts(parts, body), endpoint)
            }
            #[cfg(not(feature = "axum"))]
            EndpointSource::Unmatched => (request, Endpoint::Unmatched),
        }
    }
}

/// The `method` label: the nine standard methods by name, any extension
/// method as `OTHER` (a client may send any token as a method).
pub(crate) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_methods_fold_into_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(
            method_label(&Method::from_bytes(b"PURGE").unwrap()),
            "OTHER"
        );
        assert_eq!(
            method_label(&Method::from_bytes(b"X-RANDOM-123").unwrap()),
            "OTHER"
        );
    }
}
