//! Vectored response writes: record `Bytes` go to the socket with `sendmsg` straight from
//! the batch cache or read buffers, never copied into a response buffer. glommio's
//! `TcpStream` only writes one slice at a time, so this tries a non-blocking `sendmsg` over
//! all chunks first and, when the socket is full, waits for it through glommio's own write.

use bytes::Bytes;
use futures::future::{Either, select};
use futures_lite::AsyncWriteExt;
use std::io;
use std::os::unix::io::RawFd;
use std::time::Duration;

/// Linux's IOV_MAX.
const IOV_MAX: usize = 1024;

pub(super) fn sendmsg_nonblocking(fd: RawFd, slices: &[&[u8]]) -> io::Result<usize> {
    let iovecs: Vec<libc::iovec> = slices
        .iter()
        .map(|s| libc::iovec {
            iov_base: s.as_ptr() as *mut libc::c_void,
            iov_len: s.len(),
        })
        .collect();
    // SAFETY: an all-zero msghdr is valid; msg_iov points at `iovecs`, which lives (and
    // whose slices live) until sendmsg returns.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = iovecs.as_ptr() as *mut libc::iovec;
    header.msg_iovlen = iovecs.len();
    // SAFETY: `fd` is the connection's open socket; `header` is valid as above.
    let sent = unsafe { libc::sendmsg(fd, &header, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

/// Writes all `chunks` in order to the socket `fd`, which `fallback` also writes to. Fails
/// with `TimedOut` when the socket takes no byte for `stall_timeout`.
pub async fn write_chunks<W: futures_lite::AsyncWrite + Unpin>(
    fd: RawFd,
    fallback: &mut W,
    chunks: &[Bytes],
    stall_timeout: Duration,
) -> io::Result<()> {
    let mut index = 0usize;
    let mut offset = 0usize;
    while index < chunks.len() {
        let slices: Vec<&[u8]> = chunks[index..]
            .iter()
            .take(IOV_MAX)
            .enumerate()
            .map(|(i, chunk)| if i == 0 { &chunk[offset..] } else { &chunk[..] })
            .collect();
        let written = match sendmsg_nonblocking(fd, &slices) {
            Ok(written) => written,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                let write = Box::pin(fallback.write(slices[0]));
                let stall = Box::pin(glommio::timer::sleep(stall_timeout));
                let written = match select(write, stall).await {
                    Either::Left((written, _)) => written?,
                    Either::Right(_) => return Err(io::ErrorKind::TimedOut.into()),
                };
                if written == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                written
            }
            Err(error) => return Err(error),
        };
        let mut remaining = written;
        while remaining > 0 && index < chunks.len() {
            let left_in_chunk = chunks[index].len() - offset;
            if remaining >= left_in_chunk {
                remaining -= left_in_chunk;
                index += 1;
                offset = 0;
            } else {
                offset += remaining;
                remaining = 0;
            }
        }
        while index < chunks.len() && chunks[index].len() == offset {
            index += 1;
            offset = 0;
        }
    }
    Ok(())
}

/// Plaintext gathered per TLS write: one full TLS record (16 KiB), so many small chunks (a
/// fetch response's headers between batches) do not each become a record of their own.
const TLS_RECORD_BYTES: usize = 16 * 1024;

/// Writes all `chunks` in order through `writer` (a TLS stream, which encrypts and so copies
/// anyway): small chunks are gathered into record-sized writes, large ones written as they
/// are; then flushes. Fails with `TimedOut` when the socket takes no byte for
/// `stall_timeout`.
pub async fn write_chunks_copied<W: futures_lite::AsyncWrite + Unpin>(
    writer: &mut W,
    chunks: &[Bytes],
    stall_timeout: Duration,
) -> io::Result<()> {
    let mut staging: Vec<u8> = Vec::new();
    for chunk in chunks {
        if staging.len() + chunk.len() <= TLS_RECORD_BYTES {
            staging.extend_from_slice(chunk);
            continue;
        }
        if !staging.is_empty() {
            write_all_within(writer, &staging, stall_timeout).await?;
            staging.clear();
        }
        if chunk.len() >= TLS_RECORD_BYTES {
            write_all_within(writer, chunk, stall_timeout).await?;
        } else {
            staging.extend_from_slice(chunk);
        }
    }
    if !staging.is_empty() {
        write_all_within(writer, &staging, stall_timeout).await?;
    }
    let flush = Box::pin(writer.flush());
    let stall = Box::pin(glommio::timer::sleep(stall_timeout));
    match select(flush, stall).await {
        Either::Left((flushed, _)) => flushed,
        Either::Right(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// `write_all` that fails with `TimedOut` when no byte is taken for `stall_timeout`.
async fn write_all_within<W: futures_lite::AsyncWrite + Unpin>(
    writer: &mut W,
    mut bytes: &[u8],
    stall_timeout: Duration,
) -> io::Result<()> {
    while !bytes.is_empty() {
        let write = Box::pin(writer.write(bytes));
        let stall = Box::pin(glommio::timer::sleep(stall_timeout));
        let written = match select(write, stall).await {
            Either::Left((written, _)) => written?,
            Either::Right(_) => return Err(io::ErrorKind::TimedOut.into()),
        };
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[written..];
    }
    Ok(())
}
