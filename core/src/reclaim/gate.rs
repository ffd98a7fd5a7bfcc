//! Who may touch a thread's lookup cache: its owner, or a sweeper that
//! drops removed series from it while the owner is not looking.
//!
//! # Protocol
//!
//! A thread's cache owns a strong reference to every series it holds, so a
//! series removed from its family stays in memory until the cache lets go.
//! A thread that keeps recording lets go soon (the entry misses and is
//! evicted), but a thread that never records again would hold it for ever.
//! So `Family::remove` *sweeps*: it drops removed series from every
//! thread's cache, including caches whose owners are idle. The owner's
//! lookup must stay free of locks, atomic read-modify-writes and fences,
//! so the two sides meet through this gate:
//!
//! * `in_use` is written only by the owner: `true` while it reads or
//!   writes its sets (for the whole lookup, including the caller's closure).
//!   Because it is the owner's own flag it also detects nested lookups.
//! * `claimed` is written only by a sweeper (sweeps are serialised by the
//!   list of caches' mutex): `true` from before the sweeper's barrier until
//!   it has finished with the sets.
//! * `asked` counts sweeps asked of this cache (sweepers bump it), `done`
//!   the sweeps performed (by whoever held the sets); `asked != done` means
//!   a sweep is owed. `claimed` and `asked` share one word, so the owner
//!   reads both with one load.
//!
//! The owner enters with *store `in_use`, light fence, load `claimed`* and
//! backs off if claimed; it leaves with *store `in_use = false`, light
//! fence, load `asked` and `done`*. A sweeper does *store `claimed`, bump
//! `asked`, heavy fence, load `in_use`*, sweeps only if `in_use` was false,
//! then clears `claimed`. The heavy fence (`fence::heavy`, a
//! process-wide barrier) pairs with the owner's light one like two full
//! fences would (Dekker's argument), so:
//!
//! 1. **Exclusion.** An owner that saw `claimed == false` was seen by the
//!    sweeper as `in_use == true`, so the sweeper leaves the sets alone; a
//!    sweeper that saw `in_use == false` is seen by any owner that enters
//!    afterwards as `claimed == true`, so the owner bypasses the cache. The
//!    release store of `in_use = false` and the acquire load that sees it
//!    order the owner's last use of the sets before the sweep; the release
//!    store of `claimed = false` and the owner's acquire load order the
//!    sweep before the owner's next use.
//! 2. **Nothing is left owed.** A sweeper that found the cache in use has
//!    bumped `asked` before its barrier, and the owner reads `asked` after
//!    its own fence when it leaves: either the sweeper saw the owner gone,
//!    or the owner sees the sweep owed and performs it itself (the same
//!    way in, waiting out a sweeper that holds the claim).
//!
//! When the process-wide barrier is unavailable the sweeper does not touch
//! other threads' caches at all; its claim only bumps `asked`, and each owner
//! sweeps its own cache when it next leaves a lookup (documented in
//! `docs/architecture.md`).
//!
//! The loom model at the bottom checks both properties with the two fences
//! as `SeqCst` fences.

use super::fence;
use crate::sync::{AtomicBool, AtomicU64, Ordering::*};

/// The owner's and the sweepers' flags for one thread's cache.
pub(crate) struct Gate {
    in_use: AtomicBool,
    /// The sweepers' word: `claimed` in bit 0, `asked` in the bits above,
    /// so that the owner reads both with one load.
    sweeps: AtomicU64,
    done: AtomicU64,
}

/// Bit 0 of [`Gate::sweeps`].
const CLAIMED: u64 = 1;
/// One sweep asked, in [`Gate::sweeps`].
const ASKED_ONE: u64 = 2;

/// What an owner's attempt to use its cache found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// The sets are the owner's until it calls [`Gate::leave`].
    Entered,
    /// The owner is already inside a lookup (a lookup from a closure):
    /// bypass the cache and do not call `leave`.
    Nested,
    /// A sweeper holds the sets: bypass the cache, then call
    /// [`Gate::leave`] all the same (a sweep may be owed).
    Claimed,
}

impl Gate {
    #[cfg(not(beluga_loom))]
    pub(crate) const fn new() -> Gate {
        Gate {
            in_use: AtomicBool::new(false),
            sweeps: AtomicU64::new(0),
            done: AtomicU64::new(0),
        }
    }

