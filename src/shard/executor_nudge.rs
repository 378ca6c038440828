//! The executor nudge: a workaround for a glommio 0.9 scheduler bug that can leave an
//! executor asleep in `io_uring_enter` with runnable tasks (issue 14 item 11, the start-up
//! hang; the evidence is in docs/operations.md, "Start-up").
//!
//! The bug: each turn of glommio's run loop arms the preemption timer on the latency ring
//! (`shard.preempt_interval_us`), then `run_task_queues` first asks `need_preempt()` — "is
//! there a completion on the latency ring?" — and, if so, returns "ran nothing" without
//! running any queue. The loop takes that as "no work" and parks; the park consumes the
//! timer's completion and sleeps. Nothing in the runnable queues is an I/O or a timer, so
//! nothing wakes the executor: it sleeps with work to do until an unrelated completion,
//! timer or cross-thread wake arrives. The timer fires before that first check only if the
//! thread was descheduled (or stopped) for longer than the preemption interval between
//! arming it and checking — rare at 100 ms, but one in thousands of starts on a loaded
//! 2-vCPU machine, and constant at a 200 µs interval. During start-up nothing else wakes
//! the executor (no timers yet, the other shard waits for this one in the mesh join), so the
//! broker hangs; a debugger attaching interrupts the sleep (EINTR) and the loop runs the
//! queued tasks. Fixed upstream in glommio/glommio#53 (not in a 0.9 release).
//!
//! The nudge: every `shard.executor_nudge_ms`, a thread wakes one parked task on each
//! executor through its `Waker` (glommio's cross-thread wake: a queued waker and an
//! eventfd write when the executor sleeps). The woken executor runs its loop again, so a
//! stranded executor resumes within one period. A timer task on the executor would not do:
//! once it fires, its task must *run* to re-arm the timer, and a strand right then leaves
//! the executor with no timer at all. The only window the wakers do not cover is an
//! executor stranded before its first task ran (it has not registered a waker yet); for
//! that, the thread interrupts such an executor thread while it sleeps in `io_uring_enter`
//! with SIGURG (a no-op handler): the EINTR a debugger would cause.
//!
//! Owns: `ExecutorNudge` (the registry of executors' wakers, the nudge thread, the SIGURG
//! handler). May import: std, libc, glommio, tracing. Runs on: its own thread (nudging) and
//! every executor (registering from a task).
//! Invariants: a registered waker is dropped on its own executor (`NudgeSlot::drop`); the
//! thread never blocks on an executor; only executor threads asleep in `io_cqring_wait` with
//! no registered waker are ever signalled.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The prefix glommio gives pool executor threads (`LocalExecutorPoolBuilder::name`), and
/// their blocking-pool threads inherit.
pub const EXECUTOR_THREAD_PREFIX: &str = "shard-";
/// The kernel wait channel of a thread asleep in `io_uring_enter` waiting for completions.
const IO_URING_WAIT_CHANNEL: &str = "io_cqring_wait";
/// How long after the nudge thread starts (the executors start right after it) it begins
/// to look for unregistered executor threads asleep in `io_uring_enter`: an executor
/// registers in its first run-loop turn, so one found asleep without a waker is stranded.
const REGISTRATION_GRACE: Duration = Duration::from_millis(200);

#[derive(Debug, Default)]
struct Registry {
    /// (thread id, waker of the nudge task) per attached executor; None once detached.
    slots: Vec<Option<(i32, Option<Waker>)>>,
    stopped: bool,
}

