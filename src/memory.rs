//! The process's memory: certform allocates through mimalloc (set in `main`), which returns
//! freed pages to the system some milliseconds after they are freed. A phase that frees much
//! at once (the configuration's parse, ~45 MB at 10,000 certificates, of which ~12 MB stay
//! as the model) hands it back at once with `release_freed`, so the next phase's peak does
//! not stack on top of it.

/// Return the memory freed so far to the system now (mimalloc's forced collection). Harmless
/// where mimalloc is not the global allocator (its own heaps are then empty).
pub fn release_freed() {
    // SAFETY: `mi_collect` takes no pointers and may be called at any time from any thread.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
