//! Opt-in expiry of idle series: a family whose series go unrecorded for a
//! while drops them from its table at encode time, so a long-running agent
//! with churning tenants keeps bounded memory.
//!
//! Recording never touches any of this: a series counts as *recorded into*
//! when its value read by an encode differs from the value the previous
//! encode read (its *fingerprint*: a counter's total, a gauge's bits, a
//! histogram's count). Idleness is therefore measured in encodes: a series
//! expires at the first encode that finds it unchanged for longer than the
//! family's idle time.
//!
//! # Protocol
//!
//! * The family's table, which holds one strong reference per live series,
//!   is only changed under its write lock; the tracker's maps are only
//!   touched by encodes and by the insert path (a mutex each, never on the
//!   recording path).
//! * Expiring a series moves it from the table to the `expired` map as a
//!   `Weak` reference, so the table's reference is given up: once no handle
//!   and no lookup cache holds the series, its memory goes.
//! * Nothing recorded is lost. A handle (or a cached lookup) that still
//!   holds an expired series records into it as before. The next encode
//!   that finds its fingerprint changed moves it back into the table (room
//!   permitting under the cardinality limit), with everything it counted;
//!   so does a lookup of its label values, which finds it before creating a
//!   new series. Only a series nobody holds any more is gone for good: the
//!   next lookup of its label values creates a new one from zero, which
//!   Prometheus reads as a counter reset.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::sample::Value;
use crate::series::Series;

/// What an encode remembers of one live series.
#[derive(Clone, Copy)]
struct Seen {
    fingerprint: u64,
    /// When the fingerprint last changed, in milliseconds since `epoch`.
    changed_at: u64,
    /// The encode that last saw the series.
    generation: u64,
}

/// A family's idle-series tracker.
pub(crate) struct IdleExpiry<S> {
    after: Duration,
    epoch: Instant,
    /// Live series by address.
    seen: Mutex<(u64, HashMap<usize, Seen>)>,
    /// Expired series that something may still hold, by label-set hash,
    /// with the fingerprint they had when they expired.
    expired: Mutex<HashMap<u64, Vec<Expired<S>>>>,
}

/// An expired series (that something may still hold) and the fingerprint
/// it had when it expired.
type Expired<S> = (Weak<Series<S>>, u64);

impl<S> std::fmt::Debug for IdleExpiry<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleExpiry")
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

/// A value's fingerprint: what changes whenever something is recorded.
pub(crate) fn fingerprint(value: &Value<'_>) -> u64 {
    match value {
        Value::Counter(n) => *n,
        Value::FloatCounter(x) | Value::Gauge(x) => x.to_bits(),
        Value::Histogram(h) => h.count(),
    }
}

/// What one encode decided about a live series.
pub(crate) enum Verdict {
    /// Expose it.
    Live,
    /// Idle for longer than the family allows: drop it from the table.
    Expire(u64),
}

impl<S> IdleExpiry<S> {
    pub(crate) fn new(after: Duration) -> Self {
        IdleExpiry {
            after,
            epoch: Instant::now(),
            seen: Mutex::new((0, HashMap::new())),
            expired: Mutex::new(HashMap::new()),
        }
    }

    /// How long a series may go unrecorded.
    pub(crate) fn after(&self) -> Duration {
        self.after
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Starts an encode's pass; returns its generation.
    pub(crate) fn begin_pass(&self) -> u64 {
        let mut seen = self.seen.lock();
        seen.0 += 1;
        seen.0
    }

    /// Judges one live series whose value this encode read.
    pub(crate) fn judge(
        &self,
        series: &Arc<Series<S>>,
        fingerprint: u64,
        generation: u64,
    ) -> Verdict {
        let now = self.now_ms();
        let mut seen = self.seen.lock();
        let entry = seen.1.entry(Arc::as_ptr(series) as usize).or_insert(Seen {
            fingerprint,
            changed_at: now,
            generation,
        });
        entry.generation = generation;
        if entry.fingerprint != fingerprint {
            entry.fingerprint = fingerprint;
            entry.changed_at = now;
        }
        if now.saturating_sub(entry.changed_at) > self.after.as_millis() as u64 {
            Verdict::Expire(entry.fingerprint)
        } else {
            Verdict::Live
        }
    }

    /// Ends an encode's pass: forgets series it did not see (removed or
    /// expired since).
    pub(crate) fn end_pass(&self, generation: u64) {
        self.seen.lock().1.retain(|_, s| s.generation == generation);
    }

    /// Records that `series` (label-set hash `hash`) left the table idle.
    pub(crate) fn expired(&self, hash: u64, series: &Arc<Series<S>>, fingerprint: u64) {
        self.seen.lock().1.remove(&(Arc::as_ptr(series) as usize));
        self.expired
            .lock()
            .entry(hash)
            .or_default()
            .push((Arc::downgrade(series), fingerprint));
    }

    /// Takes back the expired series with these label values, if something
    /// still holds it (a lookup found it before creating a new one).
    pub(crate) fn revive<V: AsRef<str>>(&self, hash: u64, values: &[V]) -> Option<Arc<Series<S>>> {
        let mut expired = self.expired.lock();
        let candidates = expired.get_mut(&hash)?;
        let mut found = None;
        candidates.retain(|(weak, _)| match weak.upgrade() {
            None => false,
            Some(series) => {
                let same = series.label_values.equals(values);
                if same && found.is_none() {
                    found = Some(series);
                    false
                } else {
                    true
                }
            }
        });
        if candidates.is_empty() {
            expired.remove(&hash);
        }
        found
    }

    /// The expired series recorded into since they expired (to go back into
    /// the table), with their hashes; forgets those nobody holds any more.
    /// `read` gives a series' current fingerprint.
    pub(crate) fn recorded_since_expiry(
        &self,
        mut read: impl FnMut(&Series<S>) -> u64,
    ) -> Vec<(u64, Arc<Series<S>>)> {
        let mut back = Vec::new();
        let mut expired = self.expired.lock();
        expired.retain(|hash, candidates| {
            candidates.retain(|(weak, fingerprint)| match weak.upgrade() {
                None => false,
                Some(series) => {
                    if read(&series) != *fingerprint {
                        back.push((*hash, series));
                        false
                    } else {
                        true
                    }
                }
            });
            !candidates.is_empty()
        });
        back
    }

    /// Puts a series that could not go back (the family was full) back
    /// among the expired ones.
    pub(crate) fn keep_expired(&self, hash: u64, series: &Arc<Series<S>>, fingerprint: u64) {
        self.expired
            .lock()
            .entry(hash)
            .or_default()
            .push((Arc::downgrade(series), fingerprint));
    }

    /// Expired series not yet forgotten (some may be held by no one until
    /// the next encode notices).
    pub(crate) fn expired_len(&self) -> usize {
        self.expired.lock().values().map(Vec::len).sum()
    }
}
