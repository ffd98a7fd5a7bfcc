//! The `metrics` handle traits implemented over beluga handles.
//!
//! Each wrapper holds a beluga handle (one `Arc` to the series), so a
//! `metrics::Counter` kept by the caller records at beluga's cost plus one
//! dynamic call.

use beluga_metrics::{Counter, Gauge, Histogram};
use metrics::{CounterFn, GaugeFn, HistogramFn};

/// A beluga counter behind `metrics::Counter`.
pub(crate) struct FacadeCounter(pub(crate) Counter);

impl CounterFn for FacadeCounter {
    fn increment(&self, value: u64) {
        self.0.add(value);
    }

    /// Raises the counter to `value` if it is below it. A counter only goes
    /// up, so a lower `value` (a source that restarted) is ignored. Two
    /// threads setting absolute values at once may both add their
    /// difference; `absolute` is meant for one thread mirroring an external
    /// total.
    fn absolute(&self, value: u64) {
        let now = self.0.get();
        if value > now {
            self.0.add(value - now);
        }
    }
}

/// A beluga gauge behind `metrics::Gauge`.
pub(crate) struct FacadeGauge(pub(crate) Gauge);

impl GaugeFn for FacadeGauge {
    fn increment(&self, value: f64) {
        self.0.add(value);
    }

    fn decrement(&self, value: f64) {
        self.0.sub(value);
    }

    fn set(&self, value: f64) {
        self.0.set(value);
    }
}

/// A beluga histogram behind `metrics::Histogram`.
pub(crate) struct FacadeHistogram(pub(crate) Histogram);

impl HistogramFn for FacadeHistogram {
    fn record(&self, value: f64) {
        self.0.record(value);
    }

    fn record_many(&self, value: f64, count: usize) {
        for _ in 0..count {
            self.0.record(value);
        }
    }
}