#[derive(Debug)]
struct Inner {
    period: Duration,
    /// Executors expected to attach (the shard count).
    executors: usize,
    registry: Mutex<Registry>,
    changed: Condvar,
    nudges: AtomicU64,
    kicks: AtomicU64,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The nudge thread and the executors' registry. Cloned into every executor; `attach` there.
#[derive(Debug, Clone)]
pub struct ExecutorNudge {
    inner: Option<Arc<Inner>>,
}

/// Stops the nudge thread when dropped (after the executors stopped).
#[derive(Debug)]
pub struct NudgeThread {
    inner: Option<Arc<Inner>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for NudgeThread {
    fn drop(&mut self) {
        if let Some(inner) = &self.inner {
            inner.lock().stopped = true;
            inner.changed.notify_all();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some(inner) = &self.inner {
            tracing::info!(
                nudges = inner.nudges.load(Ordering::Relaxed),
                stranded_before_first_task = inner.kicks.load(Ordering::Relaxed),
                "executor nudge stopped"
            );
        }
    }
}

impl ExecutorNudge {
    /// Starts the nudge thread for `executors` executors (none when `period` is zero:
    /// nudging is off).
    pub fn start(
        executors: usize,
        period: Duration,
    ) -> std::io::Result<(ExecutorNudge, NudgeThread)> {
        if period.is_zero() {
            let off = NudgeThread {
                inner: None,
                thread: None,
            };
            return Ok((ExecutorNudge { inner: None }, off));
        }
        install_kick_handler()?;
        let inner = Arc::new(Inner {
            period,
            executors,
            registry: Mutex::new(Registry::default()),
            changed: Condvar::new(),
            nudges: AtomicU64::new(0),
            kicks: AtomicU64::new(0),
        });
        let for_thread = inner.clone();
        let thread = std::thread::Builder::new()
            .name("executor-nudge".to_string())
            .spawn(move || nudge_loop(&for_thread))?;
        Ok((
            ExecutorNudge {
                inner: Some(inner.clone()),
            },
            NudgeThread {
                inner: Some(inner),
                thread: Some(thread),
            },
        ))
    }

    /// Registers the calling executor: spawns its nudge task. Call first thing on each
    /// executor; keep the slot until the executor's work ends (dropping it deregisters).
    pub fn attach(&self) -> NudgeSlot {
        let Some(inner) = &self.inner else {
            return NudgeSlot { inner: None };
        };
        let slot = {
            let mut registry = inner.lock();
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            registry.slots.push(Some((tid, None)));
            registry.slots.len() - 1
        };
        glommio::spawn_local(NudgeTask {
            inner: inner.clone(),
            slot,
        })
        .detach();
        NudgeSlot {
            inner: Some((inner.clone(), slot)),
        }
    }
}

/// An executor's registration; dropping it (on that executor) removes its waker.
#[derive(Debug)]
pub struct NudgeSlot {
    inner: Option<(Arc<Inner>, usize)>,
}

impl Drop for NudgeSlot {
    fn drop(&mut self) {
        if let Some((inner, slot)) = &self.inner {
            // Taken out under the lock, dropped here on the owning executor.
            let taken = inner.lock().slots.get_mut(*slot).and_then(Option::take);
            drop(taken);
        }
    }
}

/// Pending forever; each poll (after a nudge) stores the current waker in its slot.
struct NudgeTask {
    inner: Arc<Inner>,
    slot: usize,
}

impl Future for NudgeTask {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut registry = self.inner.lock();
        match registry.slots.get_mut(self.slot) {
            Some(Some((_, waker))) => {
                if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    // The old waker (if any) is this task's own: dropping it here is local.
                    *waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            // Detached: the executor is finishing.
            _ => Poll::Ready(()),
        }
    }
}

/// Wakes every registered executor each period (under the registry lock: a wake is a queue
/// push and at most one eventfd write); looks for stranded unregistered ones unlocked.
fn nudge_loop(inner: &Inner) {
    let started = Instant::now();
    loop {
        let registered = {
            let registry = inner.lock();
            let (registry, _) = inner
                .changed
                .wait_timeout(registry, inner.period)
                .unwrap_or_else(PoisonError::into_inner);
            if registry.stopped {
                return;
            }
            let mut registered = Vec::with_capacity(registry.slots.len());
            for (tid, waker) in registry.slots.iter().flatten() {
                if let Some(waker) = waker {
                    waker.wake_by_ref();
                    registered.push(*tid);
                }
            }
            registered
        };
        inner
            .nudges
            .fetch_add(registered.len() as u64, Ordering::Relaxed);
        // Once every executor has a waker, none can be stranded unregistered.
        if registered.len() < inner.executors && started.elapsed() >= REGISTRATION_GRACE {
            let kicked = kick_stranded_executors(&registered);
            inner.kicks.fetch_add(kicked, Ordering::Relaxed);
        }
    }
}

/// Signals executor threads without a registered waker that sleep in `io_uring_enter`.
fn kick_stranded_executors(registered: &[i32]) -> u64 {
    kick_unregistered_sleepers(registered).len() as u64
}

/// The thread ids `kick_stranded_executors` signalled.
fn kick_unregistered_sleepers(registered: &[i32]) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut kicked = Vec::new();
    for task in tasks.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<i32>().ok())
        else {
            continue;
        };
        if registered.contains(&tid) {
            continue;
        }
        let read = |name: &str| std::fs::read_to_string(task.path().join(name));
        let is_executor = read("comm").is_ok_and(|c| c.starts_with(EXECUTOR_THREAD_PREFIX));
        if !is_executor || read("wchan").map_or(true, |w| w.trim() != IO_URING_WAIT_CHANNEL) {
            continue;
        }
        // SAFETY: tgkill with our own pid and a thread id of this process; SIGURG has the
        // no-op handler installed by `install_kick_handler`.
        let sent = unsafe {
            libc::syscall(
                libc::SYS_tgkill,
                libc::getpid(),
                libc::c_long::from(tid),
                libc::SIGURG,
            )
        };
        if sent == 0 {
            tracing::warn!(
                tid,
                "executor thread slept in io_uring_enter before its first task ran; interrupted it"
            );
            kicked.push(tid);
        }
    }
    kicked
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// A no-op SIGURG handler without SA_RESTART, so the signal interrupts `io_uring_enter`
/// (glommio treats EINTR as a wake-up). SIGURG's default action is to ignore it, which would
/// not interrupt anything.
fn install_kick_handler() -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction is valid; the handler is async-signal-safe (does nothing).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = ignore_signal as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = 0;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGURG, &action, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use glommio::channels::channel_mesh::MeshBuilder;
    use glommio::{CpuSet, LocalExecutorPoolBuilder, PoolPlacement};
    use std::sync::mpsc;