    #[cfg(beluga_loom)]
    pub(crate) fn new() -> Gate {
        Gate {
            in_use: AtomicBool::new(false),
            sweeps: AtomicU64::new(0),
            done: AtomicU64::new(0),
        }
    }

    /// Owner: tries to take the sets.
    #[inline]
    pub(crate) fn enter(&self) -> Entry {
        // Only the owner writes `in_use`, so its own last store is what it
        // reads here.
        if self.in_use.load(Relaxed) {
            return Entry::Nested;
        }
        self.in_use.store(true, Relaxed);
        fence::light();
        if self.sweeps.load(Acquire) & CLAIMED != 0 {
            self.in_use.store(false, Relaxed);
            return Entry::Claimed;
        }
        Entry::Entered
    }

    /// Owner: gives the sets up (after `Entered` or `Claimed`). Returns
    /// whether a sweep is owed, which the owner then performs through
    /// [`Gate::enter`] and [`Gate::sweep_done`].
    #[inline]
    pub(crate) fn leave(&self) -> bool {
        self.in_use.store(false, Release);
        fence::light();
        self.owed()
    }

    /// Owner, at thread exit: marks the owner inside a lookup for good, so
    /// every later lookup is [`Entry::Nested`] (bypasses the cache) and
    /// sweepers leave the sets alone.
    pub(crate) fn close(&self) {
        self.in_use.store(true, Relaxed);
    }

    /// Whether a sweep has been asked that nobody has performed yet.
    #[inline]
    pub(crate) fn owed(&self) -> bool {
        self.sweeps.load(Acquire) / ASKED_ONE != self.done.load(Relaxed)
    }

    /// The sweeps asked so far; read by whoever holds the sets before it
    /// sweeps, and passed to [`Gate::sweep_done`] after.
    pub(crate) fn asked(&self) -> u64 {
        self.sweeps.load(Acquire) / ASKED_ONE
    }

    /// The sweeps performed so far. Acquire: whoever sees a sweep done
    /// also sees everything the owner did before it (see `retire`).
    pub(crate) fn done(&self) -> u64 {
        self.done.load(Acquire)
    }

    /// Whoever holds the sets: every sweep up to `asked` is done.
    pub(crate) fn sweep_done(&self, asked: u64) {
        self.done.store(asked, Release);
    }

    /// Asks the owner for a sweep without claiming the sets; returns the
    /// number of sweeps asked, this one included. A grace period waits for
    /// [`Gate::done`] to reach it (or for the owner to be seen out).
    /// Serialised with [`Gate::claim`] (both under the list's mutex).
    pub(crate) fn ask(&self) -> u64 {
        self.sweeps.fetch_add(ASKED_ONE, Release) / ASKED_ONE + 1
    }

    /// Sweeper, before its barrier: asks for a sweep and claims the sets.
    /// Returns the number of sweeps asked, this one included.
    pub(crate) fn claim(&self) -> u64 {
        // Sweeps are serialised, so the claimed bit is clear here.
        let before = self.sweeps.fetch_add(ASKED_ONE + CLAIMED, Release);
        debug_assert_eq!(before & CLAIMED, 0, "one sweep at a time");
        before / ASKED_ONE + 1
    }

    /// Sweeper, after [`fence::heavy`] returned `true`: whether the
    /// owner is out, which makes the sets the sweeper's until
    /// [`Gate::unclaim`].
    pub(crate) fn owner_is_out(&self) -> bool {
        !self.in_use.load(Acquire)
    }

    /// Sweeper: gives the sets back.
    pub(crate) fn unclaim(&self) {
        self.sweeps.fetch_and(!CLAIMED, Release);
    }
}

#[cfg(all(test, beluga_loom))]
mod loom_models {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;

    /// A cache reduced to what the protocol protects: the sets (one stale
    /// entry, 1 until swept) and the gate.
    struct Cache {
        gate: Gate,
        stale_entries: UnsafeCell<u32>,
    }

    /// The owner's side of `with_series`: one lookup, then a sweep if one
    /// is owed, exactly as the real cache does it.
    fn owner_lookup(cache: &Cache) {
        let owed = match cache.gate.enter() {
            Entry::Entered => {
                // Reading the sets: loom reports a race if a sweeper writes
                // them at the same time.
                cache.stale_entries.with(|n| unsafe { *n });
                cache.gate.leave()
            }
            Entry::Claimed => cache.gate.leave(),
            Entry::Nested => unreachable!("no nesting in this model"),
        };
        if owed {
            owner_sweep(cache);
        }
    }

