//! One retry policy for every exporter: exponential backoff with jitter,
//! `Retry-After`, an attempt limit and a deadline. The exporter decides
//! which answers are worth another attempt; the policy decides when and
//! whether to make it.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use hyper::http::{header, HeaderMap};
use tokio::time::Instant;

/// What one attempt came to.
#[derive(Debug)]
pub enum Outcome<T, E> {
    /// Delivered.
    Done(T),
    /// Worth another attempt, after `retry_after` if the server said so.
    Retry {
        /// Why the attempt failed, for the final error.
        why: String,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// Final: another attempt would fail the same way.
    Fatal(E),
}

/// A request that got no answer (connect, send, read, timeout) is always
/// worth another attempt.
impl<T, E> From<crate::SendError> for Outcome<T, E> {
    fn from(error: crate::SendError) -> Self {
        Outcome::Retry {
            why: error.to_string(),
            retry_after: None,
        }
    }
}

/// How the push protocols (Pushgateway, remote write) read an answer:
/// success is done; `5xx` and `429` are worth another attempt, after the
/// `Retry-After` the server gave; any other status is final, with the start
/// of the body to say why.
///
/// ```
/// use beluga_http_client::{push_outcome, Outcome};
/// use beluga_http_client::http::StatusCode;
/// # use beluga_http_client::Response;
/// # fn answer(status: StatusCode) -> Response {
/// #     Response { status, headers: Default::default(), body: bytes::Bytes::from_static(b"body"), truncated: false }
/// # }
/// assert!(matches!(push_outcome(&answer(StatusCode::NO_CONTENT)), Outcome::Done(())));
/// assert!(matches!(push_outcome(&answer(StatusCode::TOO_MANY_REQUESTS)), Outcome::Retry { .. }));
/// assert!(matches!(push_outcome(&answer(StatusCode::BAD_REQUEST)), Outcome::Fatal((StatusCode::BAD_REQUEST, _))));
/// ```
pub fn push_outcome(response: &crate::Response) -> Outcome<(), (hyper::http::StatusCode, String)> {
    let status = response.status;
    if status.is_success() {
        return Outcome::Done(());
    }
    let text = response.body_text(300);
    if status.is_server_error() || status == hyper::http::StatusCode::TOO_MANY_REQUESTS {
        Outcome::Retry {
            why: format!("{status}: {text}"),
            retry_after: retry_after(&response.headers),
        }
    } else {
        Outcome::Fatal((status, text))
    }
}

/// Why [`RetryPolicy::run`] gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryError<E> {
    /// An attempt failed for good.
    Fatal {
        /// The attempt's error.
        error: E,
        /// Attempts made, this one included.
        attempts: u32,
    },
    /// Every attempt the policy allows failed, or the next wait (backoff or
    /// `Retry-After`) would pass the deadline or the longest wait.
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// Why the last one failed.
        last: String,
    },
    /// The deadline passed before the next attempt could start.
    DeadlineExceeded {
        /// Attempts made.
        attempts: u32,
        /// Why the last one failed, if one was made.
        last: Option<String>,
    },
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryError::Fatal { error, attempts } => {
                write!(f, "{error} (after {attempts} attempt(s))")
            }
            RetryError::GaveUp { attempts, last } => {
                write!(f, "gave up after {attempts} attempt(s), last: {last}")
            }
            RetryError::DeadlineExceeded { attempts, last } => {
                write!(f, "deadline passed after {attempts} attempt(s)")?;
                match last {
                    Some(last) => write!(f, ", last: {last}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// When to try again.
///
/// ```
/// # use std::time::Duration;
/// use beluga_http_client::{Outcome, RetryError, RetryPolicy};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let policy = RetryPolicy::new(Duration::from_millis(1), Duration::from_millis(4)).max_attempts(3);
/// let result: Result<(), RetryError<String>> = policy
///     .run(None, |_left| async { Outcome::Retry { why: "503".into(), retry_after: None } })
///     .await;
/// assert_eq!(result, Err(RetryError::GaveUp { attempts: 3, last: "503".into() }));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    initial_backoff: Duration,
    max_backoff: Duration,
    max_attempts: u32,
    jitter: bool,
}

impl RetryPolicy {
    /// The longest wait a server can ask for between two attempts
    /// (`Retry-After`, gRPC `RetryInfo`): a longer one is taken as this
    /// long, then checked against the deadline like any other wait.
    pub const MAX_PEER_WAIT: Duration = Duration::from_secs(300);

    /// Backoff starting at `initial`, doubling up to `max`, with jitter, as
    /// many attempts as a deadline allows.
    pub fn new(initial: Duration, max: Duration) -> RetryPolicy {
        RetryPolicy {
            initial_backoff: initial,
            max_backoff: max.max(initial),
            max_attempts: u32::MAX,
            jitter: true,
        }
    }

    /// At most `attempts` attempts (at least one).
    pub fn max_attempts(mut self, attempts: u32) -> RetryPolicy {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Waits exactly the backoff, without jitter (for tests).
    pub fn without_jitter(mut self) -> RetryPolicy {
        self.jitter = false;
        self
    }

    /// Runs `attempt` until it is done, fails for good, the attempts run
    /// out, or `deadline` passes. `attempt` gets the time left before the
    /// deadline, to bound its own timeout. Between attempts the policy waits
    /// its backoff (times a jitter factor in [0.5, 1) so that many exporters
    /// do not retry in lockstep), or longer when the server asked for longer
    /// (`Retry-After`, gRPC `RetryInfo`): a server's wait is never shorter
    /// than the backoff, so `Retry-After: 0` cannot turn the loop into a
    /// flood, and never longer than [`RetryPolicy::MAX_PEER_WAIT`]. It never
    /// waits past the deadline; without a deadline it never waits longer
    /// than the maximum backoff: a server asking for longer makes it give up
    /// and say so. No wait a server names, however large, can overflow.
    pub async fn run<T, E, F, Fut>(
        &self,
        deadline: Option<Instant>,
        mut attempt: F,
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut(Option<Duration>) -> Fut,
        Fut: Future<Output = Outcome<T, E>>,
    {
        let mut backoff = self.initial_backoff;
        let mut attempts = 0u32;
        let mut last = None;
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return Err(RetryError::DeadlineExceeded { attempts, last });
            }
            attempts += 1;
            let (why, retry_after) = match attempt(left).await {
                Outcome::Done(value) => return Ok(value),
                Outcome::Fatal(error) => return Err(RetryError::Fatal { error, attempts }),
                Outcome::Retry { why, retry_after } => (why, retry_after),
            };
            let own_wait = if self.jitter {
                backoff.mul_f64(jitter())
            } else {
                backoff
            };
            let wait = match retry_after {
                Some(asked) => asked.clamp(own_wait, Self::MAX_PEER_WAIT.max(own_wait)),
                None => own_wait,
            };
            backoff = backoff.saturating_mul(2).min(self.max_backoff);
            let too_long = match deadline {
                // `None`: past what an `Instant` can hold, so past any deadline.
                Some(deadline) => Instant::now()
                    .checked_add(wait)
                    .is_none_or(|resume| resume >= deadline),
                None => wait > self.max_backoff,
            };
            if attempts >= self.max_attempts || too_long {
                let last = match retry_after {
                    Some(asked) if too_long => format!("{why} (asked to retry after {asked:?})"),
                    _ => why,
                };
                return Err(RetryError::GaveUp { attempts, last });
            }
            last = Some(why);
            tokio::time::sleep(wait).await;
        }
    }
}

/// A factor in [0.5, 1.0).
fn jitter() -> f64 {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    0.5 + (random % 1000) as f64 / 2000.0
}

/// The `Retry-After` header as a wait (RFC 9110, section 10.2.3): a number
/// of seconds, or an HTTP date (a date already past is a wait of zero). A
/// value that is neither reads as absent. Any number of seconds is read,
/// even one past `u64::MAX` (as `Duration::MAX`): [`RetryPolicy::run`]
/// bounds what it waits.
///
/// ```
/// # use beluga_http_client::{http::{HeaderMap, HeaderValue}, retry_after};
/// # use std::time::Duration;
/// let mut headers = HeaderMap::new();
/// headers.insert("retry-after", HeaderValue::from_static("3"));
/// assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
/// headers.insert("retry-after", HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
/// assert_eq!(retry_after(&headers), Some(Duration::ZERO));
/// ```
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: only too many of them can fail to parse.
        return Some(value.parse().map_or(Duration::MAX, Duration::from_secs));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(
        date.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deadline_and_retry_after() {
        let policy = RetryPolicy::new(Duration::from_secs(1), Duration::from_secs(4));
        // A Retry-After past the deadline gives up at once, counting the attempt.
        let deadline = Instant::now() + Duration::from_secs(10);
        let result: Result<(), RetryError<()>> = policy
            .run(Some(deadline), |_| async {
                Outcome::Retry {
                    why: "503".into(),
                    retry_after: Some(Duration::from_secs(3600)),
                }
            })
            .await;
        assert!(matches!(
            result,
            Err(RetryError::GaveUp { attempts: 1, .. })
        ));
        // Fatal keeps the attempt count.
        let mut n = 0;
        let result: Result<(), RetryError<&str>> = policy
            .run(None, |_| {
                n += 1;
                let outcome = if n < 3 {
                    Outcome::Retry {
                        why: "reset".into(),
                        retry_after: None,
                    }
                } else {
                    Outcome::Fatal("400")
                };
                async move { outcome }
            })
            .await;
        assert_eq!(
            result,
            Err(RetryError::Fatal {
                error: "400",
                attempts: 3
            })
        );
        // Without a deadline, a Retry-After longer than the longest backoff gives up.
        let result: Result<(), RetryError<()>> = policy
            .run(None, |_| async {
                Outcome::Retry {
                    why: "429".into(),
                    retry_after: Some(Duration::from_secs(5)),
                }
            })
            .await;
        assert!(
            matches!(result, Err(RetryError::GaveUp { attempts: 1, ref last }) if last.contains("5s"))
        );
    }

    /// A server's wait that would overflow an `Instant` ends the retries
    /// with an error: it never panics the task that pushes.
    #[tokio::test(start_paused = true)]
    async fn the_largest_waits_a_server_can_name_never_overflow() {
        let policy = RetryPolicy::new(Duration::from_millis(10), Duration::from_secs(5));
        let largest = [
            Duration::MAX,
            Duration::from_secs(u64::MAX),
            Duration::from_secs(i64::MAX as u64) + Duration::from_nanos(999_999_999),
        ];
        for asked in largest {
            // A deadline nearer than `MAX_PEER_WAIT`, or none: one attempt.
            for deadline in [None, Some(Instant::now() + Duration::from_secs(60))] {
                let result: Result<(), RetryError<()>> = policy
                    .run(deadline, |_| async move {
                        Outcome::Retry {
                            why: "503".into(),
                            retry_after: Some(asked),
                        }
                    })
                    .await;
                assert!(
                    matches!(result, Err(RetryError::GaveUp { attempts: 1, .. })),
                    "{asked:?} {deadline:?}: {result:?}"
                );
            }
        }
    }

    /// A long wait with a far deadline is cut to `MAX_PEER_WAIT`.
    #[tokio::test(start_paused = true)]
    async fn a_long_wait_is_cut_to_the_longest_a_peer_may_ask() {
        let policy = RetryPolicy::new(Duration::from_millis(10), Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_secs(24 * 3600);
        let start = Instant::now();
        let mut seen = Vec::new();
        let _: Result<(), RetryError<()>> = policy
            .max_attempts(2)
            .run(Some(deadline), |_| {
                seen.push(start.elapsed());
                async {
                    Outcome::Retry {
                        why: "503".into(),
                        retry_after: Some(Duration::from_secs(u64::MAX)),
                    }
                }
            })
            .await;
        assert_eq!(seen, [Duration::ZERO, RetryPolicy::MAX_PEER_WAIT]);
    }

    /// `Retry-After: 0` waits the policy's own backoff: a server answering
    /// it to every request gets no more requests than plain backoff sends.
    #[tokio::test(start_paused = true)]
    async fn a_zero_wait_never_goes_below_the_backoff() {
        let policy = RetryPolicy::new(Duration::from_millis(100), Duration::from_secs(1));
        let deadline = Instant::now() + Duration::from_secs(7);
        let mut requests = 0;
        let result: Result<(), RetryError<()>> = policy
            .run(Some(deadline), |_| {
                requests += 1;
                async {
                    Outcome::Retry {
                        why: "503".into(),
                        retry_after: Some(Duration::ZERO),
                    }
                }
            })
            .await;
        assert!(result.is_err());
        // Backoff 100 ms doubling to 1 s, jitter in [0.5, 1): at most
        // 4 + 1 + (7 s - 0.75 s) / 0.5 s waits fit in 7 s.
        assert!((8..=18).contains(&requests), "{requests} requests in 7 s");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        use hyper::http::HeaderValue;
        let read = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static(value));
            retry_after(&headers)
        };
        assert_eq!(read("0"), Some(Duration::ZERO));
        assert_eq!(read(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            read("18446744073709551615"),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(read("99999999999999999999999"), Some(Duration::MAX));
        assert_eq!(read("Thu, 01 Jan 1970 00:00:00 GMT"), Some(Duration::ZERO));
        let far = read("Fri, 31 Dec 9999 23:59:59 GMT").expect("a date");
        assert!(far > Duration::from_secs(7000 * 365 * 24 * 3600), "{far:?}");
        assert_eq!(read("-1"), None);
        assert_eq!(read("soon"), None);
        assert_eq!(read(""), None);
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_up_to_the_max() {
        let policy = RetryPolicy::new(Duration::from_millis(100), Duration::from_millis(400))
            .without_jitter()
            .max_attempts(5);
        let start = Instant::now();
        let mut seen = Vec::new();
        let _: Result<(), RetryError<()>> = policy
            .run(None, |_| {
                seen.push(start.elapsed().as_millis());
                async {
                    Outcome::Retry {
                        why: "x".into(),
                        retry_after: None,
                    }
                }
            })
            .await;
        assert_eq!(seen, [0, 100, 300, 700, 1100]);
    }
}
