//! The latest exemplar per bucket (or per counter), kept without a lock.
//!
//! # Protocol
//!
//! A series that has recorded an exemplar owns an [`ExemplarSlots`]: one
//! [`Slot`] per classic bucket (one for a counter), allocated on the first
//! exemplar, so series that never carry one pay a null pointer. Each slot is
//! a *sequence lock* over plain words (trace id, span id, value, time, extra
//! labels), every word an atomic written and read `Relaxed`:
//!
//! * **Writers never wait.** A writer claims the slot by moving its stamp
//!   from even to odd with an `Acquire` compare-exchange (so it comes after
//!   the previous writer's words, which that writer published with its
//!   `Release` stamp store; the loom model found torn slots with a relaxed
//!   exchange). If the stamp is odd (another writer is mid-write) or the
//!   exchange fails (another writer got there first), the writer gives up:
//!   its exemplar is dropped and the other one kept; "latest" is within one
//!   concurrent write. After claiming, a `Release` fence, then the words,
//!   then the stamp moves to the next even value with a `Release` store.
//! * **Readers never stop writers.** A reader loads the stamp (`Acquire`),
//!   copies the words, issues an `Acquire` fence and loads the stamp again.
//!   Equal and even: the copy is one writer's complete exemplar. If any word
//!   the reader copied came from a write that began after its first load,
//!   that word was stored after the writer's `Release` fence, so the reader's
//!   fence synchronises with it and the second load sees the odd (or a later)
//!   stamp: the copy is thrown away. A reader retries a few times, then
//!   skips the exemplar for this read.
//! * **Slots are freed** only when the series is dropped (`&mut self`).
//!
//! The loom model at the bottom checks that a reader racing two writers
//! only ever accepts one writer's complete exemplar, and that two writers
//! one after the other never interleave (it failed with a `Relaxed`
//! claiming exchange). It does not fail when either fence is removed: loom
//! does not explore the stale stamp read that the fences rule out (tried
//! with no preemption bound), so for them the argument above is the check.

use crate::exemplar::{Exemplar, ExemplarError, ExemplarValue, EXTRA_LABEL_BYTES};
use crate::sync::{fence, model_switch_point, AtomicPtr, AtomicU64, Ordering::*};

const LABEL_WORDS: usize = EXTRA_LABEL_BYTES / 8;

/// Words of one exemplar: trace id (2), span id, value, time, label length,
/// labels.
const WORDS: usize = 6 + LABEL_WORDS;

/// How many times a reader retries a slot that a writer keeps changing.
const READ_ATTEMPTS: usize = 4;

/// One bucket's latest exemplar under a sequence lock: `N` words (the loom
/// model uses fewer than a real exemplar's [`WORDS`]).
pub(crate) struct Slot<const N: usize = WORDS> {
    stamp: AtomicU64,
    words: [AtomicU64; N],
}

