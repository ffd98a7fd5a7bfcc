//! Optional protection of the endpoint.

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
            Auth::Basic { username, password } => {
                format!(
                    "Basic {}",
                    crate::base64::standard(format!("{username}:{password}").as_bytes())
                )
            }
        }
    }

    /// The `WWW-Authenticate` challenge sent with a 401.
    pub(crate) fn challenge(&self) -> &'static str {
        match self {
            Auth::Bearer(_) => "Bearer realm=\"metrics\"",
            Auth::Basic { .. } => "Basic realm=\"metrics\", charset=\"UTF-8\"",
        }
    }
}

/// Compares without stopping at the first difference, so response time does
/// not reveal how much of a guessed credential was right.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
