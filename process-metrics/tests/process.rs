//! The `process_*` metrics read this process as the kernel reports it, move
//! when the process does, and pass promtool; the tokio collector follows a
//! real runtime.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use beluga_metrics::{Format, Registry};

/// The tests here watch process-wide numbers (threads, open files, CPU),
/// so they run one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serialized() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn value(registry: &Registry, series: &str) -> f64 {
    let text = registry.encode(Format::PrometheusText);
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .expect("a number")
}

fn status_kib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("field")
        .parse::<f64>()
        .expect("kB")
}

#[test]
fn process_metrics_follow_the_process() {
    let _serial = serialized();
    let registry = Registry::new();
    beluga_process_metrics::register(&registry).expect("register");

    // Memory agrees with /proc/self/status (VmRSS moves a little between
    // the two reads; VmSize is the same vsize in KiB).
    let rss = value(&registry, "process_resident_memory_bytes");
    let status_rss = status_kib("VmRSS:") * 1024.0;
    assert!(
        (rss - status_rss).abs() < status_rss * 0.2,
        "{rss} vs {status_rss}"
    );
    let vsize = value(&registry, "process_virtual_memory_bytes");
    assert!((vsize - status_kib("VmSize:") * 1024.0).abs() < 64.0 * 1024.0 * 1024.0);

    // Start time: in the past, and no earlier than the test binary's start
    // minus a minute of build-machine slack.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let start = value(&registry, "process_start_time_seconds");
    assert!(
        start <= now + 1.0 && start > now - 3600.0,
        "{start} vs now {now}"
    );

    // Open files: 40 more while they are open.
    let fds = value(&registry, "process_open_fds");
    let files: Vec<std::fs::File> = (0..40)
        .map(|_| std::fs::File::open("/proc/self/stat").expect("open"))
        .collect();
    let more = value(&registry, "process_open_fds");
    assert!(more >= fds + 40.0 - 2.0, "{fds} -> {more}");
    drop(files);
    assert!(value(&registry, "process_max_fds") >= more);

    // Threads: the kernel's count at the same moment, and at least the 4
    // parked on a barrier plus this one. (Not "4 more than before": the
    // harness thread of a test that just finished may exit meanwhile, as
    // it did once in CI, 3 -> 6.)
    let tasks = || std::fs::read_dir("/proc/self/task").unwrap().count() as f64;
    let barrier = std::sync::Barrier::new(5);
    let (before, during, after) = std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                barrier.wait();
                barrier.wait();
            });
        }
        barrier.wait();
        let read = (tasks(), value(&registry, "process_threads"), tasks());
        barrier.wait(); // let the threads go before any assertion can fail
        read
    });
    assert!(
        during >= before.min(after) && during <= before.max(after) && during >= 5.0,
        "process_threads {during}, /proc/self/task {before} then {after}"
    );

    // CPU: spinning makes it grow (polled: on a busy machine the spinning
    // thread may get less than its wall time).
    let cpu = value(&registry, "process_cpu_seconds_total");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut x = 0u64;
    let after = loop {
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let now = value(&registry, "process_cpu_seconds_total");
        if now - cpu >= 0.2 || std::time::Instant::now() > deadline {
            break now;
        }
    };
    assert!(after - cpu >= 0.2, "{cpu} -> {after}");

    let report = beluga_test_support::promtool_check(&registry.encode(Format::PrometheusText));
    assert!(report.trim().is_empty(), "promtool: {report}");
}

#[test]
fn registering_twice_counts_cpu_once() {
    let _serial = serialized();
    let registry = Registry::new();
    beluga_process_metrics::register(&registry).expect("first");
    beluga_process_metrics::register(&registry).expect("second");
    let own = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = own[own.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let cpu = value(&registry, "process_cpu_seconds_total");
    // USER_HZ is 100; the second read may see a few more ticks, never double.
    assert!(
        cpu >= ticks / 100.0 - 0.01 && cpu < ticks / 100.0 + 0.5,
        "{cpu} vs {ticks} ticks"
    );
}

#[test]
fn the_runtime_collector_follows_a_real_runtime() {
    let _serial = serialized();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let registry = Registry::new();
    beluga_process_metrics::RuntimeCollector::register(&registry, "agents", runtime.handle())
        .expect("register");
    assert_eq!(
        value(&registry, "tokio_runtime_workers{runtime=\"agents\"}"),
        2.0
    );
    let (release, wait) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = (0..25)
        .map(|_| {
            let mut wait = wait.clone();
            runtime.spawn(async move {
                let _ = wait.wait_for(|go| *go).await;
            })
        })
        .collect();
    assert!(value(&registry, "tokio_runtime_alive_tasks{runtime=\"agents\"}") >= 25.0);
    release.send(true).expect("tasks listening");
    runtime.block_on(async {
        for t in tasks {
            t.await.expect("task");
        }
    });
    // A finished task leaves the count when its worker releases it, which
    // may be just after its `JoinHandle` resolved: poll, with a deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while value(&registry, "tokio_runtime_alive_tasks{runtime=\"agents\"}") != 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "tasks still alive after 10 s"
        );
        std::thread::yield_now();
    }
    let _ = value(
        &registry,
        "tokio_runtime_global_queue_depth{runtime=\"agents\"}",
    );
}
