//! Registering the `process_*` families and refreshing them from `/proc`.

use std::time::Duration;

use beluga_metrics::{Counter, FloatCounter, Gauge, Opts, Registry, RegistryError, Unit};
use parking_lot::Mutex;

use crate::procfs::{self, Units};
use crate::READ_ERRORS_METRIC;

struct ProcessMetrics {
    units: Units,
    cpu: FloatCounter,
    resident: Gauge,
    virtual_memory: Gauge,
    threads: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    start_time: Gauge,
    read_errors: Counter,
}

/// Serializes the read-compare-add of CPU time, so two registrations (or
/// two concurrent scrapes) never add the same CPU seconds twice.
static CPU_ADD: Mutex<()> = Mutex::new(());

pub(crate) fn register(registry: &Registry) -> Result<(), RegistryError> {
    let units = Units::of_this_system();
    let m = ProcessMetrics {
        units,
        cpu: registry.float_counter(
            Opts::new("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.")
                .unit(Unit::SECONDS),
        )?,
        resident: registry.gauge(
            Opts::new("process_resident_memory_bytes", "Resident memory size in bytes.").unit(Unit::BYTES),
        )?,
        virtual_memory: registry.gauge(
            Opts::new("process_virtual_memory_bytes", "Virtual memory size in bytes.").unit(Unit::BYTES),
        )?,
        threads: registry.gauge(Opts::new("process_threads", "Number of OS threads in the process."))?,
        open_fds: registry.gauge(Opts::new("process_open_fds", "Number of open file descriptors."))?,
        max_fds: registry.gauge(Opts::new("process_max_fds", "Maximum number of open file descriptors."))?,
        start_time: registry.gauge(
            Opts::new(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
            )
            .unit(Unit::SECONDS),
        )?,
        read_errors: registry.counter(Opts::new(
            READ_ERRORS_METRIC,
            "Reads of /proc for the process_* metrics that failed (the metrics keep their previous values).",
        ))?,
    };
    m.refresh();
    registry.before_read(move || m.refresh());
    Ok(())
}

impl ProcessMetrics {
    fn refresh(&self) {
        match procfs::read(self.units) {
            Some(reading) => {
                self.add_cpu(reading.cpu);
                self.resident.set(reading.resident_bytes as f64);
                self.virtual_memory.set(reading.virtual_bytes as f64);
                self.threads.set(reading.threads as f64);
                match procfs::boot_time() {
                    Some(boot) => self.start_time.set(
                        boot as f64
                            + reading.start_ticks as f64 / self.units.ticks_per_second as f64,
                    ),
                    None => self.read_errors.inc(),
                }
            }
            None => self.read_errors.inc(),
        }
        match procfs::open_fds() {
            Some(n) => self.open_fds.set(n as f64),
            None => self.read_errors.inc(),
        }
        // `unlimited` is not an error: the gauge stays as it was.
        if let Some(n) = procfs::max_fds() {
            self.max_fds.set(n as f64);
        }
    }

    fn add_cpu(&self, total: Duration) {
        let _serialized = CPU_ADD.lock();
        let delta = total.as_secs_f64() - self.cpu.get();
        if delta > 0.0 {
            self.cpu.add(delta);
        }
    }
}
