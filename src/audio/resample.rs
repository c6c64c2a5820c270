//! Streaming sample-rate conversion of mono audio to the model rate (rubato's synchronous FFT
//! resampler), with the start-up delay trimmed so output sample `j` is at time `j / rate_out`.

use rubato::audioadapter_buffers::direct::SequentialSlice;
use rubato::{Fft, FixedSync, Resampler};

use crate::{Error, Result};

/// Input frames per rubato chunk. At 48 kHz this is 21 ms: small enough for a live stream, large
/// enough that the FFT resampler costs little per sample.
pub const CHUNK_FRAMES: usize = 1024;

/// Streaming mono resampler `input_rate_hz -> output_rate_hz`.
///
/// Push any number of samples with [`StreamResampler::process`]; whole rubato chunks are
/// resampled as they fill. The filter's start-up delay is dropped from the output, so the output
/// timeline starts at the input's first sample. [`StreamResampler::flush`] pushes out what is left
/// (zero-padded) and ends the stream with exactly `round(n_in · ratio)` samples out. Any chunking
/// of the input gives the same output. Equal rates pass samples through unchanged.
pub struct StreamResampler {
    input_rate_hz: u32,
    output_rate_hz: u32,
    inner: Option<Fft<f32>>,
    /// One input chunk; `in_fill` of it is valid.
    in_buf: Vec<f32>,
    in_fill: usize,
    out_buf: Vec<f32>,
    /// Output samples of filter delay still to drop.
    to_skip: usize,
    in_total: u64,
    out_total: u64,
}

fn check_rate(rate_hz: u32, what: &str) -> Result<()> {
    if !(1_000..=384_000).contains(&rate_hz) {
        return Err(Error::Config(format!(
            "{what} sample rate {rate_hz} Hz is outside 1000..=384000 Hz"
        )));
    }
    Ok(())
}

impl StreamResampler {
    /// Build a resampler; rates must be in 1 kHz..=384 kHz.
    pub fn new(input_rate_hz: u32, output_rate_hz: u32) -> Result<Self> {
        check_rate(input_rate_hz, "input")?;
        check_rate(output_rate_hz, "output")?;
        let mut s = Self {
            input_rate_hz,
            output_rate_hz,
            inner: None,
            in_buf: Vec::new(),
            in_fill: 0,
            out_buf: Vec::new(),
            to_skip: 0,
            in_total: 0,
            out_total: 0,
        };
        s.build()?;
        Ok(s)
    }

    fn build(&mut self) -> Result<()> {
        if self.input_rate_hz == self.output_rate_hz {
            self.inner = None;
            self.in_buf = Vec::new();
            self.out_buf = Vec::new();
        } else {
            let fft = Fft::<f32>::new(
                self.input_rate_hz as usize,
                self.output_rate_hz as usize,
                CHUNK_FRAMES,
                1,
                FixedSync::Input,
            )
            .map_err(|e| {
                Error::Config(format!(
                    "resampler {} -> {} Hz: {e}",
                    self.input_rate_hz, self.output_rate_hz
                ))
            })?;
            self.in_buf = vec![0.0; fft.input_frames_max()];
            self.out_buf = vec![0.0; fft.output_frames_max()];
            self.inner = Some(fft);
        }
        self.reset();
        Ok(())
    }

    /// Input rate in Hz.
    pub fn input_rate_hz(&self) -> u32 {
        self.input_rate_hz
    }

    /// Output rate in Hz.
    pub fn output_rate_hz(&self) -> u32 {
        self.output_rate_hz
    }

    /// Filter delay in output samples. It is trimmed from the output (timestamps stay exact), but
    /// in a live stream a sample's output appears this much, plus up to one input chunk
    /// ([`StreamResampler::chunk_frames`]), after the sample arrived.
    pub fn latency_samples(&self) -> usize {
        self.inner.as_ref().map_or(0, |r| r.output_delay())
    }

    /// Input samples buffered before a chunk is resampled (1 when passing through).
    pub fn chunk_frames(&self) -> usize {
        self.inner.as_ref().map_or(1, |r| r.input_frames_next())
    }

