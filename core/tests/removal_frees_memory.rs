//! `Family::remove` frees a series' memory even when the threads whose
//! lookup caches hold it never record again (the sweep of
//! `core/src/reclaim/gate.rs`), measured with a counting allocator.

use std::sync::mpsc;
use std::sync::Mutex;

use beluga_metrics::{Buckets, Family, Histogram, Opts, Registry};
use beluga_test_support::alloc::live_bytes;

#[global_allocator]
static ALLOCATOR: beluga_test_support::alloc::Counting = beluga_test_support::alloc::Counting;

/// The tests measure the whole process's heap: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const SERIES: usize = 200;

fn family() -> Family<Histogram> {
    Registry::new()
        .histogram_family(
            Opts::new("tool_call_duration_seconds", "Tool call duration.").labels(["tool"]),
            Buckets::gen_ai_operation_duration(),
        )
        .unwrap()
}

fn tool(i: usize) -> String {
    format!("tool-{i}")
}

/// Records once into each of the `SERIES` label sets, on the calling thread.
fn record_every_series(family: &Family<Histogram>) {
    for i in 0..SERIES {
        family.with(&[tool(i)], |h| h.record(0.25)).unwrap();
    }
}

/// Runs `record` on a new thread, then keeps that thread alive and idle
/// (it never records again) until the returned sender is dropped.
fn idle_thread_after(record: impl FnOnce() + Send + 'static) -> mpsc::Sender<()> {
    let (done_tx, done_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        record();
        done_tx.send(()).unwrap();
        let _ = stop_rx.recv();
    });
    done_rx.recv().unwrap();
    stop_tx
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "sweeping idle threads' caches needs Linux membarrier"
)]
fn removing_series_frees_them_from_an_idle_threads_cache() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let family = family();
    let before = live_bytes();
    let recorder = family.clone();
    let idle = idle_thread_after(move || {
        record_every_series(&recorder);
    });
    let recorded = live_bytes() - before;
    // Each series: its table entry, label values, exposition text and this
    // thread's histogram part (about 0.5 KiB for one octave of records).
    assert!(
        recorded > (SERIES * 512) as i64,
        "{recorded} bytes for {SERIES} histogram series recorded on one thread"
    );

    for i in 0..SERIES {
        assert!(family.remove(&[tool(i)]).unwrap());
    }
    let kept = live_bytes() - before;
    assert!(
        // What stays is the capacity of the family's table and index (about
        // 28 KiB for 200 label sets), not series.
        kept < recorded / 5,
        "{kept} of {recorded} bytes still live after removing every series \
         while the thread that cached them sits idle"
    );
    drop(idle);
}

#[test]
fn a_thread_inside_a_lookup_lets_go_when_it_leaves_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let family = family();
    let before = live_bytes();
    let (inside_tx, inside_rx) = mpsc::channel();
    let (removed_tx, removed_rx) = mpsc::channel::<()>();
    let (left_tx, left_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let recorder = family.clone();
    let owner = std::thread::spawn(move || {
        record_every_series(&recorder);
        // Stay inside a lookup (of a series that is not removed) while the
        // main thread removes the others: the sweep finds this cache in use
        // and leaves the work to this thread, for when it leaves.
        recorder
            .with(&["kept"], |h| {
                h.record(1.0);
                inside_tx.send(()).unwrap();
                removed_rx.recv().unwrap();
            })
            .unwrap();
        left_tx.send(()).unwrap();
        let _ = stop_rx.recv(); // idle from here on
    });
    inside_rx.recv().unwrap();
    let recorded = live_bytes() - before;
    for i in 0..SERIES {
        assert!(family.remove(&[tool(i)]).unwrap());
    }
    let while_inside = live_bytes() - before;
    assert!(
        while_inside > recorded / 2,
        "the cache in use must not be swept under its owner \
         ({while_inside} of {recorded} bytes live)"
    );
    removed_tx.send(()).unwrap();
    left_rx.recv().unwrap();
    let kept = live_bytes() - before;
    assert!(
        kept < recorded / 5,
        "{kept} of {recorded} bytes still live after the owner left its lookup"
    );
    drop(stop_tx);
    owner.join().unwrap();
}

#[test]
fn a_removal_from_inside_a_lookup_is_swept_when_the_lookup_ends() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let family = family();
    let before = live_bytes();
    let recorder = family.clone();
    let idle = idle_thread_after(move || {
        record_every_series(&recorder);
        // Remove them all from inside a lookup on this same thread.
        let inner = recorder.clone();
        recorder
            .with(&["kept"], |h| {
                h.record(1.0);
                for i in 0..SERIES {
                    assert!(inner.remove(&[tool(i)]).unwrap());
                }
            })
            .unwrap();
    });
    let kept = live_bytes() - before;
    // What stays: the family's one remaining series ("kept"), its
    // per-thread histogram and the table's capacity; the 200 removed series
    // held about 170 KiB.
    assert!(
        kept < 32 * 1024,
        "{kept} bytes still live after removing {SERIES} series from inside a lookup"
    );
    drop(idle);
}

#[test]
fn a_handle_still_held_keeps_its_series_and_records() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let family = family();
    let handle = family.with_labels(&["held"]).unwrap();
    let recorder = family.clone();
    let idle = idle_thread_after(move || {
        recorder.with(&["held"], |h| h.record(0.5)).unwrap();
    });
    assert!(family.remove(&["held"]).unwrap());
    handle.record(0.5);
    assert_eq!(handle.get().count(), 2, "a held handle keeps recording");
    drop(idle);
}
