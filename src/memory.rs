//! The process's memory: certform allocates through mimalloc (set in `main`).
//!
//! - Transparent huge pages are off for the process (`configure`): on a system where they
//!   are `always` on, a 2 MB region touched anywhere is all resident, and at 10,000
//!   certificates that was ~18 MB of `plan`'s peak RSS for no measurable gain in time.
//! - Freed memory goes back to the system where a phase that frees much at once ends
//!   (`release_freed`: the configuration's parse once the tree is built, and once validated;
//!   the state read; refresh), and otherwise ten seconds after it is freed, not a second
//!   (mimalloc's `purge_delay`). A second was longer than most runs, so the parse's ~45 MB at
//!   10,000 certificates stayed held while refresh built as much again; 1 ms (certform's
//!   setting before) returned memory all through a run only to fault it in again: at 10,000
//!   certificates `plan` took ~48,000 page faults, its peak RSS 91–128 MB depending on the
//!   threads' timing. With the collections at phase ends and a delay that outlasts a run, it
//!   takes ~32,000 faults and ~0.05–0.1 s less, at a steadier 94–96 MB.

/// mimalloc's `mi_option_purge_delay` (milliseconds before freed memory is returned), by its
/// number in the `mi_option_e` enumeration of the mimalloc 3 that libmimalloc-sys 0.1.49
/// builds (`mimalloc.h`; the Rust bindings name no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// The purge delay certform sets, in milliseconds.
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

/// mimalloc's `mi_option_allow_thp`, by its number in the `mi_option_e` enumeration of the
/// mimalloc 3 that libmimalloc-sys 0.1.49 builds (`mimalloc.h`; the Rust bindings name no
/// constant for it).
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// Set the allocator up, first thing in `main`: transparent huge pages off for this process
/// (and what it starts) unless the user set `MIMALLOC_ALLOW_THP`, and the purge delay unless
/// the user set `MIMALLOC_PURGE_DELAY`. mimalloc turns huge pages off itself at start when its
/// option says so; `main` runs after that, so certform sets the option (no more
/// `MADV_HUGEPAGE` on new memory) and makes the same `prctl` call.
pub fn configure() {
    // SAFETY (all three calls): `mi_option_set` takes an option number and a value, and
    // mimalloc reads options at each use; `prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)` takes no
    // pointers and only changes how the kernel backs this process's anonymous memory (a
    // failure, on a kernel without it, leaves it as it was).
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0);
            #[cfg(target_os = "linux")]
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
    }
}

/// The allocator's purge delay in milliseconds (tests).
#[cfg(test)]
fn purge_delay_ms() -> std::ffi::c_long {
    // SAFETY: reads an option by its number.
    unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
}

/// Whether the allocator may use transparent huge pages (tests).
#[cfg(test)]
fn huge_pages_allowed() -> bool {
    // SAFETY: reads an option by its number.
    unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_ALLOW_THP) != 0 }
}

/// Return the memory freed so far to the system now (mimalloc's forced collection). Harmless
/// where mimalloc is not the global allocator (its own heaps are then empty).
pub fn release_freed() {
    // SAFETY: `mi_collect` takes no pointers and may be called at any time from any thread.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

#[cfg(test)]
mod tests {
    /// Option 43 is `allow_thp` and option 15 `purge_delay`: their defaults are mimalloc 3's
    /// (1 on Linux, where the options beside it default to 32 and 0; 1,000 ms, where the
    /// options beside it default to 1 and 0), and `configure` sets both.
    #[test]
    fn the_options_set_are_huge_pages_and_the_purge_delay() {
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_some()
            || std::env::var_os("MIMALLOC_PURGE_DELAY").is_some()
        {
            return;
        }
        assert!(super::huge_pages_allowed());
        assert_eq!(super::purge_delay_ms(), 1000);
        super::configure();
        assert!(!super::huge_pages_allowed());
        assert_eq!(super::purge_delay_ms(), super::PURGE_DELAY_MS);
    }
}
