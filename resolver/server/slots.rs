//! The forwarded queries of one UDP receive loop: a set of futures polled
//! like `FuturesUnordered`, whose heap slots are kept and reused.
//!
//! `FuturesUnordered` allocates a task node for every future it is given,
//! with the future inside: for a forwarded query some 2 KiB, more than
//! glibc's per-thread cache holds, so every cache miss took malloc's slower
//! path (and made it consolidate its small free chunks). Here the box of a
//! finished future is emptied and the next future is written into it, and
//! each slot's waker is made once, so after the first burst forwarding
//! allocates nothing here. Slots are kept while the loop runs: there are as
//! many as the most forwards this loop had in flight at once, which the
//! in-flight cap (`max_inflight`) bounds.
//!
//! A slot's waker queues the slot's index and wakes the loop's task; each
//! poll takes in what was queued and polls the slots first in, first out
//! (a new future is queued when it is added, so it waits behind the answers
//! that came before it). A wake
//! that comes after its future finished (a clone kept somewhere) polls the
//! slot's next future once for nothing, which a future allows.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::stream::Stream;
use futures_util::task::AtomicWaker;

/// Futures polled in a row before the set gives way to the rest of the
/// loop's task, as `FuturesUnordered` does, when none of them is ready.
const POLLS_PER_TURN: usize = 32;

/// The set. `F` is the one future type of a loop's forwards.
pub(super) struct Slots<F> {
    slots: Vec<Slot<F>>,
    /// Empty slots, to be filled first.
    free: Vec<usize>,
    /// Futures in the set.
    live: usize,
    ready: Arc<Ready>,
    /// Slots to poll, first in first out: new ones, and woken ones taken
    /// from `ready`.
    woken: VecDeque<usize>,
}

struct Slot<F> {
    future: Pin<Box<Option<F>>>,
    waker: Waker,
    flag: Arc<SlotWaker>,
}

/// The slots woken since the last poll, and the task that polls them.
#[derive(Default)]
struct Ready {
    queue: Mutex<Vec<usize>>,
    task: AtomicWaker,
}

/// The waker of one slot.
struct SlotWaker {
    index: usize,
    /// Whether the slot is queued already (one entry however many wakes).
    queued: AtomicBool,
    ready: Arc<Ready>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            let mut queue = self
                .ready
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            queue.push(self.index);
            drop(queue);
            self.ready.task.wake();
        }
    }
}

impl<F: Future> Slots<F> {
    pub(super) fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            ready: Arc::default(),
            woken: VecDeque::new(),
        }
    }

    /// Whether no future is in the set.
    pub(super) fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Adds a future, in an empty slot when there is one; it is first
    /// polled by the next poll of the set (queued here, not woken: the
    /// caller polls the set after adding to it, as with
    /// `FuturesUnordered`, and a wake would poll the loop's task once more
    /// for nothing).
    pub(super) fn push(&mut self, future: F) {
        let i = match self.free.pop().filter(|i| *i < self.slots.len()) {
            Some(i) => {
                if let Some(slot) = self.slots.get_mut(i) {
                    slot.future.set(Some(future));
                }
                i
            }
            None => {
                let flag = Arc::new(SlotWaker {
                    index: self.slots.len(),
                    queued: AtomicBool::new(false),
                    ready: Arc::clone(&self.ready),
                });
                self.slots.push(Slot {
                    future: Box::pin(Some(future)),
                    waker: Waker::from(Arc::clone(&flag)),
                    flag,
                });
                self.slots.len() - 1
            }
        };
        self.live += 1;
        if let Some(slot) = self.slots.get(i)
            && !slot.flag.queued.swap(true, Ordering::AcqRel)
        {
            self.woken.push_back(i);
        }
    }

    /// Slots held, filled or empty.
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.slots.len()
    }
}

impl<F: Future> Stream for Slots<F> {
    type Item = F::Output;

