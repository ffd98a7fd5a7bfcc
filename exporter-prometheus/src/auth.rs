//! Optional protection of the endpoint, and the credentials of pushes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use subtle::ConstantTimeEq;

/// Credentials a scraper must present. Without any, the endpoint is public
/// to whoever can reach its port.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <token>` (Prometheus: `authorization: { credentials: <token> }`).
    Bearer(String),
    /// `Authorization: Basic ...` (Prometheus: `basic_auth`).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        match self {
            Auth::Bearer(_) => f.write_str("Auth::Bearer(<redacted>)"),
            Auth::Basic { username, .. } => write!(
                f,
                "Auth::Basic {{ username: {username:?}, password: <redacted> }}"
            ),
        }
    }
}

impl Auth {
    /// The exact `Authorization` header value these credentials produce.
    pub(crate) fn header_value(&self) -> String {
        match self {
            Auth::Bearer(token) => format!("Bearer {token}"),
            Auth::Basic { username, password } => format!(
                "Basic {}",
                STANDARD.encode(format!("{username}:{password}").as_bytes())
            ),
        }
    }

    /// The header value, marked sensitive (never indexed by hyper, hidden
    /// from `Debug`); `None` if the credentials cannot be a header value.
    #[cfg(feature = "push-gateway")]
    pub(crate) fn sensitive_header_value(&self) -> Option<beluga_http_client::http::HeaderValue> {
        beluga_http_client::sensitive_header(&self.header_value())
    }

    /// The `WWW-Authenticate` challenge sent with a 401.
    pub(crate) fn challenge(&self) -> &'static str {
        match self {
            Auth::Bearer(_) => "Bearer realm=\"metrics\"",
            Auth::Basic { .. } => "Basic realm=\"metrics\", charset=\"UTF-8\"",
        }
    }
}

/// Whether the `Authorization` header a client `given` matches `expected`
/// (a [`Auth::header_value`]): the scheme compared case-insensitively, as
/// RFC 7235 says, the credentials in constant time (`subtle`), so response
/// time does not reveal how much of a guess was right.
pub(crate) fn authorized(expected: &str, given: &[u8]) -> bool {
    let split = |value: &[u8]| -> (Vec<u8>, Vec<u8>) {
        let at = value.iter().position(|&b| b == b' ').unwrap_or(value.len());
        let (scheme, rest) = value.split_at(at);
        let credentials = rest.iter().skip_while(|&&b| b == b' ').copied().collect();
        (scheme.to_vec(), credentials)
    };
    let (want_scheme, want) = split(expected.as_bytes());
    let (got_scheme, got) = split(given);
    let scheme_ok = want_scheme.eq_ignore_ascii_case(&got_scheme);
    let credentials_ok: bool = want.ct_eq(&got).into();
    scheme_ok & credentials_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_case_insensitive_credentials_exact() {
        let bearer = Auth::Bearer("s3cret".into()).header_value();
        assert!(authorized(&bearer, b"Bearer s3cret"));
        assert!(authorized(&bearer, b"bearer s3cret"));
        assert!(authorized(&bearer, b"BEARER  s3cret"));
        assert!(!authorized(&bearer, b"Bearer S3cret"));
        assert!(!authorized(&bearer, b"Bearer s3cre"));
        assert!(!authorized(&bearer, b"Basic s3cret"));
        assert!(!authorized(&bearer, b""));
        let basic = Auth::Basic {
            username: "prom".into(),
            password: "pw".into(),
        };
        assert_eq!(basic.header_value(), "Basic cHJvbTpwdw==");
        assert!(authorized(&basic.header_value(), b"basic cHJvbTpwdw=="));
    }

    #[test]
    fn debug_never_shows_credentials() {
        let auth = Auth::Basic {
            username: "prom".into(),
            password: "hunter2".into(),
        };
        #[cfg(feature = "push-gateway")]
        let header = format!("{:?}", auth.sensitive_header_value().unwrap());
        #[cfg(not(feature = "push-gateway"))]
        let header = String::new();
        for text in [format!("{auth:?}"), header] {
            assert!(
                !text.contains("hunter2") && !text.contains("cHJvbTpodW50ZXIy"),
                "{text}"
            );
        }
    }
}
