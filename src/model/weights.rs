//! Weights I/O: memory-mapped safetensors reading of whole tensors or of some branches' rows,
//! deterministic random weights, and a streaming writer for files too large to hold in RAM.
//!
//! Tensor names and shapes come from [`NetSpec`]; docs/WEIGHTS.md lists them.

use super::spec::{NetSpec, TensorSpec};
use super::ModelConfig;
use crate::error::CandleContext;
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the inference model reads tensors from: the whole tensor, or only the row groups
/// `units.0` of a tensor stacked over `units.1` groups.
pub(crate) trait Source {
    fn fetch(
        &self,
        name: &str,
        shape: &[usize],
        units: Option<(&[usize], usize)>,
    ) -> Result<Tensor>;
}

/// Tensors already in memory (a model's named tensors, or a map of random weights).
pub(crate) struct MapSource<'a> {
    pub map: &'a HashMap<String, Tensor>,
    pub device: Device,
}

impl Source for MapSource<'_> {
    fn fetch(
        &self,
        name: &str,
        shape: &[usize],
        units: Option<(&[usize], usize)>,
    ) -> Result<Tensor> {
        let bad = |msg: String| Error::Weights {
            path: PathBuf::from("<memory>"),
            msg,
        };
        let t = self.map.get(name).ok_or_else(|| {
            bad(format!(
                "missing tensor `{name}` (expected shape {shape:?})"
            ))
        })?;
        if t.dims() != shape {
            return Err(bad(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                t.dims()
            )));
        }
        let t = t
            .to_device(&self.device)
            .and_then(|t| t.to_dtype(DType::F32))
            .ctx(name.to_string())?;
        match units {
            None => Ok(t),
            Some((u, n)) => {
                let rows = super::layers::unit_rows(u, shape[0] / n.max(1), &self.device)
                    .ctx(name.to_string())?;
                t.index_select(&rows, 0).ctx(name.to_string())
            }
        }
    }
}

/// A memory-mapped safetensors file. Only the bytes of the tensors (or rows) fetched are read, so
/// a cutout of a huge model pages in just its own branches.
pub struct MmapFile {
    path: PathBuf,
    mmap: memmap2::Mmap,
    header_len: usize,
    meta: safetensors::tensor::Metadata,
    device: Device,
}

impl MmapFile {
    /// Map `path` and parse its header.
    pub fn open(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = std::fs::File::open(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        // SAFETY: the file is opened read-only; like every mmap reader (candle's included) we rely
        // on nobody truncating it while the model loads.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let (header_len, meta) =
            safetensors::SafeTensors::read_metadata(&mmap).map_err(|e| Error::Weights {
                path: path.clone(),
                msg: format!("not a valid safetensors file: {e}"),
            })?;
        Ok(MmapFile {
            path,
            mmap,
            header_len,
            meta,
            device: device.clone(),
        })
    }

    /// Tensor names in the file.
    pub fn names(&self) -> Vec<String> {
        self.meta.tensors().into_keys().collect()
    }

    /// The shape of tensor `name` as stored, if the file has it.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.meta.info(name).map(|i| i.shape.clone())
    }

    /// Read the whole tensor `name` (f16/bf16 converted to f32) on the file's device.
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        let shape = self
            .shape(name)
            .ok_or_else(|| self.err(format!("missing tensor `{name}`")))?;
        self.fetch(name, &shape, None)
    }

    fn err(&self, msg: String) -> Error {
        Error::Weights {
            path: self.path.clone(),
            msg,
        }
    }
}

impl Source for MmapFile {
    fn fetch(
        &self,
        name: &str,
        shape: &[usize],
        units: Option<(&[usize], usize)>,
    ) -> Result<Tensor> {
        use safetensors::Dtype as D;
        let info = self.meta.info(name).ok_or_else(|| {
            self.err(format!(
                "missing tensor `{name}` (expected shape {shape:?})"
            ))
        })?;
        if info.shape != shape {
            return Err(self.err(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                info.shape
            )));
        }
        let (dtype, elem) = match info.dtype {
            D::F32 => (DType::F32, 4),
            D::F16 => (DType::F16, 2),
            D::BF16 => (DType::BF16, 2),
            other => {
                return Err(self.err(format!(
                    "tensor `{name}` has dtype {other:?}; expected F32, F16 or BF16"
                )))
            }
        };
        let start = 8 + self.header_len + info.data_offsets.0;
        let data = &self.mmap[start..8 + self.header_len + info.data_offsets.1];
        let numel: usize = shape.iter().product();
        let dim0 = shape.first().copied().unwrap_or(1);
        let row_bytes = numel.checked_div(dim0).unwrap_or(0) * elem;
        // Copy only the wanted branches' row ranges.
        let (bytes, rows): (Vec<&[u8]>, usize) = match units {
            None => (vec![data], dim0),
            Some((u, n)) => {
                let r = dim0 / n.max(1);
                (
                    u.iter()
                        .map(|&i| &data[i * r * row_bytes..(i + 1) * r * row_bytes])
                        .collect(),
                    u.len() * r,
                )
            }
        };
        let mut out_shape = shape.to_vec();
        if let Some(d) = out_shape.first_mut() {
            *d = rows;
        }
        let t = if dtype == DType::F32 {
            let mut v = Vec::with_capacity(rows * row_bytes / 4);
            for chunk in bytes {
                v.extend(
                    chunk
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                );
            }
            Tensor::from_vec(v, out_shape, &self.device)
        } else {
            let buf: Vec<u8> = bytes.concat();
            Tensor::from_raw_buffer(&buf, dtype, &out_shape, &self.device)
                .and_then(|t| t.to_dtype(DType::F32))
        };
        let t = t.map_err(|e| self.err(format!("tensor `{name}`: {e}")))?;
        // The bytes are copied; drop the mapped pages so resident memory tracks what was loaded,
        // not what was read (a read-only file mapping re-reads from the file if touched again).
        #[cfg(unix)]
        if data.len() >= 1 << 20 {
            // SAFETY: MADV_DONTNEED on a read-only, file-backed mapping only discards cached pages.
            let _ = unsafe {
                self.mmap.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start,
                    data.len(),
                )
            };
        }
        Ok(t)
    }
}

