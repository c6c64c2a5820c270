//! The audio node's thread: [`AudioCore`] runs off the tokio workers, fed by commands (topic
//! messages, microphone chunks, parameter changes, the vision model's class list, diagnostics
//! requests) and publishing what each chunk produces. Nothing else holds the core, so no lock
//! is held while audio is processed.

use tokio::sync::{mpsc, oneshot};

use super::audio::AudioCore;
use super::audio_params::AudioNodeConfig;
use super::Publish;
use crate::audio::detector::WindowScorer;
use crate::pipeline::AudioInput;
use crate::ros::msgs::{AudioDataStamped, Classification, DiagnosticArray, Header};
use crate::{Error, Result};

/// A command to the audio thread.
#[derive(Debug)]
pub enum AudioCommand {
    /// A message on `audio`: parsed, or why it did not parse.
    Message(std::result::Result<AudioDataStamped, String>),
    /// Mono samples at a rate, with the header their events get (microphone input).
    Chunk {
        /// Samples in [-1, 1].
        samples: Vec<f32>,
        /// Their rate.
        rate_hz: u32,
        /// Capture stamp.
        header: Header,
    },
    /// A config the parameter store accepted.
    Config(AudioNodeConfig),
    /// The vision model's class list (model config or `label_info`).
    VisualClasses(Vec<String>),
    /// Reply with the `/diagnostics` message for this header, model and hardware id.
    Diagnostics {
        /// Stamp of the message.
        header: Header,
        /// The model file.
        model: String,
        /// The input, in words.
        hardware_id: String,
        /// Where the message goes.
        reply: oneshot::Sender<DiagnosticArray>,
    },
    /// End of stream: flush the pipeline (events get this header), publish, and end the
    /// thread.
    Stop(Header),
}

/// Handle to the audio thread. Dropping every sender ends it.
pub struct AudioWorker {
    tx: mpsc::UnboundedSender<AudioCommand>,
    thread: std::thread::JoinHandle<()>,
}

/// Where the audio thread publishes: `sound_events` and `cues`.
pub struct AudioPublishers<P> {
    /// `sound_events`.
    pub sound_events: P,
    /// `cues`.
    pub cues: P,
}

impl AudioWorker {
    /// Start the thread around `core`, publishing to `out`.
    pub fn spawn<S, P>(mut core: AudioCore<S>, mut out: AudioPublishers<P>) -> Result<Self>
    where
        S: WindowScorer + Send + 'static,
        P: Publish<Classification> + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<AudioCommand>();
        let thread = std::thread::Builder::new()
            .name("hlfp-audio".into())
            .spawn(move || {
                let mut stopping = false;
                while let Some(cmd) = rx.blocking_recv() {
                    let produced = match cmd {
                        AudioCommand::Message(Ok(msg)) => core.on_message(&msg),
                        AudioCommand::Message(Err(e)) => {
                            core.count_bad_message("json");
                            Err(Error::BadInput(format!(
                                "audio: not an AudioDataStamped: {e}"
                            )))
                        }
                        AudioCommand::Chunk {
                            samples,
                            rate_hz,
                            header,
                        } => core.on_chunk(&samples, rate_hz, &header),
                        AudioCommand::Stop(header) => {
                            stopping = true;
                            core.finish(&header)
                        }
                        AudioCommand::Config(cfg) => {
                            match core.sync_config(&cfg) {
                                Ok(()) => tracing::info!("detector settings applied in place"),
                                Err(e) => tracing::error!("parameters not applied: {e}"),
                            }
                            continue;
                        }
                        AudioCommand::VisualClasses(classes) => {
                            let n = classes.len();
                            let unknown = core.set_visual_classes(classes);
                            tracing::info!("checking cues against {n} vision model classes");
                            if !unknown.is_empty() {
                                tracing::warn!(
                                    "the mapping names classes the vision model lacks, their \
                                     cues are skipped: {}",
                                    unknown.join(", ")
                                );
                            }
                            continue;
                        }
                        AudioCommand::Diagnostics {
                            header,
                            model,
                            hardware_id,
                            reply,
                        } => {
                            let _ = reply.send(core.diagnostics(header, &model, &hardware_id));
                            continue;
                        }
                    };
                    match produced {
                        Ok(o) => {
                            for (topic, p, msgs) in [
                                ("sound_events", &mut out.sound_events, o.sound_events),
                                ("cues", &mut out.cues, o.cues),
                            ] {
                                for m in msgs {
                                    if let Err(e) = p.publish(m) {
                                        tracing::warn!("publishing {topic}: {e}");
                                    }
                                }
                            }
                        }
                        Err(e) => tracing::warn!("{e}"),
                    }
                    if stopping {
                        break;
                    }
                }
            })
            .map_err(|e| Error::Runtime(format!("starting the audio thread: {e}")))?;
        Ok(Self { tx, thread })
    }

    /// A sender of commands (for the topic task, the capture thread, the parameter task).
    pub fn sender(&self) -> mpsc::UnboundedSender<AudioCommand> {
        self.tx.clone()
    }

    /// Flush the pipeline (events get `header`) after the commands sent before, publish what
    /// it produced, and wait for the thread to end.
    pub fn stop(self, header: Header) -> Result<()> {
        let _ = self.tx.send(AudioCommand::Stop(header));
        self.join()
    }

    /// Wait for the thread to end (after a [`AudioCommand::Stop`], or once every sender is
    /// dropped).
    pub fn join(self) -> Result<()> {
        drop(self.tx);
        self.thread
            .join()
            .map_err(|_| Error::Runtime("the audio thread panicked".into()))
    }
}

/// The `/diagnostics` message, built on the audio thread after the commands sent before.
pub async fn request_diagnostics(
    tx: &mpsc::UnboundedSender<AudioCommand>,
    header: Header,
    model: &str,
    hardware_id: &str,
) -> Result<DiagnosticArray> {
    let (reply, rx) = oneshot::channel();
    tx.send(AudioCommand::Diagnostics {
        header,
        model: model.to_string(),
        hardware_id: hardware_id.to_string(),
        reply,
    })
    .map_err(|_| Error::Runtime("the audio thread has stopped".into()))?;
    rx.await
        .map_err(|_| Error::Runtime("the audio thread has stopped".into()))
}

/// Pull chunks from `input` (a microphone) on its own thread and send them to the audio
/// thread, stamped by `stamp`; ends with the input, on a capture error (logged), or when the
/// audio thread is gone.
pub fn feed_from_input<I, F>(
    mut input: I,
    tx: mpsc::UnboundedSender<AudioCommand>,
    mut stamp: F,
) -> Result<std::thread::JoinHandle<()>>
where
    I: AudioInput,
    F: FnMut() -> Header + Send + 'static,
{
    std::thread::Builder::new()
        .name("hlfp-capture".into())
        .spawn(move || loop {
            match input.next_chunk() {
                Ok(Some((samples, rate_hz))) => {
                    let cmd = AudioCommand::Chunk {
                        samples,
                        rate_hz,
                        header: stamp(),
                    };
                    if tx.send(cmd).is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!("audio capture stopped: {e}");
                    break;
                }
            }
        })
        .map_err(|e| Error::Runtime(format!("starting the capture thread: {e}")))
}
