//! The latest-frame slot between the async runtime and the inference thread: holds at most one
//! waiting job; a new one replaces (and returns) the old, so overload drops frames instead of
//! queueing them.

use std::sync::{Condvar, Mutex, MutexGuard};

#[derive(Debug)]
struct Inner<T> {
    item: Option<T>,
    closed: bool,
}

/// A one-item mailbox: `put` never blocks, `take` blocks until an item or the close.
#[derive(Debug)]
pub struct LatestSlot<T> {
    inner: Mutex<Inner<T>>,
    ready: Condvar,
}

impl<T> Default for LatestSlot<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> LatestSlot<T> {
    /// An empty, open slot.
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                item: None,
                closed: false,
            }),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // A panic elsewhere while holding the lock leaves a valid Option: keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Leave `item` for the consumer; returns the item it replaced, which was never taken.
    pub fn put(&self, item: T) -> Option<T> {
        let old = self.lock().item.replace(item);
        self.ready.notify_one();
        old
    }

    /// Wait for an item; `None` once the slot is closed and empty.
    pub fn take(&self) -> Option<T> {
        let mut g = self.lock();
        loop {
            if let Some(x) = g.item.take() {
                return Some(x);
            }
            if g.closed {
                return None;
            }
            g = self.ready.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// No more items will come; the consumer drains what is left, then gets `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn put_replaces_and_returns_the_old_item() {
        let s = LatestSlot::new();
        assert_eq!(s.put(1), None);
        assert_eq!(s.put(2), Some(1));
        assert_eq!(s.take(), Some(2));
        s.put(3);
        s.close();
        assert_eq!(s.take(), Some(3), "drained after close");
        assert_eq!(s.take(), None);
    }

    #[test]
    fn take_waits_for_a_put_from_another_thread() {
        let s = Arc::new(LatestSlot::new());
        let s2 = Arc::clone(&s);
        let h = std::thread::spawn(move || s2.take());
        s.put(7);
        assert_eq!(h.join().unwrap(), Some(7));
    }
}