impl<const N: usize> Slot<N> {
    fn new() -> Self {
        Slot {
            stamp: AtomicU64::new(0),
            words: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Stores `words`, unless another writer holds the slot. Returns
    /// whether it was stored.
    fn write(&self, words: &[u64; N]) -> bool {
        let stamp = self.stamp.load(Relaxed);
        // Acquire: the previous writer's words (published by its Release
        // store of `stamp`) come before ours in every word's modification
        // order, so two writes one after the other never interleave.
        if stamp & 1 == 1
            || self
                .stamp
                .compare_exchange(stamp, stamp | 1, Acquire, Relaxed)
                .is_err()
        {
            return false;
        }
        fence(Release);
        for (word, value) in self.words.iter().zip(words) {
            model_switch_point();
            word.store(*value, Relaxed);
        }
        self.stamp.store(stamp + 2, Release);
        true
    }

    /// One attempt at a consistent copy: `None` if a writer interfered.
    fn try_read(&self) -> Option<[u64; N]> {
        let before = self.stamp.load(Acquire);
        if before & 1 == 1 {
            return None;
        }
        let mut words = [0u64; N];
        for (out, word) in words.iter_mut().zip(&self.words) {
            model_switch_point();
            *out = word.load(Relaxed);
        }
        fence(Acquire);
        (self.stamp.load(Relaxed) == before).then_some(words)
    }

    fn read(&self) -> Option<[u64; N]> {
        (0..READ_ATTEMPTS).find_map(|_| self.try_read())
    }
}

fn to_words(
    e: &Exemplar<'_>,
    value: f64,
    labels: &[u8; EXTRA_LABEL_BYTES],
    labels_len: usize,
) -> [u64; WORDS] {
    let mut words = [0u64; WORDS];
    words[0] = u64::from_be_bytes(e.trace_id[..8].try_into().expect("8 bytes"));
    words[1] = u64::from_be_bytes(e.trace_id[8..].try_into().expect("8 bytes"));
    words[2] = u64::from_be_bytes(e.span_id);
    words[3] = value.to_bits();
    words[4] = e.nanos_since_epoch();
    words[5] = labels_len as u64;
    for (word, chunk) in words[6..].iter_mut().zip(labels.chunks(8)) {
        *word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
    }
    words
}

fn from_words(words: &[u64; WORDS]) -> Option<ExemplarValue> {
    // Time 0: never written.
    if words[4] == 0 {
        return None;
    }
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&words[0].to_be_bytes());
    trace_id[8..].copy_from_slice(&words[1].to_be_bytes());
    let mut labels = [0u8; EXTRA_LABEL_BYTES];
    for (chunk, word) in labels.chunks_mut(8).zip(&words[6..]) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    Some(ExemplarValue {
        trace_id,
        span_id: words[2].to_be_bytes(),
        value: f64::from_bits(words[3]),
        nanos: words[4],
        labels,
        labels_len: (words[5] as usize).min(EXTRA_LABEL_BYTES),
    })
}

/// A series' exemplar slots, one per bucket.
pub(crate) struct ExemplarSlots {
    slots: Box<[Slot]>,
}

/// The slots of one series, allocated on its first exemplar.
pub(crate) struct ExemplarCell {
    slots: AtomicPtr<ExemplarSlots>,
}

impl Default for ExemplarCell {
    fn default() -> Self {
        ExemplarCell {
            slots: AtomicPtr::new(std::ptr::null_mut()),
        }
    }
}

impl ExemplarCell {
    /// Keeps `exemplar` as the latest of slot `index` (of `count` slots).
    /// Records nothing and says why if its labels are refused; drops it
    /// silently if another writer holds the slot at this instant.
    pub(crate) fn record(
        &self,
        index: usize,
        count: usize,
        exemplar: &Exemplar<'_>,
        value: f64,
    ) -> Result<(), ExemplarError> {
        let mut labels = [0u8; EXTRA_LABEL_BYTES];
        let labels_len = exemplar.pack_labels(&mut labels)?;
        let slots = self.slots_or_allocate(count);
        if let Some(slot) = slots.slots.get(index) {
            slot.write(&to_words(exemplar, value, &labels, labels_len));
        }
        Ok(())
    }

    /// The latest exemplar of every slot (`None` where there is none, or
    /// where writers kept interfering with the read); nothing if the series
    /// never had one.
    pub(crate) fn read_into(&self, out: &mut Vec<Option<ExemplarValue>>) {
        out.clear();
        let ptr = self.slots.load(Acquire);
        if ptr.is_null() {
            return;
        }
        // SAFETY: non-null pointers come from `Box::into_raw` in
        // `slots_or_allocate`, published by a release compare-exchange our
        // acquire load synchronises with, and are freed only in `Drop`
        // (`&mut self`), which cannot run while `&self` is borrowed.
        let slots = unsafe { &*ptr };
        out.extend(
            slots
                .slots
                .iter()
                .map(|s| s.read().and_then(|w| from_words(&w))),
        );
    }

    fn slots_or_allocate(&self, count: usize) -> &ExemplarSlots {
        let ptr = self.slots.load(Acquire);
        if !ptr.is_null() {
            // SAFETY: as in `read_into`.
            return unsafe { &*ptr };
        }
        self.allocate(count)
    }

    #[cold]
    fn allocate(&self, count: usize) -> &ExemplarSlots {
        let fresh = Box::into_raw(Box::new(ExemplarSlots {
            slots: (0..count).map(|_| Slot::new()).collect(),
        }));
        let published =
            match self
                .slots
                .compare_exchange(std::ptr::null_mut(), fresh, AcqRel, Acquire)
            {
                Ok(_) => fresh,
                Err(winner) => {
                    // SAFETY: `fresh` came from `Box::into_raw` above and was
                    // never published: we still own it.
                    drop(unsafe { Box::from_raw(fresh) });
                    winner
                }
            };
        // SAFETY: published (by us or the winner) from `Box::into_raw`;
        // freed only in `Drop`.
        unsafe { &*published }
    }

