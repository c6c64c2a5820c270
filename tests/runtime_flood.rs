//! A cue flood must not blind vision: frames are read before cues, refused cues are counted
//! and reported at a limited rate (records and WARN lines), and every frame still gets its
//! result while the flood runs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hlfp::pipeline::runtime::REFUSED_CUES_REPORTED_PER_S;
use hlfp::pipeline::{
    ChannelFrameSource, Classified, CueInput, CueSource, Frame, FrameClassifier, Record,
    ResultSink, Runtime, RuntimeConfig, ScriptedClock,
};

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
            macs: 1,
        })
    }
}

/// `left` cues for a class the model does not know, always ready; counts what was pulled.
struct Flood {
    left: usize,
    pulled: Arc<AtomicUsize>,
}

impl CueSource for Flood {
    async fn next_cue(&mut self) -> Option<hlfp::Result<CueInput>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        self.pulled.fetch_add(1, Ordering::SeqCst);
        Some(Ok(CueInput {
            class: "zebra".into(),
            score: 1.0,
            source: "flood".into(),
        }))
    }
}

/// Keeps every record and notes how many cues had been pulled when the first frame record
/// came out. Yields on every send, as a sink writing to a pipe does, which lets the cue
/// reader refill its channel.
struct Probe {
    pulled: Arc<AtomicUsize>,
    first_frame_after: Arc<Mutex<Option<usize>>>,
    records: Arc<Mutex<Vec<Record>>>,
}

impl ResultSink for Probe {
    async fn send(&mut self, record: &Record) -> hlfp::Result<()> {
        tokio::task::yield_now().await;
        if matches!(record, Record::Result(_) | Record::Dropped(_)) {
            let mut first = self.first_frame_after.lock().unwrap();
            first.get_or_insert(self.pulled.load(Ordering::SeqCst));
        }
        self.records.lock().unwrap().push(record.clone());
        Ok(())
    }
}

fn frame(id: u64) -> Frame {
    Frame {
        id,
        stamp_ns: id as i64,
        frame_id: "cam".into(),
        width: 2,
        height: 2,
        rgb: vec![0; 12],
    }
}

#[tokio::test]
async fn a_cue_flood_neither_delays_frames_nor_floods_the_output() -> anyhow::Result<()> {
    const CUES: usize = 20_000;
    let pulled = Arc::new(AtomicUsize::new(0));
    let first_frame_after = Arc::new(Mutex::new(None));
    let records = Arc::new(Mutex::new(Vec::new()));
    let (tx, frames) = ChannelFrameSource::new(4);
    for id in 0..3 {
        tx.send(Ok(frame(id))).await?;
    }
    drop(tx);
    let sink = Probe {
        pulled: pulled.clone(),
        first_frame_after: first_frame_after.clone(),
        records: records.clone(),
    };
    let flood = Flood {
        left: CUES,
        pulled: pulled.clone(),
    };
    let rt = Runtime::new(RuntimeConfig::default(), Arc::new(ScriptedClock::new()));
    let classes = vec!["cat".to_string(), "dog".to_string()];
    let (m, _) = rt.run(Uniform(classes), frames, flood, sink).await?;

    // Frames first: the first frame record came out long before the flood was read (with cues
    // first it came after all 20000).
    let after = first_frame_after.lock().unwrap().expect("no frame record");
    assert!(after < 1000, "first frame record after {after} cues");
    // The run ends with the frame source, possibly before the flood is drained; every frame
    // is classified or counted dropped.
    assert_eq!(m.frames_in, 3);
    assert_eq!(m.frames_done + m.frames_dropped, 3);
    assert_eq!(m.cues_rejected, m.cues_in);
    let records = records.lock().unwrap();
    let cue_records = records
        .iter()
        .filter(|r| matches!(r, Record::Cue(_)))
        .count() as u64;
    // The clock stands still: one second's worth of refusals is reported, the rest counted.
    assert_eq!(
        cue_records,
        m.cues_rejected.min(u64::from(REFUSED_CUES_REPORTED_PER_S))
    );
    Ok(())
}
