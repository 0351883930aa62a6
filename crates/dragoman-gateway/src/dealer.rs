//! Spreads connections over the serving threads. One acceptor thread takes every new
//! connection and hands it to the thread serving the fewest. Threads that each accepted from
//! a shared socket did not spread at all: the first to wake drained the whole backlog, and a
//! load generator's 16 connections all landed on one thread while the other sat idle
//! (measured, `cargo xtask bench`).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// Live connections per serving thread, counted from hand-over to close.
type Live = Arc<[AtomicUsize]>;

/// The acceptor's side: which thread gets the next connection.
pub(crate) struct Dealer {
    to: Vec<UnboundedSender<std::net::TcpStream>>,
    live: Live,
    /// Where the search for the least busy thread starts, turning, so that ties do not all
    /// go to thread 0.
    turn: usize,
}

/// One serving thread's side: a listener whose connections come from the [`Dealer`].
pub(crate) struct Dealt {
    from: UnboundedReceiver<std::net::TcpStream>,
    live: Live,
    me: usize,
    local: SocketAddr,
}

/// Makes the dealer and one [`Dealt`] listener per serving thread.
pub(crate) fn deal(threads: usize, local: SocketAddr) -> (Dealer, Vec<Dealt>) {
    let live: Live = (0..threads).map(|_| AtomicUsize::new(0)).collect();
    let mut to = Vec::with_capacity(threads);
    let mut listeners = Vec::with_capacity(threads);
    for me in 0..threads {
        let (tx, rx) = unbounded_channel();
        to.push(tx);
        listeners.push(Dealt {
            from: rx,
            live: live.clone(),
            me,
            local,
        });
    }
    (Dealer { to, live, turn: 0 }, listeners)
}

impl Dealer {
    /// Connections open on all threads.
    pub(crate) fn live_total(&self) -> usize {
        self.live.iter().map(|l| l.load(Ordering::Relaxed)).sum()
    }

    /// Hands `conn` to the thread with the fewest live connections.
    pub(crate) fn hand(&mut self, conn: std::net::TcpStream) {
        let n = self.to.len();
        if n == 0 {
            return;
        }
        self.turn = (self.turn + 1) % n;
        let pick = (0..n)
            .map(|k| (self.turn + k) % n)
            .min_by_key(|&i| self.live[i].load(Ordering::Relaxed))
            .unwrap_or(0);
        self.live[pick].fetch_add(1, Ordering::Relaxed);
        if self.to[pick].send(conn).is_err() {
            // That thread has stopped (shutdown): the connection closes unanswered, as one
            // still in the listen backlog would.
            self.live[pick].fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl axum::serve::Listener for Dealt {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Counted, SocketAddr) {
        loop {
            let Some(conn) = self.from.recv().await else {
                // The acceptor stopped (shutdown): no more connections, ever.
                return std::future::pending().await;
            };
            let peer = conn.peer_addr();
            match (tokio::net::TcpStream::from_std(conn), peer) {
                (Ok(io), Ok(peer)) => {
                    let conn = Counted {
                        io,
                        live: self.live.clone(),
                        me: self.me,
                    };
                    return (conn, peer);
                }
                // Gone before it was served (reset), or the reactor refused it.
                (Err(e), _) | (_, Err(e)) => {
                    self.live[self.me].fetch_sub(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "dropping a connection before serving it");
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// A served connection that counts itself out of its thread's live connections when closed.
pub(crate) struct Counted {
    io: tokio::net::TcpStream,
    live: Live,
    me: usize,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.live[self.me].fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// Connections go to the least busy thread, ties taking turns, and a closed connection
    /// frees its place.
    #[tokio::test]
    async fn deals_to_the_least_busy_thread() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (mut dealer, mut threads) = deal(2, addr);
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(std::net::TcpStream::connect(addr).unwrap());
            let (conn, _) = listener.accept().unwrap();
            conn.set_nonblocking(true).unwrap();
            dealer.hand(conn);
        }
        let live = |t: &[Dealt]| -> Vec<usize> {
            t[0].live
                .iter()
                .map(|l| l.load(Ordering::Relaxed))
                .collect()
        };
        assert_eq!(live(&threads), vec![2, 2]);
        let mut served = Vec::new();
        for t in threads.iter_mut() {
            for _ in 0..2 {
                served.push(axum::serve::Listener::accept(t).await.0);
            }
        }
        // Two connections of thread 0 close: the next two both go to thread 0.
        drop(served.remove(0));
        drop(served.remove(0));
        assert_eq!(live(&threads), vec![0, 2]);
        for _ in 0..2 {
            clients.push(std::net::TcpStream::connect(addr).unwrap());
            let (conn, _) = listener.accept().unwrap();
            conn.set_nonblocking(true).unwrap();
            dealer.hand(conn);
        }
        assert_eq!(live(&threads), vec![2, 2]);
    }
}
