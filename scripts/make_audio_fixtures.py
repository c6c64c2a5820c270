#!/usr/bin/env python3
"""Write tests/fixtures/audio_logmel_ref.json: reference log-mel frames for src/audio/features.rs.

Deterministic input (no RNG library, so Rust regenerates it bit for bit): a 100 Hz -> 7 kHz linear
chirp of amplitude 0.5 plus uniform noise of amplitude 0.05 from a 64-bit LCG, for 3800 samples at
16 kHz, then 1000 zero samples (frames 24..26 are pure silence and must hit the -100 dB floor).

The reference is computed independently of the Rust code, in float64 with numpy only:
periodic Hann (512), rfft(512), power, HTK mel filterbank (64 bins, 0..8000 Hz, no norm, the
formula of torchaudio.functional.melscale_fbanks), 10*log10(max(p, 1e-10)), no centre padding.

Run: /work/venv-torch/bin/python scripts/make_audio_fixtures.py
"""
import json
import os

import numpy as np

SR = 16000
N_FFT = 512
HOP = 160
N_MELS = 64
F_MIN, F_MAX = 0.0, 8000.0
AMIN = 1e-10
N_SIGNAL, N_ZEROS = 3800, 1000
F0, F1 = 100.0, 7000.0
SEED = 12345

MASK = (1 << 64) - 1


def lcg_noise(n, seed):
    """Uniform [-1, 1) from the PCG multiplier LCG; the top 24 bits of the state."""
    state = seed
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK
        out[i] = 2.0 * ((state >> 40) / float(1 << 24)) - 1.0
    return out


def signal():
    t = np.arange(N_SIGNAL, dtype=np.float64) / SR
    dur = N_SIGNAL / SR
    k = (F1 - F0) / dur
    chirp = 0.5 * np.sin(2.0 * np.pi * (F0 * t + 0.5 * k * t * t))
    x = chirp + 0.05 * lcg_noise(N_SIGNAL, SEED)
    x = np.concatenate([x, np.zeros(N_ZEROS)])
    return x.astype(np.float32)


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + f / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_fbanks():
    n_freqs = N_FFT // 2 + 1
    all_freqs = np.linspace(0, SR // 2, n_freqs)
    m_pts = np.linspace(hz_to_mel(F_MIN), hz_to_mel(F_MAX), N_MELS + 2)
    f_pts = mel_to_hz(m_pts)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return np.maximum(0.0, np.minimum(down, up))  # (n_freqs, n_mels)


def log_mel(x):
    x = x.astype(np.float64)
    n_frames = (len(x) - N_FFT) // HOP + 1
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
    frames = np.stack([x[i * HOP : i * HOP + N_FFT] * window for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames, n=N_FFT, axis=1)) ** 2
    mel = power @ mel_fbanks()
    return 10.0 * np.log10(np.maximum(mel, AMIN))


def main():
    x = signal()
    lm = log_mel(x)
    out = {
        "generator": {
            "sample_rate_hz": SR,
            "n_signal": N_SIGNAL,
            "n_zeros": N_ZEROS,
            "chirp_hz": [F0, F1],
            "chirp_amplitude": 0.5,
            "noise_amplitude": 0.05,
            "lcg_seed": SEED,
        },
        "config": {
            "n_fft": N_FFT,
            "hop_samples": HOP,
            "n_mels": N_MELS,
            "f_min_hz": F_MIN,
            "f_max_hz": F_MAX,
            "amin_power": AMIN,
        },
        "first_samples": [float(v) for v in x[:8]],
        "sum_samples": float(x.astype(np.float64).sum()),
        "n_frames": int(lm.shape[0]),
        "logmel_db": [round(float(v), 5) for v in lm.reshape(-1)],
    }
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "audio_logmel_ref.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print(f"wrote {path}: {lm.shape[0]} frames x {lm.shape[1]} mels, range {lm.min():.2f}..{lm.max():.2f} dB")


if __name__ == "__main__":
    main()
