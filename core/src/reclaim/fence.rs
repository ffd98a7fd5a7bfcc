//! Asymmetric fences: a free one for a hot path, a process-wide one for the
//! rare path that pairs with it.
//!
//! A handshake in which each side stores its own flag and then reads the
//! other's (Dekker's pattern: "I am using the cache" against "I am about to
//! sweep it") needs a store-load fence on both sides, and a full fence on the
//! hot side would cost more than the rest of a cached lookup. Linux's
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` moves that cost to the rare
//! side: it returns only after every thread of the process has run a full
//! memory barrier (or was not running, which implies one), so the hot side
//! only has to keep the compiler from reordering its accesses.
//!
//! [`heavy`] says whether it could issue such a barrier. Where it cannot
//! (another operating system, a kernel older than 4.14, a seccomp filter that
//! refuses the call, Miri), the caller must not rely on the handshake and
//! has to fall back to something that needs no cross-thread access.
//!
//! Under loom both sides are `SeqCst` fences, the model of what the pair
//! guarantees.

/// The hot side: orders this thread's accesses around it, at no run-time
/// cost, provided the other side uses [`heavy`] and `heavy` returned `true`.
#[inline(always)]
pub(crate) fn light() {
    #[cfg(beluga_loom)]
    loom::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    #[cfg(not(beluga_loom))]
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// The rare side: a full memory barrier on every thread of the process.
/// Returns `false`, having done nothing, where that is not available.
pub(crate) fn heavy() -> bool {
    #[cfg(beluga_loom)]
    {
        loom::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        true
    }
    #[cfg(all(not(beluga_loom), not(miri), target_os = "linux"))]
    {
        membarrier::private_expedited()
    }
    #[cfg(all(not(beluga_loom), any(miri, not(target_os = "linux"))))]
    {
        false
    }
}

#[cfg(all(not(beluga_loom), not(miri), target_os = "linux"))]
mod membarrier {
    use std::sync::OnceLock;

    // From `include/uapi/linux/membarrier.h`; the `libc` crate does not
    // export the command numbers.
    const QUERY: libc::c_int = 0;
    const PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    const REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

    fn membarrier(command: libc::c_int) -> libc::c_long {
        // SAFETY: `membarrier(int cmd, unsigned int flags, int cpu_id)` reads
        // and writes no memory of ours; every command used here takes no
        // flags, and an unknown or refused command only returns -1.
        unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                command,
                0 as libc::c_uint,
                0 as libc::c_int,
            )
        }
    }

    /// Whether this process registered for private expedited barriers
    /// (once; the answer never changes afterwards).
    fn registered() -> bool {
        static REGISTERED: OnceLock<bool> = OnceLock::new();
        *REGISTERED.get_or_init(|| {
            let supported = membarrier(QUERY);
            supported >= 0
                && supported & libc::c_long::from(PRIVATE_EXPEDITED) != 0
                && membarrier(REGISTER_PRIVATE_EXPEDITED) == 0
        })
    }

    pub(super) fn private_expedited() -> bool {
        registered() && membarrier(PRIVATE_EXPEDITED) == 0
    }
}

#[cfg(all(test, not(beluga_loom), not(miri), target_os = "linux"))]
mod tests {
    /// The machines we test on run Linux kernels far newer than 4.14; if
    /// this fails, the sandbox refuses `membarrier` and removed series are
    /// freed only when each thread records again (see `lookup_cache`).
    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn the_process_wide_barrier_is_available_here() {
        assert!(super::heavy());
        assert!(super::heavy(), "the second call uses the registration");
    }
}