    /// Forget all buffered audio and start a new stream at the same rates.
    pub fn reset(&mut self) {
        if let Some(r) = self.inner.as_mut() {
            r.reset();
            self.to_skip = r.output_delay();
        } else {
            self.to_skip = 0;
        }
        self.in_fill = 0;
        self.in_total = 0;
        self.out_total = 0;
    }

    /// Switch to a new input rate (a device was reopened at another rate). The old stream is
    /// flushed into `out` first, so no audio is lost and the output timeline stays continuous;
    /// then the resampler is rebuilt for the new rate. A no-op when the rate is unchanged.
    pub fn set_input_rate(&mut self, input_rate_hz: u32, out: &mut Vec<f32>) -> Result<usize> {
        if input_rate_hz == self.input_rate_hz {
            return Ok(0);
        }
        check_rate(input_rate_hz, "input")?;
        let n = self.flush(out)?;
        self.input_rate_hz = input_rate_hz;
        self.build()?;
        Ok(n)
    }

    /// Resample `input` and append the output samples now available to `out`; returns how many.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<usize> {
        self.in_total += input.len() as u64;
        if self.inner.is_none() {
            out.extend_from_slice(input);
            self.out_total += input.len() as u64;
            return Ok(input.len());
        }
        let mut rest = input;
        let mut produced = 0;
        while !rest.is_empty() {
            let need = self.chunk_frames();
            let take = (need - self.in_fill).min(rest.len());
            self.in_buf[self.in_fill..self.in_fill + take].copy_from_slice(&rest[..take]);
            self.in_fill += take;
            rest = &rest[take..];
            if self.in_fill == need {
                produced += self.run_chunk(out, u64::MAX)?;
            }
        }
        Ok(produced)
    }

    /// End the stream: resample what is buffered (padded with zeros) until the output holds
    /// `round(n_in · out_rate / in_rate)` samples in all, append them, and start a new stream.
    pub fn flush(&mut self, out: &mut Vec<f32>) -> Result<usize> {
        let expected = (self.in_total as u128 * self.output_rate_hz as u128
            + self.input_rate_hz as u128 / 2)
            / self.input_rate_hz as u128;
        let expected = expected as u64;
        let mut produced = 0;
        if self.inner.is_some() {
            while self.out_total < expected {
                produced += self.run_chunk(out, expected)?;
            }
        }
        self.reset();
        Ok(produced)
    }

    /// Resample one chunk (zero-padding a partial one), append at most up to `limit` total
    /// output samples.
    fn run_chunk(&mut self, out: &mut Vec<f32>, limit: u64) -> Result<usize> {
        let Some(r) = self.inner.as_mut() else {
            return Ok(0);
        };
        let need = r.input_frames_next();
        self.in_buf[self.in_fill..need].fill(0.0);
        let n_out = r.output_frames_next();
        let bad = |e: String| Error::BadInput(format!("resampler: {e}"));
        let inp =
            SequentialSlice::new(&self.in_buf[..need], 1, need).map_err(|e| bad(e.to_string()))?;
        let mut outp = SequentialSlice::new_mut(&mut self.out_buf[..n_out], 1, n_out)
            .map_err(|e| bad(e.to_string()))?;
        let (_, n_out) = r
            .process_into_buffer(&inp, &mut outp, None)
            .map_err(|e| bad(e.to_string()))?;
        self.in_fill = 0;
        let skip = self.to_skip.min(n_out);
        self.to_skip -= skip;
        let avail = (n_out - skip) as u64;
        let keep = avail.min(limit.saturating_sub(self.out_total)) as usize;
        out.extend_from_slice(&self.out_buf[skip..skip + keep]);
        self.out_total += keep as u64;
        Ok(keep)
    }
}

/// Resample a whole clip: the same numbers as streaming it and calling `flush`.
pub fn resample(samples: &[f32], input_rate_hz: u32, output_rate_hz: u32) -> Result<Vec<f32>> {
    let mut r = StreamResampler::new(input_rate_hz, output_rate_hz)?;
    let mut out = Vec::with_capacity(
        (samples.len() as u64 * output_rate_hz as u64 / input_rate_hz as u64) as usize + 1,
    );
    r.process(samples, &mut out)?;
    r.flush(&mut out)?;
    Ok(out)
}
