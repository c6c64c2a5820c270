//! Frames from a local camera (feature `camera`, nokhwa's native backend: V4L2 on Linux).
//!
//! nokhwa's camera handle stays on its own thread, which grabs, decodes (MJPEG or YUYV to RGB8,
//! whatever the camera negotiated) and hands frames over through a small channel; when the
//! runtime is slower than the camera, the channel is full and the grabbed frame is dropped and
//! counted, so the frame path never queues without bound.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType, Resolution,
};
use nokhwa::Camera;
use tokio::sync::mpsc;

use super::io::FrameSource;
use super::types::Frame;
use crate::{Error, Result};

/// A camera as a [`FrameSource`].
pub struct CameraSource {
    rx: mpsc::Receiver<Result<Frame>>,
    dropped: Arc<AtomicU64>,
}

impl CameraSource {
    /// Open camera `index` asking for `width`x`height` at `fps` (nokhwa picks the closest format
    /// the camera offers). Errors when the camera cannot be opened or started.
    pub fn open(index: u32, width: u32, height: u32, fps: f64) -> Result<Self> {
        let (tx, rx) = mpsc::channel(2);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let dropped = Arc::new(AtomicU64::new(0));
        let dropped_t = dropped.clone();
        let fps_u = fps.round().clamp(1.0, 240.0) as u32;
        std::thread::Builder::new()
            .name(format!("hlfp-camera{index}"))
            .spawn(move || {
                let requested = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(
                    CameraFormat::new(Resolution::new(width, height), FrameFormat::MJPEG, fps_u),
                ));
                let opened = Camera::new(CameraIndex::Index(index), requested)
                    .and_then(|mut c| c.open_stream().map(|_| c))
                    .map_err(|e| Error::Runtime(format!("camera {index}: {e}")));
                let mut camera = match opened {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                tracing::info!("camera {index}: {}", camera.camera_format());
                let start = Instant::now();
                let frame_id = format!("camera{index}");
                for id in 0u64.. {
                    let grabbed = camera
                        .frame()
                        .and_then(|buf| buf.decode_image::<RgbFormat>())
                        .map_err(|e| Error::BadInput(format!("camera {index} frame {id}: {e}")))
                        .map(|img| Frame {
                            id,
                            stamp_ns: start.elapsed().as_nanos() as i64,
                            frame_id: frame_id.clone(),
                            width: img.width(),
                            height: img.height(),
                            rgb: img.into_raw(),
                        });
                    match tx.try_send(grabbed) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            dropped_t.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => break,
                    }
                }
                let _ = camera.stop_stream();
            })
            .map_err(|e| Error::Runtime(format!("cannot start the camera thread: {e}")))?;
        ready_rx
            .recv()
            .map_err(|_| Error::Runtime(format!("camera {index}: the capture thread ended")))??;
        Ok(Self { rx, dropped })
    }

    /// Frames grabbed but dropped because the runtime had not taken the previous ones.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl FrameSource for CameraSource {
    async fn next_frame(&mut self) -> Option<Result<Frame>> {
        self.rx.recv().await
    }
}
