"""Tiny real components for the adapters.detic tests (built once per test session)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audio_files import synth


@lru_cache(maxsize=None)
def tiny_encoders():
    """imagebind_test audio + depth + text encoders (random weights), space test-32."""
    import encoders

    return encoders.create("imagebind_test", modalities=("audio", "depth", "text"), checkpoint=False)


def tiny_detector(space: str = "test-32", backbone: str = "mobilenet_v3_small", seed: int = 0, **overrides):
    """rebind's Detic-style detector, small enough for CPU tests."""
    from adapters.detic import DeticStyleConfig, DeticStyleDetector

    torch.manual_seed(seed)
    settings = dict(fpn_channels=16, representation_size=32, min_size=[128], max_size=160)
    config = DeticStyleConfig(space=space, backbone=backbone, **{**settings, **overrides})
    return DeticStyleDetector(config).eval()


def write_sounds(folder: Path, names=("dog", "doorbell", "rain"), seconds: float = 1.5, rate: int = 16000):
    paths = []
    for i, name in enumerate(names):
        path = Path(folder) / f"{name}.wav"
        sf.write(path, synth(seconds, rate, seed=i, f0=150.0 * (i + 1))[:, 0], rate)
        paths.append(path)
    return paths


def random_image(height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """An RGB uint8 image with a few flat rectangles on noise (something box-like to look at)."""
    rng = np.random.default_rng(seed)
    img = (rng.random((height, width, 3)) * 60).astype(np.uint8)
    for _ in range(3):
        y, x = rng.integers(0, height // 2), rng.integers(0, width // 2)
        img[y: y + height // 3, x: x + width // 3] = rng.integers(80, 255, 3)
    return img
