//! One URL parser for every exporter: `http://host[:port][/path]`, checked
//! with [`http::Uri`] when the exporter is built.

use std::fmt;

use bytes::Bytes;
use hyper::http::{self, header, uri::Authority, Method, Request, Uri};

/// Why a URL cannot be an exporter endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointError {
    /// Not a URL at all.
    Malformed(String),
    /// Not `http://` (TLS is not built in; put a local proxy in front).
    UnsupportedScheme(String),
    /// No host after `http://`.
    NoHost,
    /// `user:password@` in the URL: credentials go through the exporter's
    /// auth or header settings, never in a URL that may be logged.
    UserInfo,
    /// A `?query` or `#fragment`, which no endpoint here accepts.
    QueryOrFragment,
    /// A port that is not a number from 1 to 65535.
    InvalidPort(String),
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::Malformed(why) => write!(f, "not a URL: {why}"),
            EndpointError::UnsupportedScheme(scheme) => write!(
                f,
                "scheme {scheme:?} is not supported; use http:// (TLS through a local proxy)"
            ),
            EndpointError::NoHost => write!(f, "no host; use http://host:port"),
            EndpointError::UserInfo => write!(
                f,
                "credentials in the URL are refused; configure them as auth or headers"
            ),
            EndpointError::QueryOrFragment => write!(f, "a query or fragment is not allowed"),
            EndpointError::InvalidPort(port) => {
                write!(f, "port {port:?} is not a number from 1 to 65535")
            }
        }
    }
}

impl std::error::Error for EndpointError {}

/// A checked `http://` endpoint: where requests go.
///
/// ```
/// use beluga_http_client::{Endpoint, EndpointError};
/// let e = Endpoint::parse("http://gateway.local/prefix/")?;
/// assert_eq!((e.authority(), e.path()), ("gateway.local:80", "/prefix"));
/// assert_eq!(Endpoint::parse("http://h:99999"), Err(EndpointError::InvalidPort("99999".into())));
/// assert_eq!(Endpoint::parse("http://u:p@h:1"), Err(EndpointError::UserInfo));
/// assert_eq!(Endpoint::parse("http://h:1/x?y=1"), Err(EndpointError::QueryOrFragment));
/// assert!(matches!(Endpoint::parse("https://h"), Err(EndpointError::UnsupportedScheme(_))));
/// # Ok::<(), EndpointError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port`, the port always explicit.
    authority: Authority,
    /// The path without a trailing `/` (empty for the root).
    path: String,
}

