//! Clean shutdown on SIGINT and SIGTERM, as ROS nodes do: the first signal stops the node's
//! work (the runtime finishes the frame in flight and writes its summary, the audio thread
//! flushes its pipeline), and the process exits 0 once that is done. A second signal, or work
//! that does not finish within the grace period, exits at once with a non-zero code.
//!
//! The signal handler only counts (one atomic add, async-signal-safe); [`Shutdown`] decides.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Signals received since [`install_signal_handlers`].
static SIGNALS: AtomicUsize = AtomicUsize::new(0);

/// SIGINT or SIGTERM received so far.
pub fn signals_received() -> usize {
    SIGNALS.load(Ordering::SeqCst)
}

#[cfg(target_os = "linux")]
extern "C" fn count_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::SeqCst);
}

/// Count SIGINT and SIGTERM instead of dying of them (their default action).
#[cfg(target_os = "linux")]
pub fn install_signal_handlers() -> crate::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let handler = count_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handler only does an atomic add, which is async-signal-safe.
        if unsafe { libc::signal(sig, handler) } == libc::SIG_ERR {
            return Err(crate::Error::Runtime(format!(
                "installing the handler of signal {sig} failed"
            )));
        }
    }
    Ok(())
}

/// Signal handling needs Linux here; elsewhere the default action stays.
#[cfg(not(target_os = "linux"))]
pub fn install_signal_handlers() -> crate::Result<()> {
    Err(crate::Error::Runtime(
        "SIGINT/SIGTERM handling is implemented for Linux only".into(),
    ))
}

/// How a node's process ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// Process exit code.
    pub code: i32,
    /// Why, for the log.
    pub reason: String,
}

/// What the node should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Keep running.
    Continue,
    /// A signal arrived: stop the work and wait for it.
    BeginStop,
    /// End the process.
    Exit(Exit),
}

/// The shutdown decisions, driven by the signal count, whether the work has ended, and time.
#[derive(Debug, Clone)]
pub struct Shutdown {
    grace_ms: u64,
    stop_since_ms: Option<u64>,
}

impl Shutdown {
    /// Work gets `grace` to finish after the first signal.
    pub fn new(grace: Duration) -> Self {
        Self {
            grace_ms: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
            stop_since_ms: None,
        }
    }

    /// The next step given `signals` received so far, the work's outcome once it has ended
    /// (`Some(Err(reason))` when it failed), and the time `now_ms`.
    pub fn step(
        &mut self,
        signals: usize,
        ended: Option<std::result::Result<(), String>>,
        now_ms: u64,
    ) -> Step {
        let exit = |code: i32, reason: String| Step::Exit(Exit { code, reason });
        match (ended, self.stop_since_ms) {
            (Some(Ok(())), Some(_)) => exit(0, "stopped on a signal".into()),
            (Some(Ok(())), None) => exit(0, "the input ended".into()),
            (Some(Err(e)), _) => exit(1, format!("stopped with an error: {e}")),
            (None, _) if signals >= 2 => exit(130, "second signal: exiting at once".into()),
            (None, Some(t)) if now_ms.saturating_sub(t) > self.grace_ms => exit(
                1,
                format!("did not stop within {} ms of the signal", self.grace_ms),
            ),
            (None, Some(_)) => Step::Continue,
            (None, None) if signals >= 1 => {
                self.stop_since_ms = Some(now_ms);
                Step::BeginStop
            }
            (None, None) => Step::Continue,
        }
    }
}

/// Run `work` until it ends, stopping it with `stop` on the first signal that `signals`
/// reports; returns how the process should exit. `poll` is how often signals are checked.
pub async fn supervise<W, S>(
    work: W,
    stop: S,
    signals: impl Fn() -> usize,
    grace: Duration,
    poll: Duration,
) -> Exit
where
    W: Future<Output = std::result::Result<(), String>>,
    S: FnOnce(),
{
    let start = tokio::time::Instant::now();
    let mut state = Shutdown::new(grace);
    let mut stop = Some(stop);
    tokio::pin!(work);
    let mut ended = None;
    loop {
        let now_ms = start.elapsed().as_millis() as u64;
        match state.step(signals(), ended.take(), now_ms) {
            Step::Continue => {}
            Step::BeginStop => {
                tracing::info!("signal received: stopping (a second one exits at once)");
                if let Some(f) = stop.take() {
                    f();
                }
            }
            Step::Exit(e) => return e,
        }
        tokio::select! {
            r = &mut work, if ended.is_none() => ended = Some(r),
            _ = tokio::time::sleep(poll) => {}
        }
    }
}
