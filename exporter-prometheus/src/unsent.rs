//! The bytes of scrape responses handed to connections but not yet written
//! to their sockets, bounded across all connections.
//!
//! A scraper that sends `GET /metrics` and never reads keeps its response
//! body in memory until the write timeout closes the connection: with
//! 100,000 series that is megabytes per connection, renewable by opening
//! another one. So every body is *reserved* against one budget
//! (`max_unsent_bytes`) before it is handed to hyper, and *released* as the
//! connection writes it to its socket, or all at once when the connection
//! closes. A body that does not fit while others are held is refused with
//! `503` and `Retry-After: 1`; one body larger than the whole budget is
//! still served when nothing else is held, so a large registry never
//! becomes unscrapable. While more than half of the budget is held, a
//! write blocked on a client is given [`PRESSURE_WRITE_TIMEOUT`] instead of
//! the configured write timeout, so slow clients make room for the scrapes
//! that read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use beluga_metrics::Gauge;

/// How long a write may stay blocked on a client while more than half of
/// the unsent-bytes budget is held.
pub(crate) const PRESSURE_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// The budget shared by every connection of one exporter.
pub(crate) struct UnsentBudget {
    held: AtomicU64,
    budget: u64,
    /// `beluga_exporter_unsent_bytes`.
    gauge: Gauge,
}

impl UnsentBudget {
    pub(crate) fn new(budget: u64, gauge: Gauge) -> UnsentBudget {
        UnsentBudget {
            held: AtomicU64::new(0),
            budget,
            gauge,
        }
    }

    /// Whether the whole budget is held: a new scrape cannot fit.
    pub(crate) fn full(&self) -> bool {
        self.held.load(Ordering::Relaxed) >= self.budget
    }

    /// Whether more than half of the budget is held.
    pub(crate) fn under_pressure(&self) -> bool {
        self.held.load(Ordering::Relaxed) > self.budget / 2
    }

    /// Reserves `bytes`, unless that would pass the budget while other
    /// bodies are held.
    fn try_reserve(&self, bytes: u64) -> bool {
        let mut held = self.held.load(Ordering::Relaxed);
        loop {
            let after = held.saturating_add(bytes);
            if held != 0 && after > self.budget {
                return false;
            }
            match self
                .held
                .compare_exchange_weak(held, after, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.gauge.set(after as f64);
                    return true;
                }
                Err(now) => held = now,
            }
        }
    }

    fn release(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let before = self.held.fetch_sub(bytes, Ordering::AcqRel);
        self.gauge.set(before.saturating_sub(bytes) as f64);
    }
}

/// One connection's part of the budget. A body's memory is freed only when
/// all of it has been written (the socket takes a body a slice at a time,
/// but the allocation lives until the last slice), so a connection keeps
/// its reservations until every byte it was handed has gone, then releases
/// them all at once. Dropping it (the connection closed) releases the rest.
pub(crate) struct ConnectionShare {
    budget: Arc<UnsentBudget>,
    state: parking_lot::Mutex<ShareState>,
}

#[derive(Default)]
struct ShareState {
    /// Bytes handed to this connection and not yet written to its socket.
    unsent: u64,
    /// Bytes reserved for bodies not yet wholly written.
    reserved: u64,
}

impl ConnectionShare {
    pub(crate) fn new(budget: Arc<UnsentBudget>) -> ConnectionShare {
        ConnectionShare {
            budget,
            state: parking_lot::Mutex::default(),
        }
    }

    pub(crate) fn budget(&self) -> &UnsentBudget {
        &self.budget
    }

    /// Reserves a body of `bytes` for this connection; false when it does
    /// not fit.
    pub(crate) fn reserve(&self, bytes: u64) -> bool {
        if !self.budget.try_reserve(bytes) {
            return false;
        }
        let mut state = self.state.lock();
        state.unsent = state.unsent.saturating_add(bytes);
        state.reserved = state.reserved.saturating_add(bytes);
        true
    }

    /// The socket took `bytes` (head bytes included, so the connection may
    /// count its bodies written a few hundred bytes early: it errs towards
    /// releasing).
    pub(crate) fn written(&self, bytes: u64) {
        let mut state = self.state.lock();
        if state.reserved == 0 {
            return;
        }
        state.unsent = state.unsent.saturating_sub(bytes);
        if state.unsent == 0 {
            self.budget.release(std::mem::take(&mut state.reserved));
        }
    }

    /// Whether this connection holds bodies not wholly written.
    pub(crate) fn holds_bytes(&self) -> bool {
        self.state.lock().reserved > 0
    }
}

impl Drop for ConnectionShare {
    fn drop(&mut self) {
        self.budget.release(self.state.get_mut().reserved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(bytes: u64) -> Arc<UnsentBudget> {
        let registry = beluga_metrics::Registry::new();
        let gauge = registry
            .gauge(beluga_metrics::Opts::new("unsent_bytes", "x"))
            .unwrap();
        Arc::new(UnsentBudget::new(bytes, gauge))
    }

    #[test]
    fn reservations_stay_within_the_budget_and_come_back() {
        let budget = budget(100);
        let a = ConnectionShare::new(budget.clone());
        let b = ConnectionShare::new(budget.clone());
        assert!(a.reserve(60));
        assert!(!b.reserve(60), "over the budget while a holds 60");
        assert!(budget.under_pressure());
        a.written(30);
        assert!(!b.reserve(60), "half a body written is still all held");
        a.written(1000); // head bytes counted too: never below zero
        assert!(!a.holds_bytes());
        assert!(b.reserve(60));
        assert_eq!(budget.held.load(Ordering::Relaxed), 60);
        drop(b);
        assert_eq!(budget.held.load(Ordering::Relaxed), 0);
        assert!(!budget.under_pressure());
        // One body larger than the whole budget fits when nothing is held.
        let c = ConnectionShare::new(budget.clone());
        assert!(c.reserve(500));
        assert!(budget.full());
        drop(c);
        assert!(!budget.full());
    }
}