    /// The output of a woken future that is ready, `Pending` when none
    /// is, `None` when the set is empty.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        let this = self.get_mut();
        if this.live == 0 {
            return Poll::Ready(None);
        }
        this.ready.task.register(cx.waker());
        this.take_queued();
        for _ in 0..POLLS_PER_TURN {
            if this.woken.is_empty() {
                this.take_queued();
            }
            let Some(i) = this.woken.pop_front() else {
                return Poll::Pending;
            };
            let Some(slot) = this.slots.get_mut(i) else {
                continue;
            };
            // Before the poll: a wake during it queues the slot again.
            slot.flag.queued.store(false, Ordering::Release);
            let Some(future) = slot.future.as_mut().as_pin_mut() else {
                // Woken after its future finished.
                continue;
            };
            if let Poll::Ready(out) = future.poll(&mut Context::from_waker(&slot.waker)) {
                slot.future.set(None);
                this.free.push(i);
                this.live -= 1;
                return Poll::Ready(Some(out));
            }
        }
        // The budget is spent: the task is polled again for the rest, as
        // `FuturesUnordered` does. Not only when slots taken in are left:
        // those still queued may have woken a task waker that is gone (the
        // loop's `now_or_never` polls with one that wakes nothing).
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<F> Slots<F> {
    /// Moves the slots queued by their wakers behind those taken already.
    fn take_queued(&mut self) {
        let mut queue = self
            .ready
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.woken.extend(queue.drain(..));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::FutureExt;
    use futures_util::stream::StreamExt;
    use tokio::sync::oneshot;

    use super::*;

    #[tokio::test]
    async fn outputs_come_as_their_futures_finish_and_the_set_then_ends() {
        let mut set = Slots::new();
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..3).map(|_| oneshot::channel::<u32>()).unzip();
        for rx in rxs {
            set.push(async move { rx.await.unwrap_or(0) });
        }
        assert!(!set.is_empty());
        assert!(set.next().now_or_never().is_none(), "nothing is ready");
        let mut txs: Vec<_> = txs.into_iter().map(Some).collect();
        for (i, value) in [(2usize, 30u32), (0, 10), (1, 20)] {
            txs[i].take().unwrap().send(value).unwrap();
            assert_eq!(set.next().await, Some(value));
        }
        assert!(set.is_empty());
        assert_eq!(set.next().await, None);
    }

    #[tokio::test]
    async fn a_finished_futures_slot_is_reused_and_no_slot_is_added_after_the_peak() {
        let mut set = Slots::new();
        for round in 0..5u64 {
            for i in 0..8u64 {
                set.push(async move {
                    tokio::time::sleep(Duration::from_millis(i)).await;
                    round * 10 + i
                });
            }
            let mut got = vec![];
            while let Some(v) = set.next().await {
                got.push(v);
            }
            got.sort_unstable();
            assert_eq!(got, (0..8).map(|i| round * 10 + i).collect::<Vec<_>>());
            assert_eq!(set.capacity(), 8, "the slots of the first round, reused");
        }
    }

    /// A waker that counts its wakes.
    struct Count(std::sync::atomic::AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    type Boxed = Pin<Box<dyn Future<Output = u32> + Send>>;

    #[test]
    fn a_future_woken_behind_a_spent_budget_is_polled_on_the_next_turn() {
        let mut set: Slots<Boxed> = Slots::new();
        let (tx, rx) = oneshot::channel::<u32>();
        set.push(Box::pin(async move { rx.await.unwrap_or(0) }));
        let count = Arc::new(Count(0.into()));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut set).poll_next(&mut cx).is_pending());
        for _ in 0..POLLS_PER_TURN {
            set.push(Box::pin(std::future::pending::<u32>()));
        }
        // Its answer comes after the new ones were queued: a budget's worth.
        tx.send(7).unwrap();
        let before = count.0.load(Ordering::Relaxed);
        assert!(Pin::new(&mut set).poll_next(&mut cx).is_pending());
        assert!(
            count.0.load(Ordering::Relaxed) > before,
            "the task is woken again for what is left"
        );
        assert_eq!(Pin::new(&mut set).poll_next(&mut cx), Poll::Ready(Some(7)));
    }

    #[tokio::test]
    async fn many_futures_ready_at_once_are_all_polled_over_several_turns() {
        let mut set = Slots::new();
        let n = POLLS_PER_TURN * 3 + 5;
        let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
        for i in 0..n {
            let mut rx = tx.subscribe();
            // Only the last is ready when the sender goes: the rest are
            // woken and polled for nothing first, more than one turn's worth.
            set.push(async move {
                let _ = rx.recv().await;
                if i + 1 < n {
                    std::future::pending::<()>().await;
                }
                i
            });
        }
        assert!(set.next().now_or_never().is_none());
        drop(tx);
        // A set that gave way without waking its task again would hang here.
        let last = tokio::time::timeout(Duration::from_secs(60), set.next()).await;
        assert_eq!(
            last.expect("the set polls the rest on its next turn"),
            Some(n - 1)
        );
        assert!(!set.is_empty());
    }
}
