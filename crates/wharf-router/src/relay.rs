//! A waker for the upstream side of an exchange (its connection, response head and body), which
//! the request's own task polls (see `pool.rs`). hyper's client hands the request, the response
//! head and the body chunks between those futures through channels, and every hand-off wakes
//! the receiving future: here always the same task, which is running at that moment, so each
//! wake only makes the scheduler poll the whole client connection again for nothing (about two
//! such polls per request). Polled through [`Relay::poll`], those futures get this waker
//! instead: a wake while the task is inside `poll` only notes that something moved, and `poll`
//! polls them again at once; a wake from outside (the socket becoming ready) reaches the task.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// Rounds of polling in one [`Relay::poll`] while its futures keep waking each other; then the
/// task yields to the scheduler (woken), so that a busy exchange can't starve the others.
const MAX_ROUNDS: u32 = 8;

pub(crate) struct Relay {
    state: Arc<State>,
    waker: Waker,
}

struct State {
    /// The task polling the upstream side now.
    task: AtomicWaker,
    /// Set while the task is inside [`Relay::poll`]: wakes are noted, not passed on.
    inside: AtomicBool,
    /// A wake arrived since the current round started.
    woken: AtomicBool,
}

impl Wake for State {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // SeqCst on both flags, here and in `poll`: either `poll` sees `woken` after clearing
        // `inside`, or this sees `inside` cleared and wakes the task. No wake is lost.
        self.woken.store(true, Ordering::SeqCst);
        if !self.inside.load(Ordering::SeqCst) {
            self.task.wake();
        }
    }
}

impl Relay {
    pub(crate) fn new() -> Relay {
        let state = Arc::new(State {
            task: AtomicWaker::new(),
            inside: AtomicBool::new(false),
            woken: AtomicBool::new(false),
        });
        Relay {
            waker: Waker::from(Arc::clone(&state)),
            state,
        }
    }

    /// Runs `round` with a context holding the relay's waker until it is ready, or it returns
    /// pending with no wake during the round. `round` must poll every future that the others
    /// may wake (in an order where a hand-off is taken in the same round where possible).
    pub(crate) fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        mut round: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        let state = &self.state;
        state.task.register(cx.waker());
        let mut inner = Context::from_waker(&self.waker);
        for _ in 0..MAX_ROUNDS {
            state.woken.store(false, Ordering::SeqCst);
            state.inside.store(true, Ordering::SeqCst);
            let polled = round(&mut inner);
            state.inside.store(false, Ordering::SeqCst);
            if polled.is_ready() {
                return polled;
            }
            if !state.woken.load(Ordering::SeqCst) {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn wakes_inside_are_kept_and_wakes_outside_reach_the_task() {
        let relay = Relay::new();
        let task = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&task));
        let mut cx = Context::from_waker(&waker);
        // A round that wakes itself the first time: polled again at once, the task not woken.
        let mut rounds = 0;
        let polled: Poll<()> = relay.poll(&mut cx, |inner| {
            rounds += 1;
            if rounds == 1 {
                inner.waker().wake_by_ref();
            }
            Poll::Pending
        });
        assert!(polled.is_pending());
        assert_eq!(rounds, 2);
        assert_eq!(task.0.load(Ordering::SeqCst), 0);
        // A wake after `poll` returned (a socket getting ready) reaches the task.
        let mut kept = None;
        let _: Poll<()> = relay.poll(&mut cx, |inner| {
            kept = Some(inner.waker().clone());
            Poll::Pending
        });
        kept.unwrap().wake();
        assert_eq!(task.0.load(Ordering::SeqCst), 1);
        // A round that always wakes itself yields after a bound.
        let polled: Poll<()> = relay.poll(&mut cx, |inner| {
            inner.waker().wake_by_ref();
            Poll::Pending
        });
        assert!(polled.is_pending());
        assert_eq!(task.0.load(Ordering::SeqCst), 2);
    }
}
