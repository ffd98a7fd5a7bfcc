//! The fast path: each thread's map from `metrics::Key` to the handle it
//! last resolved.
//!
//! Every `counter!(...)` call asks the recorder for a handle again, so this
//! lookup *is* the cost of a macro call. The map is per thread, so a hit
//! takes no lock and writes nothing another thread reads: it hashes nothing
//! (the key carries its hash, computed when the key was built, at compile
//! time for literal keys), compares the stored key with the caller's
//! (name and labels, which for literal keys are the same pointers) and
//! clones an `Arc` that only this thread's cache hands out, so the
//! reference count's cache line stays with this core.
//!
//! Entries are keyed by recorder as well, so two recorders (a global one and
//! a test's local one) never see each other's handles. A thread keeps at
//! most [`MAX_ENTRIES`] handles; past that the map is emptied and refilled
//! from the shared families (a slow-path lookup per key, no series lost).
//! Handles cached by a thread keep their series alive until the thread
//! exits or its cache is emptied.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use metrics::Key;

use crate::families::Kind;
use crate::handles::{FacadeCounter, FacadeGauge, FacadeHistogram};

/// Handles one thread keeps before its cache is emptied.
pub(crate) const MAX_ENTRIES: usize = 4096;

/// One of the three wrapped handle types.
#[derive(Clone)]
pub(crate) enum Cached {
    Counter(Arc<FacadeCounter>),
    Gauge(Arc<FacadeGauge>),
    Histogram(Arc<FacadeHistogram>),
}

struct Entry {
    recorder: u64,
    kind: Kind,
    key: Key,
    handle: Cached,
}

/// `Key::get_hash` is already a good hash; the map uses it as is.
#[derive(Default)]
struct KeyHashIsTheHash(u64);

impl Hasher for KeyHashIsTheHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; mix anything else in rather than panic.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Default)]
struct Cache {
    entries: HashMap<u64, Vec<Entry>, BuildHasherDefault<KeyHashIsTheHash>>,
    len: usize,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

fn slot(recorder: u64, kind: Kind, key: &Key) -> u64 {
    key.get_hash() ^ recorder.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ kind as u64
}

/// The handle this thread cached for `key`, if any.
#[inline]
pub(crate) fn get(recorder: u64, kind: Kind, key: &Key) -> Option<Cached> {
    CACHE
        .try_with(|cache| {
            let cache = cache.try_borrow().ok()?;
            let bucket = cache.entries.get(&slot(recorder, kind, key))?;
            bucket
                .iter()
                .find(|e| e.recorder == recorder && e.kind == kind && e.key == *key)
                .map(|e| e.handle.clone())
        })
        .ok()
        .flatten()
}

/// Keeps `handle` for `key` on this thread (nothing, if the thread is
/// tearing down its thread-locals).
pub(crate) fn put(recorder: u64, kind: Kind, key: &Key, handle: Cached) {
    let _ = CACHE.try_with(|cache| {
        let Ok(mut cache) = cache.try_borrow_mut() else {
            return;
        };
        if cache.len >= MAX_ENTRIES {
            cache.entries.clear();
            cache.len = 0;
        }
        cache
            .entries
            .entry(slot(recorder, kind, key))
            .or_default()
            .push(Entry {
                recorder,
                kind,
                key: key.clone(),
                handle,
            });
        cache.len += 1;
    });
}

/// Handles cached on this thread (for tests).
#[cfg(test)]
pub(crate) fn len() -> usize {
    CACHE.with(|c| c.borrow().len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handles::FacadeCounter;

    #[test]
    fn a_full_cache_is_emptied_and_refilled_and_keeps_recorders_apart() {
        let registry = beluga_metrics::Registry::new();
        let counter = registry
            .counter(beluga_metrics::Opts::new("c", "C."))
            .expect("counter");
        let handle = Cached::Counter(Arc::new(FacadeCounter(counter)));
        std::thread::spawn(move || {
            let key = |i: usize| Key::from_parts(format!("k{i}"), Vec::<metrics::Label>::new());
            for i in 0..MAX_ENTRIES {
                put(1, Kind::Counter, &key(i), handle.clone());
            }
            assert_eq!(len(), MAX_ENTRIES);
            assert!(get(1, Kind::Counter, &key(0)).is_some());
            assert!(get(2, Kind::Counter, &key(0)).is_none(), "another recorder");
            assert!(get(1, Kind::Gauge, &key(0)).is_none(), "another instrument");
            put(1, Kind::Counter, &key(MAX_ENTRIES), handle.clone());
            assert_eq!(len(), 1, "emptied, then the new entry");
            assert!(get(1, Kind::Counter, &key(0)).is_none());
            assert!(get(1, Kind::Counter, &key(MAX_ENTRIES)).is_some());
        })
        .join()
        .expect("test thread");
    }
}
