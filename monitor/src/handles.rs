//! Pre-resolved handles for hot loops: operations, tool calls and safety
//! checks. Each resolves its series once; recording through it costs only
//! the core operations (no label lookup).

use std::time::{Duration, Instant};

use crate::error::MonitorError;
use crate::recorders::{AgentMetrics, SafetyVerdict};
use beluga_metrics::{Counter, Gauge, Histogram};

/// Pre-resolved series of one operation.
#[derive(Clone, Debug)]
pub struct OperationHandle {
    requests: Counter,
    active: Gauge,
    duration: Histogram,
}

impl OperationHandle {
    /// Starts the operation: counts it and raises `monitoring_active_operations`.
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// let turn = monitor.metrics().operation_handle("agent_turn")?.unwrap();
    /// let running = turn.begin();
    /// // ... the turn ...
    /// running.end();
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    #[inline]
    pub fn begin(&self) -> ActiveOperation<'_> {
        self.requests.inc();
        self.active.inc();
        ActiveOperation {
            handle: self,
            started: Instant::now(),
            ended: false,
        }
    }

    /// Records a finished operation of known duration (counts it and
    /// records the duration; the active gauge is untouched).
    #[inline]
    pub fn record(&self, duration: Duration) {
        self.requests.inc();
        self.duration.record_duration(duration);
    }
}

/// An operation in progress, from [`OperationHandle::begin`]. Ends (and
/// records the wall-clock duration) when dropped.
#[must_use = "dropping it ends the operation at once"]
#[derive(Debug)]
pub struct ActiveOperation<'a> {
    handle: &'a OperationHandle,
    started: Instant,
    ended: bool,
}

impl ActiveOperation<'_> {
    /// Ends now, recording the wall-clock duration.
    pub fn end(self) {}

    /// Ends now, recording `duration` instead of the wall clock (for
    /// simulations and replays).
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// # let turn = monitor.metrics().operation_handle("replayed")?.unwrap();
    /// turn.begin().end_with_duration(std::time::Duration::from_millis(1500));
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn end_with_duration(mut self, duration: Duration) {
        self.finish(duration);
    }

    fn finish(&mut self, duration: Duration) {
        if !self.ended {
            self.ended = true;
            self.handle.active.dec();
            self.handle.duration.record_duration(duration);
        }
    }
}

impl Drop for ActiveOperation<'_> {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        self.finish(elapsed);
    }
}

/// Pre-resolved series of successful calls of one tool for one tenant.
#[derive(Clone, Debug)]
pub struct ToolCallHandle {
    duration: Histogram,
}

impl ToolCallHandle {
    /// Records one successful call of the tool.
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// let search = monitor.metrics().tool_call_handle("web_search", "pro")?.unwrap();
    /// search.record(std::time::Duration::from_millis(240));
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    #[inline]
    pub fn record(&self, duration: Duration) {
        self.duration.record_duration(duration);
    }
}

/// Pre-resolved series of one safety-check category.
#[derive(Clone, Debug)]
pub struct SafetyCheckHandle {
    verdicts: [Counter; 3],
    flags: Counter,
    duration: Histogram,
}

impl SafetyCheckHandle {
    /// Records one check.
    ///
    /// ```
    /// # use beluga_monitor::{Monitor, SafetyVerdict};
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// let violence = monitor.metrics().safety_check_handle("violence")?.unwrap();
    /// violence.record(SafetyVerdict::Safe, std::time::Duration::from_millis(2));
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    #[inline]
    pub fn record(&self, verdict: SafetyVerdict, duration: Duration) {
        self.verdicts[verdict as usize].inc();
        if verdict == SafetyVerdict::Unsafe {
            self.flags.inc();
        }
        self.duration.record_duration(duration);
    }
}

impl AgentMetrics {
    /// Resolves the series of one operation once. `None` when metrics are off.
    pub fn operation_handle(
        &self,
        operation: &str,
    ) -> Result<Option<OperationHandle>, MonitorError> {
        let Some(s) = &self.standard else {
            return Ok(None);
        };
        Ok(Some(OperationHandle {
            requests: s.requests.with_labels(&[operation])?,
            active: s.active_operations.with_labels(&[operation])?,
            duration: s.operation_duration.with_labels(&[operation])?,
        }))
    }

    /// Resolves the series of successful calls of `tool` for `tenant` once
    /// (the `execute_tool` operation of [`record_tool_call`](Self::record_tool_call)).
    /// `None` when metrics are off.
    pub fn tool_call_handle(
        &self,
        tool: &str,
        tenant: &str,
    ) -> Result<Option<ToolCallHandle>, MonitorError> {
        let Some(s) = &self.standard else {
            return Ok(None);
        };
        Ok(Some(ToolCallHandle {
            duration: s
                .gen_ai_duration
                .with_labels(&["execute_tool", "", "", tool, "", tenant])?,
        }))
    }

    /// Resolves the series of one safety-check category once (those of
    /// [`record_safety_check`](Self::record_safety_check)). `None` when
    /// metrics are off.
    pub fn safety_check_handle(
        &self,
        category: &str,
    ) -> Result<Option<SafetyCheckHandle>, MonitorError> {
        let Some(s) = &self.standard else {
            return Ok(None);
        };
        let verdict = |v: SafetyVerdict| s.safety_checks.with_labels(&[category, v.as_str()]);
        Ok(Some(SafetyCheckHandle {
            verdicts: [
                verdict(SafetyVerdict::Safe)?,
                verdict(SafetyVerdict::Unsafe)?,
                verdict(SafetyVerdict::Error)?,
            ],
            flags: s.safety_flags.with_labels(&[category])?,
            duration: s.safety_duration.with_labels(&[category])?,
        }))
    }
}
