//! Microphone capture (feature `mic`, cpal): open an input device by name or the default, downmix
//! to mono in the audio callback and hand chunks to the consumer through bounded channels.
//!
//! The callback never blocks and never allocates: it takes a preallocated buffer from a pool
//! (`try_recv`), fills it, and `try_send`s it to the consumer. With no free buffer or a full
//! queue, the audio is dropped and counted; the consumer returns buffers with
//! [`MicCapture::recycle`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SizedSample};

use crate::{Error, Result};

/// Buffers in flight between the callback and the consumer.
pub const POOL_BUFFERS: usize = 32;
/// Mono samples per buffer (a callback larger than this is truncated and the rest counted).
pub const BUFFER_SAMPLES: usize = 8_192;

/// Drop counters shared with the audio callback.
#[derive(Debug, Default)]
pub struct CaptureCounters {
    /// Mono samples delivered to the queue.
    pub delivered_samples: AtomicU64,
    /// Mono samples dropped (no free buffer, queue full, or an oversized callback).
    pub dropped_samples: AtomicU64,
    /// Stream errors reported by the host.
    pub stream_errors: AtomicU64,
}

/// A running input stream. Dropping it stops capture.
pub struct MicCapture {
    _stream: cpal::Stream,
    device_name: String,
    sample_rate_hz: u32,
    channels: u16,
    full_rx: Receiver<Vec<f32>>,
    free_tx: SyncSender<Vec<f32>>,
    counters: Arc<CaptureCounters>,
}

/// Names of the input devices of the default host.
pub fn input_device_names() -> Result<Vec<String>> {
    let host = cpal::default_host();
    let devices = host
        .input_devices()
        .map_err(|e| Error::BadInput(format!("listing input devices: {e}")))?;
    Ok(devices.map(|d| d.to_string()).collect())
}

impl MicCapture {
    /// Open `device` (a name as listed by [`input_device_names`]) or the default input, at its
    /// default config, and start capturing.
    pub fn open(device: Option<&str>) -> Result<Self> {
        let host = cpal::default_host();
        let dev = match device {
            None => host
                .default_input_device()
                .ok_or_else(|| Error::BadInput("no default audio input device".into()))?,
            Some(name) => {
                let mut devices = host
                    .input_devices()
                    .map_err(|e| Error::BadInput(format!("listing input devices: {e}")))?;
                match devices.find(|d| d.to_string() == name) {
                    Some(d) => d,
                    None => {
                        let names = input_device_names().unwrap_or_default();
                        return Err(Error::BadInput(format!(
                            "no input device named {name:?}; available: {names:?}"
                        )));
                    }
                }
            }
        };
        let device_name = dev.to_string();
        let supported = dev
            .default_input_config()
            .map_err(|e| Error::BadInput(format!("{device_name}: no input config ({e})")))?;
        let config = supported.config();
        let (full_tx, full_rx) = sync_channel::<Vec<f32>>(POOL_BUFFERS);
        let (free_tx, free_rx) = sync_channel::<Vec<f32>>(POOL_BUFFERS);
        for _ in 0..POOL_BUFFERS {
            // The pool channel has room for exactly POOL_BUFFERS buffers.
            let _ = free_tx.try_send(Vec::with_capacity(BUFFER_SAMPLES));
        }
        let counters = Arc::new(CaptureCounters::default());
        let channels = config.channels;
        let stream = match supported.sample_format() {
            cpal::SampleFormat::F32 => {
                build::<f32>(&dev, &config, full_tx, free_rx, free_tx.clone(), &counters)
            }
            cpal::SampleFormat::I16 => {
                build::<i16>(&dev, &config, full_tx, free_rx, free_tx.clone(), &counters)
            }
            cpal::SampleFormat::I32 => {
                build::<i32>(&dev, &config, full_tx, free_rx, free_tx.clone(), &counters)
            }
            cpal::SampleFormat::U16 => {
                build::<u16>(&dev, &config, full_tx, free_rx, free_tx.clone(), &counters)
            }
            other => {
                return Err(Error::BadInput(format!(
                    "{device_name}: unsupported sample format {other:?}"
                )))
            }
        }?;
        stream
            .play()
            .map_err(|e| Error::BadInput(format!("{device_name}: cannot start capture ({e})")))?;
        Ok(Self {
            _stream: stream,
            device_name,
            sample_rate_hz: config.sample_rate,
            channels,
            full_rx,
            free_tx,
            counters,
        })
    }

    /// The device's name.
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    /// The device's sample rate (what the resampler converts from).
    pub fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    /// Channels before the downmix.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Delivery and drop counters.
    pub fn counters(&self) -> &CaptureCounters {
        &self.counters
    }

    /// Next chunk of mono samples, or `None` after `timeout` without audio. Errors when the
    /// stream has ended.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Vec<f32>>> {
        match self.full_rx.recv_timeout(timeout) {
            Ok(buf) => Ok(Some(buf)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(Error::BadInput(format!(
                "{}: capture stream ended",
                self.device_name
            ))),
        }
    }

    /// Give a buffer back to the callback's pool.
    pub fn recycle(&self, mut buf: Vec<f32>) {
        buf.clear();
        let _ = self.free_tx.try_send(buf);
    }
}

fn build<T>(
    dev: &cpal::Device,
    config: &cpal::StreamConfig,
    full_tx: SyncSender<Vec<f32>>,
    free_rx: Receiver<Vec<f32>>,
    free_back: SyncSender<Vec<f32>>,
    counters: &Arc<CaptureCounters>,
) -> Result<cpal::Stream>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let channels = config.channels.max(1) as usize;
    let c_data = Arc::clone(counters);
    let c_err = Arc::clone(counters);
    let data_cb = move |data: &[T], _: &cpal::InputCallbackInfo| {
        let frames = data.len() / channels;
        let Ok(mut buf) = free_rx.try_recv() else {
            c_data
                .dropped_samples
                .fetch_add(frames as u64, Ordering::Relaxed);
            return;
        };
        buf.clear();
        let take = frames.min(buf.capacity());
        let scale = 1.0 / channels as f32;
        for frame in data.chunks_exact(channels).take(take) {
            let sum: f32 = frame.iter().map(|&s| f32::from_sample_(s)).sum();
            buf.push(sum * scale);
        }
        let n = buf.len() as u64;
        c_data
            .dropped_samples
            .fetch_add((frames - take) as u64, Ordering::Relaxed);
        match full_tx.try_send(buf) {
            Ok(()) => {
                c_data.delivered_samples.fetch_add(n, Ordering::Relaxed);
            }
            Err(TrySendError::Full(b)) | Err(TrySendError::Disconnected(b)) => {
                c_data.dropped_samples.fetch_add(n, Ordering::Relaxed);
                let _ = free_back.try_send(b);
            }
        }
    };
    let err_cb = move |_e: cpal::Error| {
        c_err.stream_errors.fetch_add(1, Ordering::Relaxed);
    };
    dev.build_input_stream::<T, _, _>(config.clone(), data_cb, err_cb, None)
        .map_err(|e| Error::BadInput(format!("{dev}: cannot open input stream ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "needs a microphone (an ALSA/PulseAudio input device)"]
    fn default_microphone_delivers_audio() {
        let mic = MicCapture::open(None).unwrap();
        let mut got = 0;
        for _ in 0..50 {
            if let Some(buf) = mic.recv_timeout(Duration::from_millis(100)).unwrap() {
                got += buf.len();
                mic.recycle(buf);
            }
        }
        assert!(got > 0, "no audio from {}", mic.device_name());
    }
}