/// Every tensor's name and full shape for `cfg` (the contract of docs/WEIGHTS.md).
pub fn tensor_specs(cfg: &ModelConfig) -> Result<Vec<TensorSpec>> {
    Ok(NetSpec::new(cfg)?.tensors())
}

/// A deterministic random generator per (seed, tensor name), so a streamed file and an in-memory
/// map with the same seed hold the same values.
fn rng_for(seed: u64, name: &str) -> rand::rngs::SmallRng {
    // FNV-1a over the name, mixed with the seed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    rand::rngs::SmallRng::seed_from_u64(h)
}

/// Fill `out` with the next values of a random tensor: Kaiming-uniform-like conv/linear weights
/// and non-trivial BatchNorm statistics (so BN folding is really exercised).
fn fill_random(spec: &TensorSpec, rng: &mut rand::rngs::SmallRng, out: &mut [f32]) {
    let name = spec.name.as_str();
    let (lo, hi) = if spec.shape.len() >= 2 {
        let fan_in: usize = spec.shape[1..].iter().product();
        let a = (3.0 / fan_in.max(1) as f32).sqrt();
        (-a, a)
    } else if name.ends_with("running_var") {
        (0.5, 1.5)
    } else if name.ends_with("running_mean") || name.ends_with(".bias") {
        (-0.2, 0.2)
    } else {
        (0.5, 1.5) // BN weight
    };
    for v in out {
        *v = rng.random_range(lo..hi);
    }
}

/// Random weights for every tensor of `cfg`, deterministic in `seed`.
pub fn random_tensors(
    cfg: &ModelConfig,
    seed: u64,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let mut map = HashMap::new();
    for spec in tensor_specs(cfg)? {
        let mut v = vec![0f32; spec.shape.iter().product()];
        fill_random(&spec, &mut rng_for(seed, &spec.name), &mut v);
        let t = Tensor::from_vec(v, spec.shape.clone(), device).ctx(spec.name.clone())?;
        map.insert(spec.name, t);
    }
    Ok(map)
}

/// Write the same random weights as [`random_tensors`] to a safetensors file, streaming the data
/// so memory stays small whatever the model size. Returns the file size in bytes.
pub fn write_random_safetensors(
    path: impl AsRef<Path>,
    cfg: &ModelConfig,
    seed: u64,
) -> Result<u64> {
    let path = path.as_ref();
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let specs = tensor_specs(cfg)?;
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for s in &specs {
        let bytes = s.shape.iter().product::<usize>() * 4;
        header.insert(
            s.name.clone(),
            serde_json::json!({"dtype": "F32", "shape": s.shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut json = serde_json::Value::Object(header).to_string().into_bytes();
    // The format asks for the data to start 8-byte aligned; pad the header with spaces.
    json.resize(json.len().div_ceil(8) * 8, b' ');
    let file = std::fs::File::create(path).map_err(io)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    w.write_all(&(json.len() as u64).to_le_bytes())
        .map_err(io)?;
    w.write_all(&json).map_err(io)?;
    const CHUNK: usize = 1 << 16;
    let mut buf = vec![0f32; CHUNK];
    let mut bytes = Vec::with_capacity(CHUNK * 4);
    for s in &specs {
        let mut rng = rng_for(seed, &s.name);
        let mut left: usize = s.shape.iter().product();
        while left > 0 {
            let n = left.min(CHUNK);
            fill_random(s, &mut rng, &mut buf[..n]);
            bytes.clear();
            bytes.extend(buf[..n].iter().flat_map(|v| v.to_le_bytes()));
            w.write_all(&bytes).map_err(io)?;
            left -= n;
        }
    }
    w.flush().map_err(io)?;
    Ok(8 + json.len() as u64 + offset as u64)
}
