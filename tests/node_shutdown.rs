//! Clean shutdown as the nodes do it: the real SIGINT/SIGTERM handlers count instead of
//! killing the process, the first signal stops the work and the process exits 0 once it has
//! finished (a runtime finishing its frame and writing its summary), a second signal or a stuck
//! stop exits non-zero. Logs go through the ROS logging layer as plain text.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hlfp::node::logging::{LogLine, RosLogLayer, Severity};
use hlfp::node::shutdown::{install_signal_handlers, signals_received, supervise, Shutdown, Step};
use hlfp::node::vision::VisionNode;
use hlfp::node::VisionNodeConfig;
use hlfp::pipeline::{
    ChannelFrameSource, Classified, Frame, FrameClassifier, NoCues, ScriptedClock,
};
use tokio::sync::mpsc;
use tracing_subscriber::layer::SubscriberExt as _;

#[test]
fn the_decisions() {
    let mut s = Shutdown::new(Duration::from_millis(500));
    assert_eq!(s.step(0, None, 0), Step::Continue);
    assert_eq!(s.step(1, None, 10), Step::BeginStop);
    assert_eq!(s.step(1, None, 20), Step::Continue, "stop asked once");
    match s.step(1, Some(Ok(())), 30) {
        Step::Exit(e) => assert_eq!(e.code, 0),
        other => panic!("{other:?}"),
    }
    let mut s = Shutdown::new(Duration::from_millis(500));
    s.step(1, None, 0);
    match s.step(1, None, 501) {
        Step::Exit(e) => assert!(e.code != 0 && e.reason.contains("500 ms"), "{e:?}"),
        other => panic!("{other:?}"),
    }
    let mut s = Shutdown::new(Duration::from_millis(500));
    s.step(1, None, 0);
    assert!(matches!(s.step(2, None, 1), Step::Exit(e) if e.code == 130));
    let mut s = Shutdown::new(Duration::from_millis(500));
    assert!(matches!(s.step(0, Some(Err("boom".into())), 0), Step::Exit(e) if e.code == 1));
}

/// Scores uniform over the active set.
struct Uniform(Vec<String>);

impl FrameClassifier for Uniform {
    fn class_names(&self) -> &[String] {
        &self.0
    }
    fn classify(&mut self, _: &Frame, active: &[usize], _: &[f32]) -> hlfp::Result<Classified> {
        Ok(Classified {
            scores: active
                .iter()
                .map(|&i| (i, 1.0 / active.len() as f32))
                .collect(),
            macs: 0,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_sigterm_stops_the_vision_runtime_and_exits_zero() {
    install_signal_handlers().unwrap();
    let before = signals_received();
    let node = VisionNode::new(VisionNodeConfig::default(), Arc::new(ScriptedClock::new()));
    let handle = node.handle();
    // A frame source that never ends, as a subscription never does.
    let (_frames_tx, frames) = ChannelFrameSource::new(1);
    let (out, _out_rx) = mpsc::unbounded_channel();
    let classes = ["cat", "dog"].map(String::from).to_vec();
    let work = async move {
        node.run(Uniform(classes), frames, NoCues, out)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    };
    let stopped = Arc::new(AtomicUsize::new(0));
    let s = stopped.clone();
    let raiser = tokio::spawn(async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        // SAFETY: raising a signal this process handles.
        unsafe { libc::raise(libc::SIGTERM) };
    });
    let exit = supervise(
        work,
        move || {
            s.fetch_add(1, Ordering::SeqCst);
            handle.stop();
        },
        move || signals_received() - before,
        Duration::from_secs(10),
        Duration::from_millis(5),
    )
    .await;
    raiser.await.unwrap();
    assert_eq!(exit.code, 0, "{}", exit.reason);
    assert_eq!(stopped.load(Ordering::SeqCst), 1);
    assert!(exit.reason.contains("signal"), "{}", exit.reason);
}

#[tokio::test]
async fn work_that_ignores_the_stop_is_cut_after_the_grace_period() {
    let exit = supervise(
        std::future::pending::<Result<(), String>>(),
        || {},
        || 1,
        Duration::from_millis(30),
        Duration::from_millis(5),
    )
    .await;
    assert_eq!(exit.code, 1);
}

#[test]
fn logs_reach_the_ros_logger_as_plain_text() {
    let lines: Arc<Mutex<Vec<LogLine>>> = Arc::default();
    let sink = lines.clone();
    let subscriber = tracing_subscriber::registry()
        .with(RosLogLayer::new(move |l| sink.lock().unwrap().push(l)));
    tracing::subscriber::with_default(subscriber, || {
        let label = "dog";
        tracing::info!("sound event {label} (score {:.2})", 0.875);
        tracing::warn!(topic = "cues", count = 3, "publisher gone");
        tracing::debug!("nul \0 byte");
    });
    let lines = lines.lock().unwrap();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0].severity, Severity::Info);
    assert_eq!(lines[0].text, "sound event dog (score 0.88)");
    assert!(lines[0].file.ends_with("node_shutdown.rs") && lines[0].line > 0);
    assert_eq!(lines[1].severity, Severity::Warn);
    assert_eq!(lines[1].text, "publisher gone topic=cues count=3");
    assert_eq!(
        (lines[2].severity, lines[2].text.as_str()),
        (Severity::Debug, "nul  byte")
    );
}
