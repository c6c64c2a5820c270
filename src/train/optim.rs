//! SGD with momentum and AdamW (PyTorch's update rules), with their state exposed as named
//! tensors so a checkpoint can resume bit for bit. Weight decay skips 1-D tensors (BatchNorm and
//! biases), as timm does.

use crate::error::CandleContext;
use crate::{Error, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Which optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum OptimizerConfig {
    /// SGD with (optionally Nesterov) momentum.
    Sgd {
        /// Momentum factor (0.9 is usual).
        momentum: f64,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// AdamW (decoupled weight decay).
    AdamW {
        /// First-moment decay.
        beta1: f64,
        /// Second-moment decay.
        beta2: f64,
        /// Denominator epsilon.
        eps: f64,
    },
}

impl OptimizerConfig {
    /// SGD, momentum 0.9, Nesterov.
    pub fn sgd() -> Self {
        OptimizerConfig::Sgd {
            momentum: 0.9,
            nesterov: true,
        }
    }

    /// AdamW with betas (0.9, 0.999) and eps 1e-8.
    pub fn adamw() -> Self {
        OptimizerConfig::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

struct Param {
    name: String,
    var: Var,
    decay: bool,
}

/// An optimizer over named variables.
pub struct Optimizer {
    cfg: OptimizerConfig,
    weight_decay: f64,
    params: Vec<Param>,
    /// First moment / momentum buffer per parameter name.
    m: HashMap<String, Tensor>,
    /// Second moment (AdamW) per parameter name.
    v: HashMap<String, Tensor>,
    steps: u64,
}

impl Optimizer {
    /// An optimizer over `params` (name, variable); 1-D tensors get no weight decay.
    pub fn new(
        cfg: OptimizerConfig,
        weight_decay: f64,
        mut params: Vec<(String, Var)>,
    ) -> Result<Self> {
        if weight_decay.is_nan() || weight_decay < 0.0 {
            return Err(Error::Config(format!(
                "weight decay must be >= 0, got {weight_decay}"
            )));
        }
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let params = params
            .into_iter()
            .map(|(name, var)| Param {
                decay: var.rank() > 1,
                name,
                var,
            })
            .collect();
        Ok(Self {
            cfg,
            weight_decay,
            params,
            m: HashMap::new(),
            v: HashMap::new(),
            steps: 0,
        })
    }

    /// Optimizer steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Apply one update with learning rate `lr`. Parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.steps += 1;
        let t = self.steps as i32;
        for p in &self.params {
            let Some(g) = grads.get(&p.var) else {
                continue;
            };
            let wd = if p.decay { self.weight_decay } else { 0.0 };
            let ctx = || format!("optimizer update of {}", p.name);
            let w = p.var.as_tensor();
            let new_w = match self.cfg {
                OptimizerConfig::Sgd { momentum, nesterov } => {
                    let g = if wd > 0.0 {
                        (g + (w * wd).ctx(ctx())?).ctx(ctx())?
                    } else {
                        g.clone()
                    };
                    let buf = match self.m.get(&p.name) {
                        Some(b) if momentum > 0.0 => ((b * momentum).ctx(ctx())? + &g).ctx(ctx())?,
                        _ => g.clone(),
                    };
                    let dir = if nesterov && momentum > 0.0 {
                        (&g + (&buf * momentum).ctx(ctx())?).ctx(ctx())?
                    } else {
                        buf.clone()
                    };
                    self.m.insert(p.name.clone(), buf.detach());
                    (w - (dir * lr).ctx(ctx())?).ctx(ctx())?
                }
                OptimizerConfig::AdamW { beta1, beta2, eps } => {
                    let zeros = || g.zeros_like().ctx(ctx());
                    let m0 = match self.m.get(&p.name) {
                        Some(m) => m.clone(),
                        None => zeros()?,
                    };
                    let v0 = match self.v.get(&p.name) {
                        Some(v) => v.clone(),
                        None => zeros()?,
                    };
                    let m =
                        ((m0 * beta1).ctx(ctx())? + (g * (1.0 - beta1)).ctx(ctx())?).ctx(ctx())?;
                    let v = ((v0 * beta2).ctx(ctx())?
                        + (g.sqr().ctx(ctx())? * (1.0 - beta2)).ctx(ctx())?)
                    .ctx(ctx())?;
                    let mhat = (&m / (1.0 - beta1.powi(t))).ctx(ctx())?;
                    let vhat = (&v / (1.0 - beta2.powi(t))).ctx(ctx())?;
                    let upd = (mhat / (vhat.sqrt().ctx(ctx())? + eps).ctx(ctx())?).ctx(ctx())?;
                    self.m.insert(p.name.clone(), m.detach());
                    self.v.insert(p.name.clone(), v.detach());
                    let decayed = if wd > 0.0 {
                        (w * (1.0 - lr * wd)).ctx(ctx())?
                    } else {
                        w.clone()
                    };
                    (decayed - (upd * lr).ctx(ctx())?).ctx(ctx())?
                }
            };
            p.var.set(&new_w).ctx(ctx())?;
        }
        Ok(())
    }

    /// The state as named tensors (`m.<param>`, `v.<param>`) for a checkpoint.
    pub fn state_tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (k, t) in &self.m {
            out.insert(format!("m.{k}"), t.clone());
        }
        for (k, t) in &self.v {
            out.insert(format!("v.{k}"), t.clone());
        }
        out
    }

    /// Restore the state written by [`Optimizer::state_tensors`] after `steps` steps.
    pub fn load_state(&mut self, tensors: HashMap<String, Tensor>, steps: u64) -> Result<()> {
        self.m.clear();
        self.v.clear();
        for (k, t) in tensors {
            let (kind, name) = k.split_once('.').ok_or_else(|| {
                Error::BadInput(format!("optimizer state tensor {k:?} has no m./v. prefix"))
            })?;
            let Some(p) = self.params.iter().find(|p| p.name == name) else {
                return Err(Error::BadInput(format!(
                    "optimizer state for unknown parameter {name:?}"
                )));
            };
            if t.dims() != p.var.dims() {
                return Err(Error::BadInput(format!(
                    "optimizer state {k:?} has shape {:?}, parameter has {:?}",
                    t.dims(),
                    p.var.dims()
                )));
            }
            match kind {
                "m" => self.m.insert(name.to_string(), t),
                "v" => self.v.insert(name.to_string(), t),
                _ => {
                    return Err(Error::BadInput(format!(
                        "unknown optimizer state kind in {k:?}"
                    )))
                }
            };
        }
        self.steps = steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn run(cfg: OptimizerConfig, wd: f64, steps: usize) -> Vec<f32> {
        // Minimize sum((w - 3)^2) from w = [0, 1].
        let w = Var::new(&[0.0f32, 1.0], &Device::Cpu).unwrap();
        let mut opt = Optimizer::new(cfg, wd, vec![("w.weight".into(), w.clone())]).unwrap();
        for _ in 0..steps {
            let loss = (w.as_tensor() - 3.0)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap();
            opt.step(&loss.backward().unwrap(), 0.1).unwrap();
        }
        w.as_tensor().to_vec1().unwrap()
    }

    #[test]
    fn sgd_momentum_matches_pytorch_rule() {
        // Plain momentum 0.9, lr 0.1, grad 2(w - 3): step 1: buf = -6, w = 0.6; step 2: grad -4.8,
        // buf = -5.4 - 4.8 = -10.2, w = 0.6 + 1.02 = 1.62.
        let w = run(
            OptimizerConfig::Sgd {
                momentum: 0.9,
                nesterov: false,
            },
            0.0,
            2,
        );
        assert!((w[0] - 1.62).abs() < 1e-5, "{w:?}");
    }

    #[test]
    fn adamw_first_step_is_lr_times_sign() {
        // Bias-corrected first Adam step moves each weight by lr (times the gradient's sign).
        let w = run(OptimizerConfig::adamw(), 0.0, 1);
        assert!(
            (w[0] - 0.1).abs() < 1e-5 && (w[1] - 1.1).abs() < 1e-5,
            "{w:?}"
        );
    }

    #[test]
    fn both_converge_and_state_round_trips() {
        for cfg in [OptimizerConfig::sgd(), OptimizerConfig::adamw()] {
            let w = run(cfg, 0.0, 200);
            assert!((w[0] - 3.0).abs() < 0.05, "{cfg:?}: {w:?}");
        }
        let w = Var::new(&[0.0f32, 1.0], &Device::Cpu).unwrap();
        let mut opt = Optimizer::new(
            OptimizerConfig::adamw(),
            0.0,
            vec![("w.weight".into(), w.clone())],
        )
        .unwrap();
        let loss = w.as_tensor().sqr().unwrap().sum_all().unwrap();
        opt.step(&loss.backward().unwrap(), 0.1).unwrap();
        let st = opt.state_tensors();
        assert_eq!(st.len(), 2);
        let mut other =
            Optimizer::new(OptimizerConfig::adamw(), 0.0, vec![("w.weight".into(), w)]).unwrap();
        other.load_state(st, 1).unwrap();
        assert_eq!(other.steps(), 1);
        let mut bad = HashMap::new();
        bad.insert(
            "m.nope".to_string(),
            Tensor::zeros(2, candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
        assert!(other.load_state(bad, 1).is_err());
    }

    #[test]
    fn weight_decay_shrinks_matrices_only() {
        let m = Var::new(&[[1.0f32, 1.0]], &Device::Cpu).unwrap();
        let b = Var::new(&[1.0f32], &Device::Cpu).unwrap();
        let mut opt = Optimizer::new(
            OptimizerConfig::Sgd {
                momentum: 0.0,
                nesterov: false,
            },
            0.5,
            vec![
                ("fc.weight".into(), m.clone()),
                ("fc.bias".into(), b.clone()),
            ],
        )
        .unwrap();
        // loss = sum(m) + sum(b): every gradient is 1. The matrix also decays:
        // m = 1 - 0.1 * (1 + 0.5 * 1) = 0.85; the bias does not: b = 1 - 0.1 * 1 = 0.9.
        let loss = (m.as_tensor().sum_all().unwrap() + b.as_tensor().sum_all().unwrap()).unwrap();
        opt.step(&loss.backward().unwrap(), 0.1).unwrap();
        let mv = m.as_tensor().to_vec2::<f32>().unwrap();
        assert!(mv[0].iter().all(|v| (v - 0.85).abs() < 1e-6), "{mv:?}");
        let bv = b.as_tensor().to_vec1::<f32>().unwrap();
        assert!((bv[0] - 0.9).abs() < 1e-6, "{bv:?}");
    }
}
