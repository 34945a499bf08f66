//! Spreading independent pieces of work over the machine's cores, for the CPU-heavy part of a
//! transaction (applying changes to several records) while the store stays locked.

use std::sync::{Mutex, OnceLock, PoisonError};

/// Threads used at most, the calling one included: a phone has many small cores and its UI to
/// keep smooth; a relay on 2 cores uses both.
const MAX_THREADS: usize = 4;

/// Runs `work` on every item, on up to [`MAX_THREADS`] threads (the caller's and scoped ones
/// that end before this returns); each thread takes the next item left. One item, or one core:
/// on the calling thread only. A panic in `work` reaches the caller.
pub(crate) fn each<T: Send>(items: &mut [T], work: impl Fn(&mut T) + Sync) {
    let threads = cores().min(MAX_THREADS).min(items.len());
    if threads <= 1 {
        items.iter_mut().for_each(work);
        return;
    }
    let left = Mutex::new(items.iter_mut());
    // The iterator stays valid whatever panicked while holding the lock (it only hands out items).
    let next = || left.lock().unwrap_or_else(PoisonError::into_inner).next();
    let run = || {
        while let Some(item) = next() {
            work(item);
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(run);
        }
        run();
    });
}

/// The cores this process may use, read once: `available_parallelism` reads the cgroup's files
/// on every call, and a relay settles many groups a second.
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

#[cfg(test)]
mod tests {
    use super::each;
    use std::collections::HashSet;
    use std::sync::Mutex;

    #[test]
    fn every_item_is_worked_on_once() {
        let mut items: Vec<(u32, u32)> = (0..1000).map(|i| (i, 0)).collect();
        let threads = Mutex::new(HashSet::new());
        each(&mut items, |(i, done)| {
            *done += *i + 1;
            threads.lock().unwrap().insert(std::thread::current().id());
        });
        assert!(items.iter().all(|(i, done)| *done == *i + 1));
        assert!(threads.lock().unwrap().len() <= super::cores().min(super::MAX_THREADS));
    }

    #[test]
    fn nothing_to_do_is_fine() {
        let mut items: Vec<u8> = Vec::new();
        each(&mut items, |_| unreachable!("no items"));
    }
}
