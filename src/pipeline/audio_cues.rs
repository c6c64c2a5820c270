//! A cue source fed by the streaming audio path: samples from a WAV replay (paced at real time
//! or as fast as possible) or a microphone run through an [`AudioPipeline`] on their own thread,
//! and every class cue it emits becomes a [`CueInput`] for the runtime.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::io::CueSource;
use super::types::CueInput;
use crate::audio::cues::ClassCue;
use crate::audio::detector::{SoundEvent, WindowScorer};
use crate::audio::pipeline::{AudioPipeline, PipelineStats};
use crate::audio::wav::{open_wav, WavStream};
use crate::{Error, Result};

/// Where audio samples come from (called on the audio thread, may block).
pub trait AudioInput: Send + 'static {
    /// The next chunk of mono samples and its rate in Hz; `Ok(None)` ends the stream.
    fn next_chunk(&mut self) -> Result<Option<(Vec<f32>, u32)>>;
}

/// A recording replayed in chunks, either paced (each chunk is handed over when its last sample
/// would have been captured, as a microphone delivers it) or as fast as the pipeline runs. The
/// samples come from memory or are streamed from a WAV file ([`WavReplay::from_file`]), so a
/// long recording is never held whole.
#[derive(Debug)]
pub struct WavReplay {
    samples: ReplaySamples,
    rate_hz: u32,
    chunk: usize,
    /// Samples handed over so far.
    sent: u64,
    paced: bool,
    start: Option<Instant>,
}

#[derive(Debug)]
enum ReplaySamples {
    Memory { samples: Vec<f32>, pos: usize },
    File(Box<WavStream<BufReader<File>>>),
}

impl WavReplay {
    /// Replay `samples` at `rate_hz` in chunks of `chunk_ms` milliseconds.
    pub fn new(samples: Vec<f32>, rate_hz: u32, chunk_ms: u32, paced: bool) -> Result<Self> {
        Self::build(
            ReplaySamples::Memory { samples, pos: 0 },
            rate_hz,
            chunk_ms,
            paced,
        )
    }

    /// Stream the WAV file at `path` in chunks of `chunk_ms` milliseconds (see [`WavStream`]:
    /// a cut-off file plays the samples it has, with a warning at its end).
    pub fn from_file(path: &Path, chunk_ms: u32, paced: bool) -> Result<Self> {
        let stream = open_wav(path)?;
        let rate = stream.sample_rate_hz();
        Self::build(ReplaySamples::File(Box::new(stream)), rate, chunk_ms, paced)
    }

    fn build(samples: ReplaySamples, rate_hz: u32, chunk_ms: u32, paced: bool) -> Result<Self> {
        if rate_hz == 0 || chunk_ms == 0 {
            return Err(Error::Config(format!(
                "audio replay: rate {rate_hz} Hz and chunk {chunk_ms} ms must be > 0"
            )));
        }
        let chunk = (rate_hz as usize * chunk_ms as usize / 1000).max(1);
        Ok(Self {
            samples,
            rate_hz,
            chunk,
            sent: 0,
            paced,
            start: None,
        })
    }

    /// The replay's sample rate in Hz.
    pub fn sample_rate_hz(&self) -> u32 {
        self.rate_hz
    }

    /// Seconds of audio in an in-memory replay; for a streamed file, the seconds read so far.
    pub fn duration_s(&self) -> f64 {
        let n = match &self.samples {
            ReplaySamples::Memory { samples, .. } => samples.len() as u64,
            ReplaySamples::File(_) => self.sent,
        };
        n as f64 / self.rate_hz as f64
    }
}

