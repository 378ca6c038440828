//! In-run baselines: what the raw machine does with the same bytes, measured in the same run,
//! so broker numbers can be reported as ratios that survive a noisy, shared machine.
//!
//! Owns: the O_DIRECT sequential-write baseline, the fdatasync latency baseline and the
//! loopback TCP copy baseline. Imports: `stats`, `result`. Runs on the calling thread (plus
//! one helper thread for TCP); never runs while load is being generated.

use crate::result::Baselines;
use crate::stats::{LatencyHistogram, MB, median};
use anyhow::{Context, bail};
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Block size of the sequential-write baseline (the broker's default `write_chunk_bytes`).
const DISK_BLOCK_BYTES: usize = 1 << 20;
const ALIGNMENT: usize = 4096;
const FDATASYNC_ROUNDS: usize = 200;
const TCP_WRITE_BYTES: usize = 256 * 1024;
/// Bounds on the bytes a baseline moves: enough to be steady, not enough to dominate a run.
pub const BASELINE_BYTES_MIN: u64 = 64 << 20;
pub const BASELINE_BYTES_MAX: u64 = 1 << 30;
/// Each baseline is measured this many times; the median is kept.
const BASELINE_REPEATS: usize = 3;

/// A zeroed heap buffer aligned for O_DIRECT.
struct AlignedBuffer {
    pointer: *mut u8,
    layout: Layout,
}

impl AlignedBuffer {
    fn new(bytes: usize) -> anyhow::Result<AlignedBuffer> {
        let layout = Layout::from_size_align(bytes, ALIGNMENT)?;
        // SAFETY: layout has a non-zero size (callers pass block sizes > 0).
        let pointer = unsafe { alloc_zeroed(layout) };
        if pointer.is_null() {
            bail!("cannot allocate {bytes} aligned bytes");
        }
        Ok(AlignedBuffer { pointer, layout })
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: pointer is a live allocation of layout.size() bytes owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.pointer, self.layout.size()) }
    }
}

impl Drop for AlignedBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this exact layout.
        unsafe { dealloc(self.pointer, self.layout) }
    }
}

/// An O_DIRECT file that is removed when dropped.
struct DirectFile {
    fd: libc::c_int,
    path: PathBuf,
}

impl DirectFile {
    fn create(dir: &Path, name: &str) -> anyhow::Result<DirectFile> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{name}-{}.baseline", std::process::id()));
        let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
        let flags = libc::O_CREAT | libc::O_TRUNC | libc::O_WRONLY | libc::O_DIRECT;
        // SAFETY: c_path is a valid NUL-terminated string.
        let fd = unsafe { libc::open(c_path.as_ptr(), flags, 0o600) };
        if fd < 0 {
            let error = std::io::Error::last_os_error();
            bail!(
                "cannot open {} with O_DIRECT ({error}); is it on tmpfs? use an ext4/xfs dir",
                path.display()
            );
        }
        Ok(DirectFile { fd, path })
    }

    fn write_all_at(&self, buffer: &[u8], offset: u64) -> anyhow::Result<()> {
        let mut done = 0;
        while done < buffer.len() {
            let rest = &buffer[done..];
            // SAFETY: rest is a valid readable slice; fd is open for writing.
            let written = unsafe {
                libc::pwrite(
                    self.fd,
                    rest.as_ptr().cast(),
                    rest.len(),
                    (offset + done as u64) as libc::off_t,
                )
            };
            if written < 0 {
                let error = std::io::Error::last_os_error();
                if error.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error).context("O_DIRECT pwrite");
            }
            done += written as usize;
        }
        Ok(())
    }

    fn fdatasync(&self) -> anyhow::Result<()> {
        // SAFETY: fd is an open file descriptor.
        if unsafe { libc::fdatasync(self.fd) } != 0 {
            return Err(std::io::Error::last_os_error()).context("fdatasync");
        }
        Ok(())
    }
}

impl Drop for DirectFile {
    fn drop(&mut self) {
        // SAFETY: fd is ours and closed exactly once.
        unsafe { libc::close(self.fd) };
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Sequential O_DIRECT writes of `bytes` (rounded up to whole blocks) and one final
/// fdatasync, as the broker's appender does; returns 10^6 bytes per second.
pub fn disk_write_mb_per_sec(dir: &Path, bytes: u64) -> anyhow::Result<f64> {
    let file = DirectFile::create(dir, "disk-write")?;
    let mut buffer = AlignedBuffer::new(DISK_BLOCK_BYTES)?;
    let mut rng = crate::payload::Rng::new(crate::payload::random_seed());
    for chunk in buffer.as_mut_slice().chunks_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes()[..chunk.len()]);
    }
    let blocks = bytes.div_ceil(DISK_BLOCK_BYTES as u64).max(1);
    let start = Instant::now();
    for block in 0..blocks {
        file.write_all_at(buffer.as_mut_slice(), block * DISK_BLOCK_BYTES as u64)?;
    }
    file.fdatasync()?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(blocks as f64 * DISK_BLOCK_BYTES as f64 / MB / seconds)
}

