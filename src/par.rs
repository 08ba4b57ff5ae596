//! Per-certificate local work (reading and parsing state files, chains, deployed files and
//! keys) spread over a few threads: at 10,000 certificates these reads are most of a `plan`.
//!
//! Plain scoped threads, not the async runtime: the work is blocking file I/O and parsing, and
//! running it on the runtime's worker threads would stall the CA requests in flight.

/// Below this many items per thread, one more thread costs more than it saves.
const MIN_PER_THREAD: usize = 64;

/// At most this many threads, however many processors there are: the work is mostly reads of
/// small cached files.
const MAX_THREADS: usize = 8;

/// How many threads `map` uses for `len` items.
fn threads_for(len: usize) -> usize {
    let processors = std::thread::available_parallelism().map_or(1, usize::from);
    processors.min(MAX_THREADS).min(len / MIN_PER_THREAD).max(1)
}

/// `items.iter().map(f).collect()`, in the same order, computed on up to `MAX_THREADS`
/// threads in contiguous chunks. A panic in `f` is re-raised here.
pub fn map<T, R, F>(items: &[T], f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let threads = threads_for(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        let mut results = Vec::with_capacity(items.len());
        for handle in handles {
            match handle.join() {
                Ok(part) => results.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        results
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_order_and_every_item() {
        for len in [0, 1, 63, 64, 129, 1_000, 10_001] {
            let items: Vec<usize> = (0..len).collect();
            let doubled = map(&items, |n| n * 2);
            assert_eq!(doubled, items.iter().map(|n| n * 2).collect::<Vec<_>>());
        }
    }

    #[test]
    fn small_inputs_stay_on_the_calling_thread() {
        assert_eq!(threads_for(0), 1);
        assert_eq!(threads_for(MIN_PER_THREAD - 1), 1);
        assert!(threads_for(1_000_000) <= MAX_THREADS);
        let caller = std::thread::current().id();
        let items = vec![(); MIN_PER_THREAD - 1];
        assert!(map(&items, |()| std::thread::current().id() == caller)
            .into_iter()
            .all(|same| same));
    }

    #[test]
    #[should_panic(expected = "item 700")]
    fn a_panic_in_a_worker_reaches_the_caller() {
        let items: Vec<usize> = (0..1_000).collect();
        map(&items, |n| {
            assert!(*n != 700, "item {n}");
        });
    }
}
