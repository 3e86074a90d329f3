"""rebind.encoders: modality encoders that land in a CLIP space.

    import encoders
    model = encoders.create("imagebind_huge", modalities=("audio",), checkpoint="imagebind_huge.pth")
    emb = encoders.embed_audio(["dog.wav", "rain.ogg"], model=model)   # [2, 1024], unit norm

With no ``model`` the helpers use the embedded default (``pocket``) when its weights are installed.
"""
from __future__ import annotations

import threading
from typing import Any

import torch

from .audio import AudioFbankConfig, AudioPreprocessor, load_audio
from .config import ConfigError
from .factory import (CheckpointError, MultimodalEncoder, convert_imagebind, create, get_config,
                      list_models, load_checkpoint, read_state_dict, register_config, save_modalities)
from .inputs import InputError
from .model import ModalityEncoder
from .quantize import quantize_int8
from .spaces import ClipSpace, check_same_space, get_space, list_spaces, register_space

DEFAULT_MODEL = "pocket"

__all__ = [
    "create", "list_models", "get_config", "register_config", "load_checkpoint", "read_state_dict",
    "save_modalities", "convert_imagebind", "MultimodalEncoder", "ModalityEncoder",
    "ClipSpace", "get_space", "list_spaces", "register_space", "check_same_space",
    "embed_audio", "embed_depth", "embed_thermal", "embed_imu", "embed_text", "embed_image",
    "resolve_encoder", "quantize_int8", "AudioPreprocessor", "AudioFbankConfig", "load_audio",
    "InputError", "CheckpointError", "ConfigError", "DEFAULT_MODEL",
]

_cache: dict[tuple, MultimodalEncoder] = {}
_lock = threading.Lock()


def resolve_encoder(model: Any, modality: str, device=None, dtype=None) -> ModalityEncoder:
    """None / config name / MultimodalEncoder / ModalityEncoder -> the encoder of ``modality``.

    Names are built once and cached (with their bundled weights) per (name, modality, device, dtype).
    """
    if isinstance(model, ModalityEncoder):
        if model.modality != modality:
            raise ValueError(f"got a {model.modality} encoder where a {modality} encoder is needed")
        return model
    if isinstance(model, MultimodalEncoder):
        return model[modality]
    name = DEFAULT_MODEL if model is None else model
    if not isinstance(name, str):
        raise TypeError(f"model must be a config name, a MultimodalEncoder or a ModalityEncoder, "
                        f"got {type(model).__name__}")
    key = (name, modality, str(device), dtype)
    with _lock:
        if key not in _cache:
            if name == DEFAULT_MODEL and name not in list_models():
                raise RuntimeError(
                    "the embedded default encoders (pocket) are not installed in this checkout; "
                    "pass model=<config name> with checkpoint, e.g. "
                    "encoders.create('imagebind_huge', checkpoint='imagebind_huge.pth')")
            _cache[key] = create(name, modalities=(modality,), device=device, dtype=dtype)
        return _cache[key][modality]


def _embed(modality: str, inputs, model, output, batch_size, device, dtype, progress, **kw) -> torch.Tensor:
    enc = resolve_encoder(model, modality, device=device, dtype=dtype)
    return enc.embed(inputs, output=output, batch_size=batch_size, progress=progress, **kw)


def embed_audio(audio, model=None, output: str = "unit", sample_rate: int | None = None,
                batch_size: int = 32, device=None, dtype=None, progress: bool = False) -> torch.Tensor:
    """Audio files / arrays / tensors -> [N, D] embeddings (unit norm unless output='scaled'/'raw').

    Arrays need ``sample_rate`` (or pass ``(array, rate)`` tuples); any rate, mono or multichannel,
    any length.
    """
    return _embed("audio", audio, model, output, batch_size, device, dtype, progress,
                  sample_rate=sample_rate)


def embed_depth(depth, model=None, output: str = "unit", input: str | None = None,
                focal_length: float | None = None, baseline: float | None = None,
                batch_size: int = 32, device=None, dtype=None, progress: bool = False) -> torch.Tensor:
    """Disparity maps (default) or metric depth (``input='depth'`` + ``focal_length``) -> [N, D]."""
    return _embed("depth", depth, model, output, batch_size, device, dtype, progress,
                  input=input, focal_length=focal_length, baseline=baseline)


def embed_thermal(thermal, model=None, output: str = "unit", batch_size: int = 32, device=None,
                  dtype=None, progress: bool = False) -> torch.Tensor:
    return _embed("thermal", thermal, model, output, batch_size, device, dtype, progress)


def embed_imu(imu, model=None, output: str = "unit", sample_rate: int | None = None,
              batch_size: int = 32, device=None, dtype=None, progress: bool = False) -> torch.Tensor:
    return _embed("imu", imu, model, output, batch_size, device, dtype, progress, sample_rate=sample_rate)


def embed_image(images, model=None, output: str = "unit", batch_size: int = 32, device=None,
                dtype=None, progress: bool = False) -> torch.Tensor:
    """Image paths / PIL images / arrays -> [N, D] CLIP image embeddings."""
    return _embed("vision", images, model, output, batch_size, device, dtype, progress)


def embed_text(texts, model=None, output: str = "unit", batch_size: int = 256, device=None,
               dtype=None, progress: bool = False) -> torch.Tensor:
    """Strings -> [N, D] CLIP text embeddings."""
    return _embed("text", texts, model, output, batch_size, device, dtype, progress)