/// Latency of a 4 KiB O_DIRECT append followed by fdatasync: the floor under any acks=all
/// produce latency. Returns (p50, p99) in microseconds.
pub fn fdatasync_latency_us(dir: &Path) -> anyhow::Result<(f64, f64)> {
    let file = DirectFile::create(dir, "fdatasync")?;
    let mut buffer = AlignedBuffer::new(ALIGNMENT)?;
    buffer.as_mut_slice().fill(0xA5);
    let mut histogram = LatencyHistogram::new();
    for round in 0..FDATASYNC_ROUNDS {
        let start = Instant::now();
        file.write_all_at(buffer.as_mut_slice(), (round * ALIGNMENT) as u64)?;
        file.fdatasync()?;
        histogram.record_ns(start.elapsed().as_nanos() as u64);
    }
    let summary = histogram.summary();
    Ok((summary.p50, summary.p99))
}

/// Copies `bytes` over one loopback TCP connection (writer thread -> reader thread) and
/// returns 10^6 bytes per second.
pub fn tcp_loopback_mb_per_sec(bytes: u64) -> anyhow::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let reader = std::thread::Builder::new()
        .name("baseline-tcp-reader".into())
        .spawn(move || -> anyhow::Result<u64> {
            let (mut stream, _) = listener.accept()?;
            let mut buffer = vec![0u8; TCP_WRITE_BYTES];
            let mut total = 0u64;
            loop {
                let n = stream.read(&mut buffer)?;
                if n == 0 {
                    return Ok(total);
                }
                total += n as u64;
            }
        })?;
    let buffer = vec![0x5Au8; TCP_WRITE_BYTES];
    let start = Instant::now();
    let mut stream = TcpStream::connect(address)?;
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(TCP_WRITE_BYTES as u64) as usize;
        stream.write_all(&buffer[..n])?;
        sent += n as u64;
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    let received = reader
        .join()
        .map_err(|_| anyhow::anyhow!("TCP baseline reader panicked"))??;
    let seconds = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        received == bytes,
        "TCP baseline lost bytes: {received} of {bytes}"
    );
    Ok(bytes as f64 / MB / seconds)
}

pub fn clamp_bytes(bytes: u64) -> u64 {
    bytes.clamp(BASELINE_BYTES_MIN, BASELINE_BYTES_MAX)
}

fn median_of_runs(
    runs: usize,
    mut measure: impl FnMut() -> anyhow::Result<f64>,
) -> anyhow::Result<f64> {
    let mut values = Vec::with_capacity(runs);
    for _ in 0..runs {
        values.push(measure()?);
    }
    Ok(median(values))
}

/// Measures all baselines (median of three runs each). `disk_bytes` and `tcp_bytes` are
/// what the broker moved in the measured phase; they are clamped to a sane range.
pub fn measure(disk_dir: &Path, disk_bytes: u64, tcp_bytes: u64) -> Baselines {
    let disk_bytes = clamp_bytes(disk_bytes);
    let tcp_bytes = clamp_bytes(tcp_bytes);
    let mut baselines = Baselines {
        disk_dir: disk_dir.display().to_string(),
        disk_write_bytes: disk_bytes,
        tcp_bytes,
        ..Default::default()
    };
    match median_of_runs(BASELINE_REPEATS, || {
        disk_write_mb_per_sec(disk_dir, disk_bytes)
    }) {
        Ok(v) => baselines.disk_write_mb_per_sec = Some(v),
        Err(e) => baselines.notes.push(format!("disk write baseline: {e:#}")),
    }
    match fdatasync_latency_us(disk_dir) {
        Ok((p50, p99)) => {
            baselines.fdatasync_p50_us = Some(p50);
            baselines.fdatasync_p99_us = Some(p99);
        }
        Err(e) => baselines.notes.push(format!("fdatasync baseline: {e:#}")),
    }
    match median_of_runs(BASELINE_REPEATS, || tcp_loopback_mb_per_sec(tcp_bytes)) {
        Ok(v) => baselines.tcp_loopback_mb_per_sec = Some(v),
        Err(e) => baselines.notes.push(format!("TCP baseline: {e:#}")),
    }
    baselines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_dir(name: &str) -> PathBuf {
        // target/ is on the same (ext4) filesystem as the workspace, unlike /dev/shm.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/bench-test")
            .join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn baselines_measure_positive_rates_and_clean_up() {
        let dir = scratch_dir("baselines");
        let disk = disk_write_mb_per_sec(&dir, 8 << 20).unwrap();
        assert!(disk > 0.0);
        let (p50, p99) = fdatasync_latency_us(&dir).unwrap();
        assert!(p50 > 0.0 && p99 >= p50);
        let tcp = tcp_loopback_mb_per_sec(8 << 20).unwrap();
        assert!(tcp > 0.0);
        let leftovers = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(leftovers, 0, "baseline files must be removed");
    }

    #[test]
    fn baseline_bytes_are_clamped() {
        assert_eq!(clamp_bytes(0), BASELINE_BYTES_MIN);
        assert_eq!(clamp_bytes(u64::MAX), BASELINE_BYTES_MAX);
        assert_eq!(clamp_bytes(100 << 20), 100 << 20);
    }
}
