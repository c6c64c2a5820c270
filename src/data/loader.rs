//! The batch loader: decoding and augmentation on worker threads, batches in a deterministic
//! order per (seed, epoch) whatever the thread timing.
//!
//! Worker `w` of `n` handles epoch positions `w, w + n, w + 2n, ...` and sends its results
//! through its own bounded channel; the consumer reads position `p` from channel `p % n`. So
//! results arrive in order without a reorder buffer, memory stays bounded by the channel
//! depth, and each sample's augmentation draws from its own RNG ([`sample_rng`]).

use crate::data::image_folder::{load_rgb8, Sample};
use crate::error::CandleContext;
use crate::vision::augment::{sample_rng, AugmentConfig, Augmenter};
use crate::vision::preprocess::{PreprocessConfig, Preprocessor};
use crate::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// What a worker does to each decoded image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transform {
    /// Inference preprocessing (resize, centre crop, normalize): validation.
    Eval(PreprocessConfig),
    /// Training augmentation, then normalize.
    Train(AugmentConfig),
}

impl Transform {
    /// Side of the output images.
    pub fn input_size(&self) -> usize {
        match self {
            Transform::Eval(c) => c.input_size,
            Transform::Train(c) => c.input_size,
        }
    }

    fn validate(&self) -> Result<()> {
        match self {
            Transform::Eval(c) => c.validate(),
            Transform::Train(c) => c.validate(),
        }
    }
}

/// Batch loader settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Images per batch.
    pub batch_size: usize,
    /// Worker threads (decoding + transform).
    pub workers: usize,
    /// Seed of the shuffle and the augmentation.
    pub seed: u64,
    /// Shuffle each epoch (training) or keep the dataset order (validation).
    pub shuffle: bool,
    /// Drop a last batch smaller than `batch_size`.
    pub drop_last: bool,
    /// Finished images each worker may hold ahead of the consumer.
    pub prefetch_per_worker: usize,
}

impl LoaderConfig {
    /// Training defaults: shuffle, drop the last partial batch.
    pub fn train(batch_size: usize, workers: usize, seed: u64) -> Self {
        Self {
            batch_size,
            workers,
            seed,
            shuffle: true,
            drop_last: true,
            prefetch_per_worker: batch_size.div_ceil(workers.max(1)) + 2,
        }
    }

    /// Validation defaults: dataset order, keep the last partial batch.
    pub fn eval(batch_size: usize, workers: usize) -> Self {
        Self {
            shuffle: false,
            drop_last: false,
            ..Self::train(batch_size, workers, 0)
        }
    }
}

/// One batch: `images` is `[len, 3, S, S]` f32 row-major, `labels[i]` is image i's class.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Normalized images, CHW each, concatenated.
    pub images: Vec<f32>,
    /// Class indices.
    pub labels: Vec<u32>,
    /// Indices into the loader's sample list.
    pub indices: Vec<usize>,
    /// Samples that failed to load while this batch was filled, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// Image side S.
    pub input_size: usize,
}

impl Batch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True for a batch without images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The batch as tensors: images `[B, 3, S, S]` f32 and labels `[B]` u32.
    pub fn to_tensors(
        &self,
        device: &candle_core::Device,
    ) -> Result<(candle_core::Tensor, candle_core::Tensor)> {
        let s = self.input_size;
        let x = candle_core::Tensor::from_slice(&self.images, (self.len(), 3, s, s), device)
            .ctx("batch images")?;
        let y = candle_core::Tensor::from_slice(&self.labels, self.len(), device)
            .ctx("batch labels")?;
        Ok((x, y))
    }
}

type Item = std::result::Result<Vec<f32>, String>;

/// Loads batches of a sample list with worker threads.
#[derive(Debug, Clone)]
pub struct BatchLoader {
    samples: Arc<Vec<Sample>>,
    transform: Transform,
    cfg: LoaderConfig,
}

impl BatchLoader {
    /// A loader over `samples` (e.g. `ImageFolder::samples`).
    pub fn new(samples: Vec<Sample>, transform: Transform, cfg: LoaderConfig) -> Result<Self> {
        transform.validate()?;
        if cfg.batch_size == 0 || cfg.workers == 0 || cfg.prefetch_per_worker == 0 {
            return Err(Error::Config(format!(
                "loader batch_size, workers and prefetch_per_worker must be > 0, got {cfg:?}"
            )));
        }
        Ok(Self {
            samples: Arc::new(samples),
            transform,
            cfg,
        })
    }

    /// The samples, in dataset order.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The settings.
    pub fn config(&self) -> &LoaderConfig {
        &self.cfg
    }

    /// Batches in one epoch if no sample fails.
    pub fn batches_per_epoch(&self) -> usize {
        let n = self.samples.len();
        if self.cfg.drop_last {
            n / self.cfg.batch_size
        } else {
            n.div_ceil(self.cfg.batch_size)
        }
    }

