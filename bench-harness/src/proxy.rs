//! A deliberately slow TCP proxy: a stand-in for a slowed broker, so the regression gate can
//! be shown to fail without touching the broker's code (`--broker-delay-us`).
//!
//! Owns: one listener thread and two pump threads per connection. Each pump reads a chunk,
//! sleeps the configured delay, then forwards it, so every request and response is late
//! and a pipelined stream is throttled (at most one chunk per delay per direction).
//! Imports nothing from this crate. Loopback only.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

const CHUNK_BYTES: usize = 64 * 1024;
const ACCEPT_POLL: Duration = Duration::from_millis(10);

pub struct DelayProxy {
    pub address: SocketAddr,
    stop: Arc<AtomicBool>,
    listener_thread: Option<JoinHandle<()>>,
}

impl DelayProxy {
    pub fn start(upstream: SocketAddr, delay: Duration) -> anyhow::Result<DelayProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let listener_thread = std::thread::Builder::new()
            .name("delay-proxy".into())
            .spawn(move || accept_loop(listener, upstream, delay, &stop_flag))?;
        Ok(DelayProxy {
            address,
            stop,
            listener_thread: Some(listener_thread),
        })
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.listener_thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: TcpListener, upstream: SocketAddr, delay: Duration, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                if let Ok(server) = TcpStream::connect(upstream) {
                    spawn_pumps(client, server, delay);
                }
            }
            Err(_) => std::thread::sleep(ACCEPT_POLL),
        }
    }
}

fn spawn_pumps(client: TcpStream, server: TcpStream, delay: Duration) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let pairs = [
        (client.try_clone(), server.try_clone()),
        (server.try_clone(), client.try_clone()),
    ];
    for (from, to) in pairs {
        if let (Ok(from), Ok(to)) = (from, to) {
            let _ = std::thread::Builder::new()
                .name("delay-pump".into())
                .spawn(move || pump(from, to, delay));
        }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let mut buffer = vec![0u8; CHUNK_BYTES];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        std::thread::sleep(delay);
        if to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn proxy_forwards_both_ways_and_adds_delay() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let echo_address = echo.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = echo.accept().unwrap();
            let mut buffer = [0u8; 5];
            stream.read_exact(&mut buffer).unwrap();
            stream.write_all(&buffer).unwrap();
        });
        let proxy = DelayProxy::start(echo_address, Duration::from_millis(20)).unwrap();
        let start = Instant::now();
        let mut client = TcpStream::connect(proxy.address).unwrap();
        client.write_all(b"hello").unwrap();
        let mut reply = [0u8; 5];
        client.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"hello");
        assert!(
            start.elapsed() >= Duration::from_millis(40),
            "one delay each way"
        );
        drop(client);
        proxy.stop();
    }
}
