//! One connection's close: a response that says `Connection: close` is the
//! last thing its connection carries, and no request behind it runs.
//!
//! actix-http's HTTP/1 dispatcher keeps decoding pipelined requests while it
//! answers one, and starts the next queued request as soon as a response is
//! written, whatever that response said. What stops it is its shutdown
//! signal: once that has fired, it finishes the response in progress, marks
//! it `Connection: close`, drops the queued requests and closes the socket.
//! The server gives every connection its own signal ([`Connection::signal`]),
//! which fires when the server drains or when a response on that connection
//! must close it ([`Connection::close`]).
//!
//! A connection and its requests live on one worker thread, so the state is
//! an `Rc` of `Cell`s.

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// The close state of one connection, shared by its requests (through the
/// connection data) and by its dispatcher (through the signal).
#[derive(Clone, Default)]
pub struct Connection(Rc<State>);

#[derive(Default)]
struct State {
    /// A response asked for the connection to close.
    closing: Cell<bool>,
    /// The dispatcher's signal has fired: the response in progress is the
    /// last one.
    draining: Cell<bool>,
    /// A dispatcher's signal watches this connection.
    watched: Cell<bool>,
    /// The dispatcher's task, woken when `closing` is set.
    waker: Cell<Option<Waker>>,
}

thread_local! {
    /// The connection accepted last on this thread, until the signal built
    /// for its dispatcher takes it.
    static ACCEPTED: Cell<Option<Connection>> = const { Cell::new(None) };
}

impl Connection {
    /// The state of a connection just accepted on this thread. The next
    /// [`Connection::signal`] built on this thread watches it: actix-http
    /// builds a connection's dispatcher, and with it the signal, right
    /// after its connect hook, on the same thread.
    pub fn accept() -> Self {
        let conn = Self::default();
        ACCEPTED.with(|slot| slot.set(Some(conn.clone())));
        conn
    }

    /// The dispatcher's shutdown signal for the connection accepted last on
    /// this thread: ready when `drain` is (the server is stopping) or when a
    /// response on the connection must close it.
    pub fn signal(drain: impl Future<Output = ()>) -> impl Future<Output = ()> {
        let conn = ACCEPTED.with(Cell::take);
        if let Some(conn) = &conn {
            conn.0.watched.set(true);
        }
        async move {
            let mut drain = pin!(drain);
            poll_fn(|cx| {
                let closing = conn.as_ref().is_some_and(|c| c.poll_closing(cx));
                if closing || drain.as_mut().poll(cx).is_ready() {
                    if let Some(conn) = &conn {
                        conn.0.draining.set(true);
                    }
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
        }
    }

    fn poll_closing(&self, cx: &mut Context<'_>) -> bool {
        if self.0.closing.get() {
            return true;
        }
        self.0.waker.set(Some(cx.waker().clone()));
        false
    }

    /// Asks for the connection to close after the response in progress and
    /// waits until its dispatcher has seen the signal: from then on no
    /// request queued behind this one runs, and the response is marked
    /// `Connection: close`. Returns at once when no dispatcher watches the
    /// connection (a request built in a test).
    pub async fn close(&self) {
        self.0.closing.set(true);
        if let Some(waker) = self.0.waker.take() {
            waker.wake();
        }
        // The dispatcher polls its signal first thing on every wake-up, and
        // the response future right after: one more round is enough.
        poll_fn(|cx| {
            if self.0.draining.get() || !self.0.watched.get() {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Counter(std::sync::atomic::AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn poll_once<F: Future>(f: std::pin::Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_close_fires_the_signal_and_returns_once_the_signal_was_seen() {
        let wakes = Arc::new(Counter(0.into()));
        let waker = Waker::from(Arc::clone(&wakes));
        let conn = Connection::accept();
        let mut signal = pin!(Connection::signal(std::future::pending()));
        assert!(poll_once(signal.as_mut(), &waker).is_pending());

        let mut close = pin!(conn.close());
        assert!(poll_once(close.as_mut(), &waker).is_pending());
        assert!(
            wakes.0.load(std::sync::atomic::Ordering::SeqCst) >= 1,
            "the dispatcher is woken"
        );
        assert!(poll_once(signal.as_mut(), &waker).is_ready());
        assert!(poll_once(close.as_mut(), &waker).is_ready());
    }

    #[test]
    fn the_server_drain_fires_every_signal_and_a_later_close_returns_at_once() {
        let waker = Waker::noop();
        let conn = Connection::accept();
        let mut signal = pin!(Connection::signal(std::future::ready(())));
        assert!(poll_once(signal.as_mut(), waker).is_ready());
        let mut close = pin!(conn.close());
        assert!(poll_once(close.as_mut(), waker).is_ready());
    }

    #[test]
    fn a_connection_no_signal_watches_closes_at_once() {
        let conn = Connection::default();
        let mut close = pin!(conn.close());
        assert!(poll_once(close.as_mut(), Waker::noop()).is_ready());
    }
}
