//! Raw connections that hold broker resources without ever completing a request: frames
//! declared and never sent, frames trickled a byte at a time, fetches pipelined and never
//! read, connections that say nothing, and admin HTTP requests whose answers are never read.
//!
//! Owns: every raw socket of the hostile load, on one thread. Imports: `result`, `wire`,
//! the parent's `HostilePlan`. Invariant: the thread never reads a byte from a socket (it
//! only peeks at an admin answer's status line); it stops, closing every socket, when
//! `stop` is set.

use super::HostilePlan;
use crate::result::HeldConnections;
use crate::wire;
use anyhow::Context;
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(100);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A closed connection is opened again no sooner than this (with `reconnect`).
const REOPEN_AFTER: Duration = Duration::from_secs(1);
/// Receive buffer of connections that never read: the broker's writes stall early.
const NON_READER_RCVBUF_BYTES: libc::c_int = 4096;
const FETCH_NON_READER_RCVBUF_BYTES: libc::c_int = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    DeclaredFrame,
    Trickle,
    FetchPipeline,
    Idle,
    Admin,
}

const KINDS: [Kind; 5] = [
    Kind::DeclaredFrame,
    Kind::Trickle,
    Kind::FetchPipeline,
    Kind::Idle,
    Kind::Admin,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::DeclaredFrame => "declared_frame",
            Kind::Trickle => "trickle",
            Kind::FetchPipeline => "fetch_pipeline",
            Kind::Idle => "idle",
            Kind::Admin => "admin",
        }
    }
}

struct Held {
    kind: Kind,
    stream: Option<TcpStream>,
    reopen_at: Instant,
}

struct Holder {
    plan: HostilePlan,
    kafka: SocketAddr,
    admin: Option<SocketAddr>,
    fetch_requests: Vec<u8>,
    admin_request: Vec<u8>,
    held: Vec<Held>,
    counters: Vec<HeldConnections>,
}

/// Opens every connection, keeps them open (reopening closed ones when the plan says so)
/// and trickles, until `stop`; then reports per kind.
pub fn run(plan: HostilePlan, stop: Arc<AtomicBool>) -> anyhow::Result<Vec<HeldConnections>> {
    let mut holder = Holder::new(plan)?;
    for index in 0..holder.held.len() {
        holder.open(index);
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    let mut next_second = Instant::now() + Duration::from_secs(1);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(TICK);
        let now = Instant::now();
        if now < next_second {
            continue;
        }
        next_second += Duration::from_secs(1);
        holder.trickle();
        holder.notice_closed();
        if holder.plan.settings.reconnect {
            holder.reopen(now);
        }
    }
    Ok(holder.finish())
}

fn resolve(address: &str) -> anyhow::Result<SocketAddr> {
    address
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {address}"))?
        .next()
        .with_context(|| format!("{address} resolves to nothing"))
}

impl Holder {
    fn new(plan: HostilePlan) -> anyhow::Result<Holder> {
        let s = &plan.settings;
        let kafka = resolve(&plan.bootstrap)?;
        let admin = plan.admin_address.as_deref().map(resolve).transpose()?;
        let fetch_requests: Vec<u8> = (0..s.fetch_pipeline_requests)
            .flat_map(|i| {
                wire::fetch_v4(
                    i as i32,
                    &plan.topic,
                    s.backlog_partitions,
                    s.fetch_bytes,
                    s.fetch_bytes,
                )
            })
            .collect();
        let admin_request = wire::http_get(&kafka.ip().to_string(), &s.admin_path, false);
        let admin_clients = if admin.is_some() { s.admin_clients } else { 0 };
        let targets = [
            s.declared_frame_connections,
            s.trickle_connections,
            s.fetch_pipeline_connections,
            s.idle_connections,
            admin_clients,
        ];
        let now = Instant::now();
        let held = KINDS
            .iter()
            .zip(targets)
            .flat_map(|(kind, count)| {
                (0..count).map(move |_| Held {
                    kind: *kind,
                    stream: None,
                    reopen_at: now,
                })
            })
            .collect();
        let counters = KINDS
            .iter()
            .zip(targets)
            .map(|(kind, target)| HeldConnections {
                kind: kind.name().to_string(),
                target,
                ..Default::default()
            })
            .collect();
        Ok(Holder {
            plan,
            kafka,
            admin,
            fetch_requests,
            admin_request,
            held,
            counters,
        })
    }