    /// Ping-pong between two executors with glommio's strand made frequent (a 200 µs
    /// preemption interval: without the nudge this hangs within a few thousand turns on a
    /// loaded machine, see docs/operations.md). With the nudge every turn completes.
    fn ping_pong(turns: u64, nudge_period: Duration) -> Result<u64, String> {
        const BOUND: Duration = Duration::from_secs(120);
        let (nudge, thread) = ExecutorNudge::start(2, nudge_period).map_err(|e| e.to_string())?;
        let (done, finished) = mpsc::channel();
        let pool = std::thread::spawn(move || {
            let mesh = MeshBuilder::<u64, _>::full(2, 4);
            // Pinned like the broker's shards: a pinned thread waits for its own CPU, which
            // is what makes it miss the preemption deadline.
            let placement = match CpuSet::online() {
                Ok(cpus) if !cpus.is_empty() => PoolPlacement::Fenced(2, cpus),
                _ => PoolPlacement::Unbound(2),
            };
            let handles = LocalExecutorPoolBuilder::new(placement)
                .name("shard")
                .preempt_timer(Duration::from_micros(200))
                .io_memory(1 << 20)
                .ring_depth(64)
                .on_all_shards(move || {
                    let nudge = nudge.clone();
                    async move {
                        let _slot = nudge.attach();
                        let (senders, mut receivers) =
                            mesh.join().await.map_err(|e| e.to_string())?;
                        let me = senders.peer_id();
                        let streams = receivers.streams();
                        let (peer, receiver) = streams.into_iter().next().ok_or("no peer")?;
                        for turn in 0..turns {
                            if me == 0 {
                                senders
                                    .send_to(peer, turn)
                                    .await
                                    .map_err(|e| e.to_string())?;
                                receiver.recv().await.ok_or("closed")?;
                            } else {
                                let got = receiver.recv().await.ok_or("closed")?;
                                senders
                                    .send_to(peer, got)
                                    .await
                                    .map_err(|e| e.to_string())?;
                            }
                        }
                        Ok::<u64, String>(turns)
                    }
                })
                .map_err(|e| e.to_string());
            let result = handles.map(|h| {
                h.join_all()
                    .into_iter()
                    .filter(|r| matches!(r, Ok(Ok(n)) if *n == turns))
                    .count()
            });
            let _ = done.send(result);
        });
        let outcome = finished
            .recv_timeout(BOUND)
            .map_err(|_| format!("executors hung: {turns} turns not done in {BOUND:?}"))?;
        let _ = pool.join();
        drop(thread);
        outcome.map(|n| n as u64)
    }

    /// An executor thread asleep in io_uring_enter without a registered waker is found by
    /// name and wait channel and interrupted; it survives (the handler is a no-op) and goes
    /// back to sleep; a registered one is left alone.
    #[test]
    fn unregistered_sleeping_executors_are_interrupted() {
        const BOUND: Duration = Duration::from_secs(30);
        install_kick_handler().unwrap();
        let (tid_sender, tid) = mpsc::channel();
        let executor = glommio::LocalExecutorBuilder::default()
            .name("shard-kicktest")
            .spawn(move || async move {
                // SAFETY: gettid has no preconditions.
                let _ = tid_sender.send(unsafe { libc::gettid() });
                glommio::timer::sleep(Duration::from_secs(3)).await;
            })
            .unwrap();
        let tid = tid.recv_timeout(BOUND).unwrap();
        let wchan = || std::fs::read_to_string(format!("/proc/self/task/{tid}/wchan"));
        let deadline = Instant::now() + BOUND;
        while wchan().map_or(true, |w| w.trim() != IO_URING_WAIT_CHANNEL) {
            assert!(
                Instant::now() < deadline,
                "executor never slept: {:?}",
                wchan()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!kick_unregistered_sleepers(&[tid]).contains(&tid));
        assert!(kick_unregistered_sleepers(&[]).contains(&tid));
        executor.join().unwrap();
    }

    #[test]
    fn stranded_executors_resume_when_nudged() {
        assert_eq!(ping_pong(20_000, Duration::from_millis(5)), Ok(2));
    }
}
