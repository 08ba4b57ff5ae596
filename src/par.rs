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

/// Items a thread takes at a time: small enough that items of very different cost (one
/// directory tree beside 10,000 small directories) still end evenly spread, large enough that
/// taking them costs nothing.
const BATCH: usize = 16;

/// `items.iter().map(f).collect()`, in the same order, computed on up to `MAX_THREADS`
/// threads. The threads take batches of `BATCH` items in turn from a shared counter (not one
/// fixed slice each), so a few costly items do not leave one thread working alone. A panic in
/// `f` is resumed on the calling thread.
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
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (f, next) = (&f, &next);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || {
                    let mut done: Vec<(usize, Vec<R>)> = Vec::new();
                    loop {
                        let start = next.fetch_add(BATCH, std::sync::atomic::Ordering::Relaxed);
                        if start >= items.len() {
                            break done;
                        }
                        let end = (start + BATCH).min(items.len());
                        done.push((start, items[start..end].iter().map(f).collect()));
                    }
                })
            })
            .collect();
        let mut batches = Vec::with_capacity(items.len().div_ceil(BATCH));
        for handle in handles {
            match handle.join() {
                Ok(done) => batches.extend(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        batches.sort_unstable_by_key(|(start, _)| *start);
        let mut results = Vec::with_capacity(items.len());
        for (_, batch) in batches {
            results.extend(batch);
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
    fn a_costly_item_does_not_keep_the_others_on_its_thread() {
        if threads_for(1_000) < 2 {
            return; // one processor: nothing to spread
        }
        // The first item takes long; with one fixed slice per thread, its thread would also
        // do the whole first half. Taken in batches, the other threads do nearly all the rest.
        let items: Vec<usize> = (0..1_000).collect();
        let first = std::thread::current().id();
        let ran_on = map(&items, |n| {
            if *n == 0 {
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            std::thread::current().id()
        });
        let with_first = ran_on.iter().filter(|id| **id == ran_on[0]).count();
        assert_ne!(ran_on[0], first, "ran on the scoped threads");
        assert!(
            with_first < 250,
            "{with_first} of 1,000 items ran beside the costly one"
        );
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