    /// The sample order of `epoch`: a seeded shuffle, or the dataset order.
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.samples.len()).collect();
        if self.cfg.shuffle {
            let mut rng = ChaCha8Rng::seed_from_u64(self.cfg.seed);
            rng.set_stream(epoch);
            order.shuffle(&mut rng);
        }
        order
    }

    /// Start the workers for `epoch` and iterate its batches.
    pub fn epoch(&self, epoch: u64) -> EpochIter {
        let order = Arc::new(self.epoch_order(epoch));
        let n_workers = self.cfg.workers.min(order.len().max(1));
        let mut receivers = Vec::with_capacity(n_workers);
        let mut handles = Vec::with_capacity(n_workers);
        for w in 0..n_workers {
            let (tx, rx) = sync_channel::<Item>(self.cfg.prefetch_per_worker);
            receivers.push(rx);
            let order = Arc::clone(&order);
            let samples = Arc::clone(&self.samples);
            let transform = self.transform;
            let seed = self.cfg.seed;
            let spawned = std::thread::Builder::new()
                .name(format!("hlfp-loader-{w}"))
                .spawn(move || {
                    let mut worker = Worker::new(transform);
                    for pos in (w..order.len()).step_by(n_workers) {
                        let idx = order[pos];
                        let item = worker.load(&samples[idx], seed, epoch, idx as u64);
                        if tx.send(item).is_err() {
                            break; // the consumer stopped early
                        }
                    }
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => tracing::error!("cannot spawn loader worker {w}: {e}"),
            }
        }
        EpochIter {
            order,
            receivers,
            handles,
            next_pos: 0,
            batch_size: self.cfg.batch_size,
            drop_last: self.cfg.drop_last,
            input_size: self.transform.input_size(),
            samples: Arc::clone(&self.samples),
        }
    }
}

struct Worker {
    transform: Transform,
    pre: Option<Preprocessor>,
    aug: Option<Augmenter>,
}

impl Worker {
    fn new(transform: Transform) -> Self {
        // Both configs were validated by BatchLoader::new, so these constructors succeed.
        let (pre, aug) = match transform {
            Transform::Eval(c) => (Preprocessor::new(c).ok(), None),
            Transform::Train(c) => (None, Augmenter::new(c).ok()),
        };
        Self {
            transform,
            pre,
            aug,
        }
    }

    fn load(&mut self, sample: &Sample, seed: u64, epoch: u64, index: u64) -> Item {
        let img = load_rgb8(&sample.path).map_err(|e| e.to_string())?;
        let s = self.transform.input_size();
        let mut out = vec![0.0f32; 3 * s * s];
        let done = match (&mut self.pre, &self.aug) {
            (Some(p), _) => p.process_into(
                img.as_raw(),
                img.width() as usize,
                img.height() as usize,
                &mut out,
            ),
            (None, Some(a)) => a.augment_into(&img, &mut sample_rng(seed, epoch, index), &mut out),
            (None, None) => Err(Error::Config("loader transform was not validated".into())),
        };
        done.map_err(|e| format!("{}: {e}", sample.path.display()))?;
        Ok(out)
    }
}

/// The batches of one epoch. Dropping it stops the workers.
pub struct EpochIter {
    order: Arc<Vec<usize>>,
    receivers: Vec<Receiver<Item>>,
    handles: Vec<JoinHandle<()>>,
    next_pos: usize,
    batch_size: usize,
    drop_last: bool,
    input_size: usize,
    samples: Arc<Vec<Sample>>,
}

impl Iterator for EpochIter {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let per = 3 * self.input_size * self.input_size;
        let mut batch = Batch {
            images: Vec::with_capacity(self.batch_size * per),
            labels: Vec::with_capacity(self.batch_size),
            indices: Vec::with_capacity(self.batch_size),
            skipped: Vec::new(),
            input_size: self.input_size,
        };
        while batch.len() < self.batch_size && self.next_pos < self.order.len() {
            let pos = self.next_pos;
            self.next_pos += 1;
            let idx = self.order[pos];
            let sample = &self.samples[idx];
            let item = match self.receivers.get(pos % self.receivers.len().max(1)) {
                Some(rx) => rx
                    .recv()
                    .unwrap_or_else(|_| Err("loader worker stopped".into())),
                None => Err("no loader worker".into()),
            };
            match item {
                Ok(img) => {
                    batch.images.extend_from_slice(&img);
                    batch.labels.push(sample.label);
                    batch.indices.push(idx);
                }
                Err(msg) => {
                    tracing::warn!("skipping sample: {msg}");
                    batch.skipped.push((sample.path.clone(), msg));
                }
            }
        }
        if batch.is_empty() || (self.drop_last && batch.len() < self.batch_size) {
            return None;
        }
        Some(batch)
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        // Closing the channels wakes workers blocked on a full channel; then they exit.
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}