    fn owner_sweep(cache: &Cache) {
        while cache.gate.owed() {
            match cache.gate.enter() {
                Entry::Entered => {
                    let asked = cache.gate.asked();
                    cache.stale_entries.with_mut(|n| unsafe { *n = 0 });
                    cache.gate.sweep_done(asked);
                    cache.gate.leave();
                }
                Entry::Claimed => {
                    cache.gate.leave();
                    loom::thread::yield_now();
                }
                Entry::Nested => unreachable!("no nesting in this model"),
            }
        }
    }

    fn sweeper(cache: &Cache) {
        let asked = cache.gate.claim();
        assert!(fence::heavy());
        if cache.gate.owner_is_out() {
            cache.stale_entries.with_mut(|n| unsafe { *n = 0 });
            cache.gate.sweep_done(asked);
        }
        cache.gate.unclaim();
    }

    /// An owner doing two lookups races a sweeper: no data race on the sets
    /// (exclusion), and once both are done the stale entry is gone, whoever
    /// removed it (nothing is left owed).
    #[test]
    fn sweeps_exclude_the_owner_and_are_never_lost() {
        loom::model(|| {
            let cache = Arc::new(Cache {
                gate: Gate::new(),
                stale_entries: UnsafeCell::new(1),
            });
            let owner = {
                let cache = cache.clone();
                loom::thread::spawn(move || {
                    owner_lookup(&cache);
                    owner_lookup(&cache);
                })
            };
            sweeper(&cache);
            owner.join().unwrap();
            assert_eq!(cache.stale_entries.with(|n| unsafe { *n }), 0);
            assert!(!cache.gate.owed());
        });
    }

    /// The grace period of `retire`: a reader finds an item through a
    /// published pointer inside its gate and reads it; a writer unlinks the
    /// item, then frees it once the reader can no longer hold it (seen out
    /// after a barrier, or its owed sweep done). Loom reports the free
    /// racing the read if the protocol lets it.
    #[test]
    fn retired_items_are_freed_only_after_readers_leave() {
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
            let cache = Arc::new(Cache {
                gate: Gate::new(),
                stale_entries: UnsafeCell::new(0),
            });
            // The item: its contents, and whether the index still links it.
            let item = Arc::new(UnsafeCell::new(7u32));
            let linked = Arc::new(crate::sync::AtomicBool::new(true));
            let reader = {
                let (cache, item, linked) = (cache.clone(), item.clone(), linked.clone());
                loom::thread::spawn(move || {
                    if cache.gate.enter() == Entry::Entered {
                        if linked.load(Acquire) {
                            assert_eq!(item.with(|v| unsafe { *v }), 7);
                        }
                        if cache.gate.leave() {
                            owner_sweep(&cache);
                        }
                    }
                })
            };
            // The writer: unlink, then `retire`.
            linked.store(false, Release);
            assert!(fence::heavy());
            let ticket = (!cache.gate.owner_is_out()).then(|| cache.gate.ask());
            if let Some(ticket) = ticket {
                // `collect_garbage`, until the reader is done with it.
                loop {
                    let barrier = fence::heavy();
                    if cache.gate.done() >= ticket || (barrier && cache.gate.owner_is_out()) {
                        break;
                    }
                    loom::thread::yield_now();
                }
            }
            item.with_mut(|v| unsafe { *v = 0 }); // freed
            reader.join().unwrap();
        });
    }

    /// Two sweeps in a row (as two `remove` calls make) against one
    /// lookup: the later sweep's count covers the earlier one.
    #[test]
    fn back_to_back_sweeps_leave_nothing_owed() {
        // Unbounded, this model takes minutes; three preemptions cover the
        // interleavings the two properties depend on.
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
            let cache = Arc::new(Cache {
                gate: Gate::new(),
                stale_entries: UnsafeCell::new(1),
            });
            let owner = {
                let cache = cache.clone();
                loom::thread::spawn(move || owner_lookup(&cache))
            };
            sweeper(&cache);
            sweeper(&cache);
            owner.join().unwrap();
            assert_eq!(cache.stale_entries.with(|n| unsafe { *n }), 0);
            assert!(!cache.gate.owed());
        });
    }
}