    /// Heap bytes of the slots, if allocated.
    #[cfg(test)]
    // The loom build leaves out the tests that read it.
    #[cfg_attr(beluga_loom, allow(dead_code))]
    pub(crate) fn heap_bytes(&self) -> usize {
        let ptr = self.slots.load(Acquire);
        if ptr.is_null() {
            return 0;
        }
        // SAFETY: as in `read_into`.
        let slots = unsafe { &*ptr };
        std::mem::size_of::<ExemplarSlots>() + slots.slots.len() * std::mem::size_of::<Slot>()
    }
}

impl Drop for ExemplarCell {
    fn drop(&mut self) {
        let ptr = self.slots.load(Acquire);
        if !ptr.is_null() {
            // SAFETY: `&mut self`: no reader or writer is left, and the
            // pointer came from `Box::into_raw`.
            drop(unsafe { Box::from_raw(ptr) });
        }
    }
}

#[cfg(all(test, not(beluga_loom)))]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn the_latest_exemplar_per_slot_is_read_back_whole() {
        let cell = ExemplarCell::default();
        let mut out = Vec::new();
        cell.read_into(&mut out);
        assert!(out.is_empty(), "no slots before the first exemplar");
        let labels = [("tenant", "acme"), ("model", "gpt-4o")];
        let e = Exemplar::new([7; 16], [9; 8]).labels(&labels);
        cell.record(2, 4, &e, 0.5).unwrap();
        cell.record(2, 4, &Exemplar::new([8; 16], [1; 8]), 0.75)
            .unwrap();
        cell.record(0, 4, &e, 0.01).unwrap();
        cell.read_into(&mut out);
        assert_eq!(out.len(), 4);
        assert!(out[1].is_none() && out[3].is_none());
        let latest = out[2].unwrap();
        assert_eq!(
            (latest.trace_id(), latest.span_id(), latest.value()),
            ([8; 16], [1; 8], 0.75)
        );
        assert_eq!(latest.labels().count(), 0);
        let first = out[0].unwrap();
        assert_eq!(first.labels().collect::<Vec<_>>(), labels);
        assert!(cell.heap_bytes() >= 4 * std::mem::size_of::<Slot>());
    }

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn a_busy_slot_drops_the_second_writer_and_readers_skip_it() {
        let slot = Slot::<WORDS>::new();
        let words = [3u64; WORDS];
        assert!(slot.write(&words));
        slot.stamp.fetch_or(1, Relaxed); // a writer mid-write
        assert!(!slot.write(&[4u64; WORDS]));
        assert_eq!(slot.read(), None);
        slot.stamp.fetch_add(1, Relaxed); // it finishes (odd + 1: the next even)
        assert_eq!(slot.read(), Some(words));
    }

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn concurrent_writers_and_readers_never_tear() {
        let slot = Slot::<WORDS>::new();
        std::thread::scope(|s| {
            for w in 1..=3u64 {
                let slot = &slot;
                s.spawn(move || {
                    for _ in 0..20_000 {
                        slot.write(&[w; WORDS]);
                    }
                });
            }
            let slot = &slot;
            s.spawn(move || {
                for _ in 0..20_000 {
                    if let Some(words) = slot.read() {
                        assert!(words.iter().all(|w| *w == words[0]), "torn: {words:?}");
                    }
                }
            });
        });
    }
}

#[cfg(all(test, beluga_loom))]
mod loom_models {
    use super::*;

    /// Two writers and a reader: an accepted read is one writer's exemplar,
    /// whole. (Two words instead of a real exemplar's fourteen; each writer
    /// writes its number to both, so a torn copy shows as unequal words.)
    #[test]
    fn loom_models_exemplar_reads_are_never_torn() {
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
            let slot = loom::sync::Arc::new(Slot::<2>::new());
            let writers: Vec<_> = [1u64, 2]
                .into_iter()
                .map(|w| {
                    let slot = slot.clone();
                    loom::thread::spawn(move || {
                        slot.write(&[w; 2]);
                    })
                })
                .collect();
            if let Some(words) = slot.try_read() {
                assert!(words.iter().all(|w| *w == words[0]), "torn read {words:?}");
            }
            for w in writers {
                w.join().unwrap();
            }
            let last = slot.try_read().expect("no writer left");
            assert!(last[0] == 1 || last[0] == 2);
            assert!(last.iter().all(|w| *w == last[0]), "final {last:?}");
        });
    }
}
