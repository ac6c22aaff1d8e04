//! WebSockets open that have not joined a room yet, and their cap.
//!
//! A socket that joined is a participant, bounded by the room limits; one that has not is
//! bounded by nothing else, and costs a session task and its buffers. An upgrade takes an
//! [`UnjoinedGuard`]; over the cap it is refused with 503. The session releases the guard when
//! its `join` succeeds, and a socket that ends without joining releases it by going away.

use std::sync::atomic::Ordering;

use crate::metrics::Level;

/// The count of unjoined sockets and its cap.
#[derive(Debug)]
pub struct UnjoinedSockets {
    /// The count, which is also the gauge in `/metrics`.
    count: Level,
    max: i64,
}

impl UnjoinedSockets {
    /// At most `max` unjoined sockets at once, counted on `count`.
    pub fn new(max: usize, count: Level) -> Self {
        Self {
            count,
            max: i64::try_from(max).unwrap_or(i64::MAX),
        }
    }

    /// A place for one more, or `None` when all are taken.
    pub fn try_acquire(&self) -> Option<UnjoinedGuard> {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
                (count < self.max).then_some(count + 1)
            })
            .ok()?;
        Some(UnjoinedGuard {
            count: Some(self.count.clone()),
        })
    }

    /// Unjoined sockets now.
    pub fn count(&self) -> usize {
        usize::try_from(self.count.load(Ordering::Acquire)).unwrap_or(0)
    }
}

/// One unjoined socket's place, held until it joins ([`release`](Self::release)) or ends.
#[derive(Debug)]
pub struct UnjoinedGuard {
    count: Option<Level>,
}

impl UnjoinedGuard {
    /// Gives the place back: the socket has joined. Releasing again does nothing.
    pub fn release(&mut self) {
        if let Some(count) = self.count.take() {
            count.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for UnjoinedGuard {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_more_than_the_cap_and_a_join_frees_a_place() {
        let sockets = UnjoinedSockets::new(2, Level::default());
        let mut first = sockets.try_acquire().expect("first");
        let second = sockets.try_acquire().expect("second");
        assert!(sockets.try_acquire().is_none());
        first.release();
        first.release();
        assert_eq!(sockets.count(), 1, "releasing twice counts once");
        let third = sockets.try_acquire().expect("the place the join freed");
        drop(first);
        assert_eq!(
            sockets.count(),
            2,
            "dropping a released guard changes nothing"
        );
        drop(second);
        drop(third);
        assert_eq!(sockets.count(), 0);
    }
}
