"""Real audio files written by the tests: tones, chirps and noise at several rates and lengths."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def synth(seconds: float, rate: int, channels: int = 1, seed: int = 0, f0: float = 220.0) -> np.ndarray:
    """A harmonic tone with a chirp, an envelope, a DC offset and noise: [T, C] float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    sig = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 5))
    sig += 0.3 * np.sin(2 * np.pi * (300 + 900 * t / max(seconds, 1e-3)) * t)
    sig *= 0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * t) ** 2
    out = []
    for c in range(channels):
        out.append(0.25 * sig * (1 - 0.3 * c) + 0.02 * rng.standard_normal(len(t)) + 0.01 * (c + 1))
    return np.stack(out, axis=1).astype(np.float32)


# (name, seconds, rate, channels, format)
VARIETY = [
    ("short_16k_mono.wav", 1.2, 16000, 1, "WAV"),
    ("mid_44k_stereo.flac", 3.7, 44100, 2, "FLAC"),
    ("long_22k_mono.ogg", 10.0, 22050, 1, "OGG"),
    ("tiny_8k_mono.wav", 0.5, 8000, 1, "WAV"),
    ("six_48k_stereo.wav", 6.3, 48000, 2, "WAV"),
    ("exact2s_16k.wav", 2.0, 16000, 1, "WAV"),
]


def write_variety(folder: Path) -> list[Path]:
    paths = []
    for i, (name, seconds, rate, ch, fmt) in enumerate(VARIETY):
        p = Path(folder) / name
        sf.write(p, synth(seconds, rate, ch, seed=i, f0=110.0 * (i + 1)), rate, format=fmt,
                 subtype="VORBIS" if fmt == "OGG" else ("PCM_16" if fmt != "FLAC" else "PCM_24"))
        paths.append(p)
    return paths