    fn counter(&mut self, kind: Kind) -> &mut HeldConnections {
        let index = KINDS.iter().position(|k| *k == kind).unwrap_or(0);
        &mut self.counters[index]
    }

    /// Connects and sends what this kind sends first; on failure, tries again later.
    fn open(&mut self, index: usize) {
        let kind = self.held[index].kind;
        let (address, prologue, rcvbuf) = match kind {
            Kind::DeclaredFrame => (
                self.kafka,
                frame_length(self.plan.settings.declared_frame_bytes).to_vec(),
                None,
            ),
            Kind::Trickle => (
                self.kafka,
                frame_length(self.plan.settings.trickle_frame_bytes).to_vec(),
                None,
            ),
            Kind::FetchPipeline => (
                self.kafka,
                self.fetch_requests.clone(),
                Some(FETCH_NON_READER_RCVBUF_BYTES),
            ),
            Kind::Idle => (self.kafka, Vec::new(), None),
            Kind::Admin => match self.admin {
                Some(admin) => (
                    admin,
                    self.admin_request.clone(),
                    Some(NON_READER_RCVBUF_BYTES),
                ),
                None => return,
            },
        };
        self.held[index].reopen_at = Instant::now() + REOPEN_AFTER;
        match connect_and_send(address, &prologue, rcvbuf) {
            Ok(stream) => {
                self.held[index].stream = Some(stream);
                let counter = self.counter(kind);
                counter.opened += 1;
                counter.bytes_sent += prologue.len() as u64;
            }
            Err(_) => self.counter(kind).connect_errors += 1,
        }
    }

    /// Each trickler sends its bytes for this second (zeros: the frame is never parsed).
    fn trickle(&mut self) {
        let bytes = vec![0u8; self.plan.settings.trickle_bytes_per_second as usize];
        let mut sent = 0u64;
        let mut closed = Vec::new();
        for (index, held) in self.held.iter_mut().enumerate() {
            let (Kind::Trickle, Some(stream)) = (held.kind, held.stream.as_mut()) else {
                continue;
            };
            match stream.write(&bytes) {
                Ok(n) => sent += n as u64,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => closed.push(index),
            }
        }
        self.counter(Kind::Trickle).bytes_sent += sent;
        for index in closed {
            self.closed(index);
        }
    }

    /// Connections whose peer closed or reset them (poll: POLLRDHUP / POLLHUP / POLLERR).
    fn notice_closed(&mut self) {
        let open: Vec<usize> = (0..self.held.len())
            .filter(|i| self.held[*i].stream.is_some())
            .collect();
        let mut fds: Vec<libc::pollfd> = open
            .iter()
            .filter_map(|i| self.held[*i].stream.as_ref())
            .map(|stream| libc::pollfd {
                fd: stream.as_raw_fd(),
                events: libc::POLLRDHUP,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs; timeout 0.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
        if ready <= 0 {
            return;
        }
        let gone = libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR;
        for (index, fd) in open.into_iter().zip(&fds) {
            if fd.revents & gone != 0 {
                self.closed(index);
            }
        }
    }

    fn closed(&mut self, index: usize) {
        let kind = self.held[index].kind;
        let refused = match (kind, self.held[index].stream.take()) {
            (Kind::Admin, Some(stream)) => is_503(&stream),
            _ => false,
        };
        self.held[index].reopen_at = Instant::now() + REOPEN_AFTER;
        let counter = self.counter(kind);
        counter.closed_by_broker += 1;
        counter.refused += u64::from(refused);
    }

    fn reopen(&mut self, now: Instant) {
        for index in 0..self.held.len() {
            if self.held[index].stream.is_none() && self.held[index].reopen_at <= now {
                self.open(index);
            }
        }
    }

    fn finish(mut self) -> Vec<HeldConnections> {
        for kind in KINDS {
            let open = self
                .held
                .iter()
                .filter(|h| h.kind == kind && h.stream.is_some())
                .count() as u64;
            self.counter(kind).open_at_end = open;
        }
        self.counters
    }
}

fn frame_length(bytes: u64) -> [u8; 4] {
    wire::frame_length(bytes.min(i32::MAX as u64) as u32)
}

fn connect_and_send(
    address: SocketAddr,
    prologue: &[u8],
    rcvbuf: Option<libc::c_int>,
) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)?;
    if let Some(bytes) = rcvbuf {
        set_receive_buffer(&stream, bytes)?;
    }
    stream.set_write_timeout(Some(CONNECT_TIMEOUT))?;
    stream.write_all(prologue)?;
    stream.set_nonblocking(true)?;
    Ok(stream)
}

