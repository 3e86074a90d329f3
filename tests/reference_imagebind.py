"""Test-only access to the reference ImageBind implementation (never a dependency of rebind).

The PyPI package ``imagebind-unofficial`` ships Meta's code (CC BY-NC-SA). Its package ``__init__``
imports ``data.py`` -> pytorchvideo, which no longer imports with torchvision 0.26, so the model
modules are imported with a bare package object in place of ``imagebind/__init__``. ``data.py`` is
loaded with two compatibility shims: torchvision's renamed ``functional_tensor`` module, and
``torchaudio.load`` (which needs torchcodec in torchaudio 2.11) backed by soundfile.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import pytest


def _bare_package():
    existing = sys.modules.get("imagebind")
    if existing is not None and getattr(existing, "__file__", None) is None:
        return existing  # our bare package is already in place
    spec = importlib.util.find_spec("imagebind")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("reference ImageBind not installed: pip install --no-deps imagebind-unofficial "
                    "pytorchvideo==0.1.5 einops iopath ftfy regex (see .ci/run)")
    pkg = types.ModuleType("imagebind")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["imagebind"] = pkg
    return pkg


def reference_model_module():
    _bare_package()
    try:
        return importlib.import_module("imagebind.models.imagebind_model")
    except ImportError as e:
        pytest.skip(f"reference ImageBind model does not import here: {e}")


def reference_data_module():
    """ImageBind's data.py with the I/O shims described above."""
    _bare_package()
    try:
        import torchvision.transforms._functional_tensor as ft

        sys.modules.setdefault("torchvision.transforms.functional_tensor", ft)
        return importlib.import_module("imagebind.data")
    except ImportError as e:
        pytest.skip(f"reference ImageBind data.py does not import here: {e}")


def soundfile_load(path):
    """torchaudio.load's contract ([C, T] float32, rate) through soundfile."""
    import soundfile as sf
    import torch

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return torch.from_numpy(data.T.copy()), sr


TINY_KWARGS = dict(
    video_frames=2, kernel_size=(2, 14, 14), audio_kernel_size=16, audio_stride=10, out_embed_dim=32,
    vision_embed_dim=64, vision_num_blocks=2, vision_num_heads=2,
    audio_embed_dim=64, audio_num_blocks=2, audio_num_heads=4, audio_num_mel_bins=128,
    audio_target_len=204, audio_drop_path=0.1,
    text_embed_dim=64, text_num_blocks=2, text_num_heads=2,
    depth_embed_dim=48, depth_kernel_size=16, depth_num_blocks=2, depth_num_heads=4,
    thermal_embed_dim=64, thermal_kernel_size=16, thermal_num_blocks=2, thermal_num_heads=4,
    imu_embed_dim=64, imu_kernel_size=8, imu_num_blocks=2, imu_num_heads=4, imu_drop_path=0.7,
)
"""The reference ImageBindModel arguments that match rebind's ``imagebind_test`` config."""
