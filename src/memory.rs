//! The process's memory: certform allocates through mimalloc (set in `main`). mimalloc
//! returns freed pages to the system after a delay (`purge_delay`; this build's default is a
//! second): for a run that parses and drops tens of megabytes in its first tenth of a second
//! and then builds as much again, that delay was ~20 MB of peak RSS at 10,000 certificates.
//! `configure` makes it 1 ms, and a phase that frees much at once (the configuration's
//! parse, ~45 MB at 10,000 certificates, of which ~12 MB stay as the model) hands it back at
//! once with `release_freed`.

/// mimalloc's `mi_option_purge_delay` (milliseconds before freed memory is returned), by its
/// number in the `mi_option_e` enumeration of the mimalloc 3 that libmimalloc-sys 0.1.49
/// builds (`mimalloc.h`; the Rust bindings name no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory waits before it goes back to the system, in milliseconds: long
/// enough that memory freed and taken again at once (a buffer per file) is not returned and
/// faulted in again every time, short enough that the peak is what is live.
const PURGE_DELAY_MS: std::ffi::c_long = 1;

/// Set the allocator's options, unless the user set them (`MIMALLOC_PURGE_DELAY`): first thing
/// in `main`.
pub fn configure() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: `mi_option_set` takes an option number and a value; mimalloc reads options
        // at each use, so setting one after start is supported.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
    }
}

/// The purge delay the allocator uses now (tests).
pub fn purge_delay_ms() -> std::ffi::c_long {
    // SAFETY: reads an option by its number.
    unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
}

/// Return the memory freed so far to the system now (mimalloc's forced collection). Harmless
/// where mimalloc is not the global allocator (its own heaps are then empty).
pub fn release_freed() {
    // SAFETY: `mi_collect` takes no pointers and may be called at any time from any thread.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

#[cfg(test)]
mod tests {
    /// Option 15 is the purge delay: its default is mimalloc 3's for `purge_delay` (1,000 ms,
    /// `options.c`), and `configure` sets it. Another option under that number would show
    /// another default.
    #[test]
    fn the_option_set_is_the_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        assert_eq!(super::purge_delay_ms(), 1000);
        super::configure();
        assert_eq!(super::purge_delay_ms(), super::PURGE_DELAY_MS);
    }
}