fn set_receive_buffer(stream: &TcpStream, bytes: libc::c_int) -> std::io::Result<()> {
    // SAFETY: setsockopt on an open socket with a pointer to a c_int and its size.
    let status = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    match status {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Whether the answer waiting in the socket starts with "HTTP/1.1 503" (peeked, not read).
fn is_503(stream: &TcpStream) -> bool {
    let mut head = [0u8; 12];
    matches!(stream.peek(&mut head), Ok(12) if &head[9..12] == b"503")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    #[test]
    fn a_peeked_503_is_recognised_without_consuming_it() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let client = connect_and_send(address, b"GET / HTTP/1.1\r\n\r\n", Some(4096)).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let mut request = [0u8; 18];
        server.read_exact(&mut request).unwrap();
        server
            .write_all(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
            .unwrap();
        drop(server);
        client.set_nonblocking(false).unwrap();
        assert!(is_503(&client));
        assert!(is_503(&client), "peeking leaves the answer in place");
    }

    /// A fake broker: closes a connection whose frame declares `close_declared` bytes (as a
    /// read deadline would), keeps every other one; a fake admin port answers 503 and closes.
    fn fake_servers(close_declared: u32) -> (SocketAddr, SocketAddr) {
        let kafka = TcpListener::bind("127.0.0.1:0").unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").unwrap();
        let addresses = (kafka.local_addr().unwrap(), admin.local_addr().unwrap());
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            for stream in kafka.incoming() {
                let mut stream = stream.unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                let mut length = [0u8; 4];
                let declared = stream.read_exact(&mut length).ok().map(|()| length);
                if declared != Some(close_declared.to_be_bytes()) {
                    kept.push(stream);
                }
            }
        });
        std::thread::spawn(move || {
            for stream in admin.incoming() {
                let mut stream = stream.unwrap();
                let _ = stream.write_all(b"HTTP/1.1 503 Service Unavailable\r\n\r\n");
            }
        });
        addresses
    }

    #[test]
    fn closed_connections_are_counted_and_reopened() {
        let (kafka, admin) = fake_servers(1000);
        let section = "[background]\nkind = \"hostile\"\ndeclared_frame_connections = 2\n\
                       declared_frame_bytes = 1000\ntrickle_connections = 1\n\
                       trickle_frame_bytes = 2000\ntrickle_bytes_per_second = 3\n\
                       fetch_pipeline_connections = 0\nbig_fetch_consumers = 0\n\
                       idle_connections = 1\nadmin_clients = 1\n";
        let workload = crate::workload::Workload::parse(&format!(
            "{}{section}",
            crate::workload::tests::MINIMAL
        ))
        .unwrap();
        let Some(crate::workload::Background::Hostile(settings)) = workload.background else {
            panic!("hostile expected")
        };
        let plan = HostilePlan {
            settings,
            attack: true,
            topic: "t".into(),
            bootstrap: kafka.to_string(),
            admin_address: Some(admin.to_string()),
            run_tag: 1,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || run(plan, stop))
        };
        std::thread::sleep(Duration::from_millis(3500));
        stop.store(true, Ordering::Relaxed);
        let report = thread.join().unwrap().unwrap();
        let by_kind = |kind: &str| report.iter().find(|c| c.kind == kind).unwrap().clone();
        let declared = by_kind("declared_frame");
        assert_eq!(declared.target, 2);
        assert!(declared.closed_by_broker >= 2, "{declared:?}");
        assert!(
            declared.opened >= 4,
            "closed ones are reopened: {declared:?}"
        );
        let idle = by_kind("idle");
        assert_eq!(
            (idle.opened, idle.closed_by_broker, idle.open_at_end),
            (1, 0, 1)
        );
        let trickle = by_kind("trickle");
        assert_eq!(trickle.closed_by_broker, 0);
        assert!(trickle.bytes_sent >= 4 + 3 * 2, "{trickle:?}");
        let admin = by_kind("admin");
        assert!(
            admin.refused >= 1 && admin.refused == admin.closed_by_broker,
            "{admin:?}"
        );
        assert_eq!(by_kind("fetch_pipeline").opened, 0);
    }
}
