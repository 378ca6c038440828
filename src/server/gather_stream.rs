//! The TCP stream under a TLS connection, with real vectored writes: rustls hands its
//! encrypted records to `poll_write_vectored` several at a time, but glommio's `TcpStream`
//! writes only the first slice, one write per 16 KiB record. This tries one non-blocking
//! `sendmsg` over all of them first, as the plaintext response path does, and only when the
//! socket is full waits through glommio's own write (kept until it completes, so bytes never
//! go out of order).
//!
//! May import: glommio, libc (through `socket_writer`). Runs on: the connection's shard.
//! Invariant: once glommio's write returned `Pending`, every write goes to glommio until
//! that write completed (rustls offers the same front bytes again).

use super::socket_writer::sendmsg_nonblocking;
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use std::io::{self, IoSlice};
use std::os::unix::io::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Slices passed to one `sendmsg` at most.
const SLICES_MAX: usize = 64;

pub struct GatherStream {
    inner: TcpStream,
    fd: RawFd,
    /// glommio's write returned `Pending`: finish it before any `sendmsg`.
    fallback_pending: bool,
}

impl GatherStream {
    pub fn new(inner: TcpStream) -> GatherStream {
        let fd = inner.as_raw_fd();
        GatherStream {
            inner,
            fd,
            fallback_pending: false,
        }
    }
}

impl AsyncRead for GatherStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for GatherStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let Some(first) = bufs.iter().find(|b| !b.is_empty()) else {
            return Poll::Ready(Ok(0));
        };
        if !self.fallback_pending {
            let slices: Vec<&[u8]> = bufs
                .iter()
                .filter(|b| !b.is_empty())
                .take(SLICES_MAX)
                .map(|b| &b[..])
                .collect();
            loop {
                match sendmsg_nonblocking(self.fd, &slices) {
                    Ok(written) => return Poll::Ready(Ok(written)),
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    Err(error) => return Poll::Ready(Err(error)),
                }
            }
        }
        let first: &[u8] = first;
        match Pin::new(&mut self.inner).poll_write(cx, first) {
            Poll::Pending => {
                self.fallback_pending = true;
                Poll::Pending
            }
            Poll::Ready(result) => {
                self.fallback_pending = false;
                Poll::Ready(result)
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