impl AudioInput for WavReplay {
    fn next_chunk(&mut self) -> Result<Option<(Vec<f32>, u32)>> {
        let out = match &mut self.samples {
            ReplaySamples::Memory { samples, pos } => {
                let end = (*pos + self.chunk).min(samples.len());
                let out = samples[*pos..end].to_vec();
                *pos = end;
                out
            }
            ReplaySamples::File(stream) => {
                let mut out = Vec::with_capacity(self.chunk);
                stream.read_frames(self.chunk, &mut out)?;
                if out.is_empty() && stream.truncated() {
                    tracing::warn!(
                        "the WAV file ends before the data size in its header (recording cut \
                         off?); played the {} samples it has",
                        stream.frames_read()
                    );
                }
                out
            }
        };
        if out.is_empty() {
            return Ok(None);
        }
        self.sent += out.len() as u64;
        if self.paced {
            let start = *self.start.get_or_insert_with(Instant::now);
            let due = start + Duration::from_secs_f64(self.sent as f64 / self.rate_hz as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        Ok(Some((out, self.rate_hz)))
    }
}

#[cfg(feature = "mic")]
impl AudioInput for crate::audio::capture::MicCapture {
    fn next_chunk(&mut self) -> Result<Option<(Vec<f32>, u32)>> {
        loop {
            if let Some(buf) = self.recv_timeout(Duration::from_millis(500))? {
                return Ok(Some((buf, self.sample_rate_hz())));
            }
        }
    }
}

/// What the audio thread did, returned when it ends.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct AudioSummary {
    /// Sound events detected.
    pub events: Vec<SoundEvent>,
    /// Class cues emitted (stream time of their event's onset).
    pub cues: Vec<ClassCue>,
    /// Pipeline counters.
    pub stats: PipelineStats,
    /// Why the thread stopped early, if it did.
    pub error: Option<String>,
}

/// Cues from the audio pipeline running on its own thread.
pub struct AudioCueSource {
    rx: mpsc::Receiver<Result<CueInput>>,
}

/// Handle to the audio thread: join it for the [`AudioSummary`].
pub struct AudioThread(std::thread::JoinHandle<AudioSummary>);

impl AudioThread {
    /// Wait for the thread and take its summary.
    pub fn join(self) -> Result<AudioSummary> {
        self.0
            .join()
            .map_err(|_| Error::Runtime("the audio thread panicked".into()))
    }
}

impl AudioCueSource {
    /// Start a thread that pulls `input` through `pipeline` and sends each cue. The thread ends
    /// with the input, or when the runtime drops this source.
    pub fn spawn<S, I>(mut pipeline: AudioPipeline<S>, mut input: I) -> Result<(Self, AudioThread)>
    where
        S: WindowScorer + Send + 'static,
        I: AudioInput,
    {
        let (tx, rx) = mpsc::channel(64);
        let handle = std::thread::Builder::new()
            .name("hlfp-audio".into())
            .spawn(move || {
                let mut summary = AudioSummary::default();
                let (mut events, mut cues) = (Vec::new(), Vec::new());
                let send = |events: &mut Vec<SoundEvent>,
                            cues: &mut Vec<ClassCue>,
                            summary: &mut AudioSummary|
                 -> bool {
                    for e in events.drain(..) {
                        tracing::info!(
                            "sound event {} score {:.2} at {:.2} s",
                            e.label,
                            e.score,
                            e.onset_s
                        );
                        summary.events.push(e);
                    }
                    for c in cues.drain(..) {
                        let msg = CueInput {
                            class: c.class.clone(),
                            score: c.score,
                            source: c.source.to_string(),
                        };
                        summary.cues.push(c);
                        if tx.blocking_send(Ok(msg)).is_err() {
                            return false; // the runtime is gone
                        }
                    }
                    true
                };
                loop {
                    // The runtime dropped this source (it stopped): end without waiting for
                    // the next cue, which a quiet recording may never bring.
                    if tx.is_closed() {
                        break;
                    }
                    let step = input.next_chunk().and_then(|chunk| match chunk {
                        Some((samples, rate)) => pipeline
                            .push(&samples, rate, &mut events, &mut cues)
                            .map(|_| true),
                        None => pipeline.finish(&mut events, &mut cues).map(|_| false),
                    });
                    let more = match step {
                        Ok(more) => more,
                        Err(e) => {
                            summary.error = Some(e.to_string());
                            let _ = tx.blocking_send(Err(e));
                            false
                        }
                    };
                    if !send(&mut events, &mut cues, &mut summary) || !more {
                        break;
                    }
                }
                summary.stats = pipeline.stats();
                summary
            })
            .map_err(|e| Error::Runtime(format!("cannot start the audio thread: {e}")))?;
        Ok((Self { rx }, AudioThread(handle)))
    }
}

impl CueSource for AudioCueSource {
    async fn next_cue(&mut self) -> Option<Result<CueInput>> {
        self.rx.recv().await
    }
}