impl Endpoint {
    /// Parses and checks `url`.
    pub fn parse(url: &str) -> Result<Endpoint, EndpointError> {
        let url = url.trim();
        if url.contains('#') {
            return Err(EndpointError::QueryOrFragment);
        }
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| EndpointError::Malformed(e.to_string()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => return Err(EndpointError::UnsupportedScheme(other.to_string())),
            None => return Err(EndpointError::UnsupportedScheme(String::new())),
        }
        let authority = uri.authority().ok_or(EndpointError::NoHost)?;
        if authority.as_str().contains('@') {
            return Err(EndpointError::UserInfo);
        }
        if authority.host().is_empty() {
            return Err(EndpointError::NoHost);
        }
        if uri.query().is_some() {
            return Err(EndpointError::QueryOrFragment);
        }
        let port = match authority.as_str().rsplit_once(':') {
            // `[::1]` alone has colons but no port.
            Some((_, port)) if !port.ends_with(']') => match port.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(EndpointError::InvalidPort(port.to_string())),
            },
            _ => 80,
        };
        let host = authority.host();
        let authority: Authority = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
        .parse()
        .map_err(|e: http::uri::InvalidUri| EndpointError::Malformed(e.to_string()))?;
        Ok(Endpoint {
            authority,
            path: uri.path().trim_end_matches('/').to_string(),
        })
    }

    /// `url` as messages may show it: any `user:password@` replaced by
    /// `***@`, every query value by `***` (`?token=…` is a common place for
    /// a secret) and any fragment by `#***`. An endpoint URL that carried a
    /// secret must not print it.
    ///
    /// ```
    /// use beluga_http_client::Endpoint;
    /// assert_eq!(Endpoint::redact("http://u:s3cret@h:1/p"), "http://***@h:1/p");
    /// assert_eq!(Endpoint::redact("http://h:1/p?token=s3cret&v"), "http://h:1/p?token=***&v");
    /// assert_eq!(Endpoint::redact("http://h:1/p#s3cret"), "http://h:1/p#***");
    /// ```
    pub fn redact(url: &str) -> String {
        let (scheme, rest) = match url.find("://") {
            Some(i) => url.split_at(i + 3),
            None => ("", url),
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(authority_end);
        let mut out = String::with_capacity(url.len());
        out.push_str(scheme);
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        let (before_fragment, fragment) = match rest.find('#') {
            Some(hash) => rest.split_at(hash),
            None => (rest, ""),
        };
        match before_fragment.split_once('?') {
            Some((path, query)) => {
                out.push_str(path);
                out.push('?');
                for (i, pair) in query.split('&').enumerate() {
                    if i > 0 {
                        out.push('&');
                    }
                    match pair.split_once('=') {
                        Some((name, _)) => {
                            out.push_str(name);
                            out.push_str("=***");
                        }
                        None => out.push_str(pair),
                    }
                }
            }
            None => out.push_str(before_fragment),
        }
        if !fragment.is_empty() {
            out.push_str("#***");
        }
        out
    }

    /// `host:port`.
    pub fn authority(&self) -> &str {
        self.authority.as_str()
    }

    /// The path, without a trailing `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// This endpoint with `suffix` (starting with `/`) appended to its path.
    ///
    /// ```
    /// # use beluga_http_client::Endpoint;
    /// let base = Endpoint::parse("http://collector:4318")?;
    /// assert_eq!(base.join("/v1/metrics").path(), "/v1/metrics");
    /// # Ok::<(), beluga_http_client::EndpointError>(())
    /// ```
    pub fn join(&self, suffix: &str) -> Endpoint {
        Endpoint {
            authority: self.authority.clone(),
            path: format!("{}{}", self.path, suffix),
        }
    }

    /// This endpoint's host with another path (starting with `/`).
    ///
    /// ```
    /// # use beluga_http_client::Endpoint;
    /// let gateway = Endpoint::parse("http://gw:9091/prefix")?;
    /// assert_eq!(gateway.with_path("/metrics/job/x").to_string(), "http://gw:9091/metrics/job/x");
    /// # Ok::<(), beluga_http_client::EndpointError>(())
    /// ```
    pub fn with_path(&self, path: &str) -> Endpoint {
        Endpoint {
            authority: self.authority.clone(),
            path: path.to_string(),
        }
    }

    /// The full URI of a request to `path` (already percent-encoded where
    /// needed) on this endpoint's host.
    pub fn uri(&self, path: &str) -> Result<Uri, http::Error> {
        let path = if path.is_empty() { "/" } else { path };
        Uri::builder()
            .scheme("http")
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
    }

    /// A request builder for `method` on this endpoint's path, with
    /// `Host` and `User-Agent` set.
    pub fn request(&self, method: Method) -> http::request::Builder {
        let uri = self.uri(&self.path);
        let builder = Request::builder()
            .method(method)
            .header(header::HOST, self.authority.as_str())
            .header(
                header::USER_AGENT,
                concat!("beluga-metrics/", env!("CARGO_PKG_VERSION")),
            );
        match uri {
            Ok(uri) => builder.uri(uri),
            // Unreachable for a parsed endpoint; the builder carries the
            // error to `body()`, which returns it.
            Err(_) => builder.uri(self.path.as_str()),
        }
    }

    /// A `POST` builder with `body`'s length set.
    pub fn post(&self, body: Bytes) -> http::request::Builder {
        self.request(Method::POST)
            .header(header::CONTENT_LENGTH, body.len())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        let cases = [
            ("http://c:4318/v1/metrics", "c:4318", "/v1/metrics"),
            ("http://c", "c:80", ""),
            ("http://c/", "c:80", ""),
            ("http://[::1]:9091", "[::1]:9091", ""),
            ("http://[::1]", "[::1]:80", ""),
            ("  http://127.0.0.1:1/a/b/  ", "127.0.0.1:1", "/a/b"),
        ];
        for (url, authority, path) in cases {
            let e = Endpoint::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!((e.authority(), e.path()), (authority, path), "{url}");
        }
    }

    #[test]
    fn refused_forms() {
        for url in [
            "",
            "c:4318",
            "http://",
            "http://:80",
            "http://h:0",
            "http://h:65536",
            "http://h:x",
            "http://a@h",
            "http://h/#f",
            "http://h/?",
            "ftp://h",
        ] {
            assert!(Endpoint::parse(url).is_err(), "{url} should be refused");
        }
    }
}
