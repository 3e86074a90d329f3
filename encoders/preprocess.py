"""Preprocessing for depth, thermal, IMU, images and text.

Audio lives in audio.py. Each preprocessor is built from a typed config (a ``kind`` names it) and
turns user inputs into the batch tensor its encoder consumes.

Depth (no official ImageBind loader exists; this is the recipe the ImageBind community converged on,
ImageBind issues #69/#134, which follows Omnivore): a disparity map (pixels) -- or metric depth
with ``focal_length`` (px) and ``baseline`` (m), converted as disparity = f * b / depth --
clamped to [0, max_disparity] and divided by it (Omnivore's DepthNorm, 75), resized (short side) and
center-cropped to 224, then standardized with mean 0.0418, std 0.0295. Unknown pixels (NaN, inf,
depth <= 0) become disparity 0.
Thermal: grayscale image in [0, 1], resized and center-cropped to 224, NOT standardized (a user
measured LLVIP 62.4 without vs 55.2 with an extra Normalize, ImageBind PR #73).
IMU: [6, T] accelerometer xyz + gyroscope xyz at 200 Hz; resampled to 200 Hz if another rate is
given, then center-cropped or zero-padded to 2000 samples (10 s).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .inputs import InputError, as_list, check_finite, describe, existing_file


def _resize_center_crop(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, size, size]: short side to ``size``, then the center square."""
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode=mode, align_corners=False if mode != "nearest" else None,
                          antialias=mode in ("bilinear", "bicubic") and scale < 1)
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[..., top: top + size, left: left + size]


def _read_2d(item: Any, what: str) -> tuple[torch.Tensor, str]:
    """A single-channel map from a path (.npy or image) / array / tensor -> float [H, W]."""
    name = describe(item)
    if isinstance(item, (str, os.PathLike)):
        path = existing_file(item, what)
        if path.suffix.lower() == ".npy":
            try:
                arr = np.load(path, allow_pickle=False)
            except Exception as e:
                raise InputError(f"could not read {what} file '{path}' as a numpy array: {e}") from None
        else:
            from PIL import Image, UnidentifiedImageError

            try:
                with Image.open(path) as im:
                    im.load()
                    if im.mode in ("RGB", "RGBA", "P", "LA", "CMYK"):
                        im = im.convert("L")
                    arr = np.array(im)
            except (UnidentifiedImageError, OSError) as e:
                raise InputError(f"could not decode {what} image '{path}': {e}; "
                                 f"pass a PNG/TIFF image or a .npy array") from None
        t = torch.from_numpy(np.asarray(arr).astype(np.float32))
    elif isinstance(item, np.ndarray):
        t = torch.from_numpy(np.asarray(item, dtype=np.float32))
    elif isinstance(item, torch.Tensor):
        t = item.detach().to("cpu", torch.float32)
    else:
        try:  # a PIL image
            t = torch.from_numpy(np.asarray(item.convert("L") if item.mode not in ("L", "I", "I;16", "F")
                                            else item, dtype=np.float32))
        except AttributeError:
            raise InputError(f"cannot read {what} from {name}; expected a path, array, tensor or PIL image") from None
    if t.ndim == 3 and 1 in (t.shape[0], t.shape[-1]):
        t = t.squeeze(0) if t.shape[0] == 1 else t.squeeze(-1)
    if t.ndim != 2:
        raise InputError(f"{what} {name} has shape {tuple(t.shape)}; expected a single-channel "
                         f"map [H, W] (or [1, H, W])")
    if min(t.shape) < 2:
        raise InputError(f"{what} {name} is {t.shape[0]}x{t.shape[1]} pixels; need at least 2x2")
    return t, name


@dataclass
class DepthConfig:
    kind: Literal["depth"] = "depth"
    size: int = 224
    input: Literal["disparity", "depth"] = "disparity"
    focal_length: float | None = None  # px; needed to convert metric depth
    baseline: float = 0.075  # m (Kinect v1/v2, as Omnivore's SUN RGB-D conversion)
    depth_scale: float = 1.0  # multiply raw depth values by this to get meters (0.001 for mm PNGs)
    max_disparity: float = 75.0
    mean: float = 0.0418
    std: float = 0.0295
    interpolation: Literal["bilinear", "nearest", "bicubic"] = "bilinear"


class DepthPreprocessor:
    def __init__(self, config: DepthConfig | None = None):
        self.config = config or DepthConfig()

    def to_disparity(self, t: torch.Tensor, input: str, focal_length, baseline, depth_scale) -> torch.Tensor:
        if input == "disparity":
            d = t
        else:
            if focal_length is None:
                raise InputError("metric depth needs the camera's focal_length in pixels to become "
                                 "disparity (pass focal_length=..., or input='disparity')")
            depth = t * depth_scale
            d = torch.where(depth > 0, focal_length * baseline / depth, torch.zeros_like(depth))
        return torch.nan_to_num(d, nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0.0)

    def __call__(self, inputs, input: str | None = None, focal_length: float | None = None,
                 baseline: float | None = None, depth_scale: float | None = None,
                 device=None) -> torch.Tensor:
        c = self.config
        input = input or c.input
        if input not in ("disparity", "depth"):
            raise InputError(f"input={input!r}: expected 'disparity' or 'depth' (meters)")
        out = []
        for item in as_list(inputs):
            t, _ = _read_2d(item, "depth")
            d = self.to_disparity(t, input, focal_length or c.focal_length,
                                  c.baseline if baseline is None else baseline,
                                  c.depth_scale if depth_scale is None else depth_scale)
            d = d.clamp(max=c.max_disparity) / c.max_disparity
            d = _resize_center_crop(d[None, None], c.size, c.interpolation)[0]
            out.append((d - c.mean) / c.std)
        x = torch.stack(out)
        return x.to(device) if device is not None else x


@dataclass
class ThermalConfig:
    kind: Literal["thermal"] = "thermal"
    size: int = 224
    max_value: float | None = None  # divide by this; None: 255 for 8-bit, 65535 for 16-bit data
    mean: float | None = None
    std: float | None = None


class ThermalPreprocessor:
    def __init__(self, config: ThermalConfig | None = None):
        self.config = config or ThermalConfig()

    def __call__(self, inputs, device=None) -> torch.Tensor:
        c = self.config
        out = []
        for item in as_list(inputs):
            t, name = _read_2d(item, "thermal")
            check_finite(t, f"thermal {name}")
            top = c.max_value or (255.0 if t.max() <= 255 else 65535.0)
            t = (t / top).clamp(0, 1)
            t = _resize_center_crop(t[None, None], c.size, "bicubic")[0].clamp(0, 1)
            if c.mean is not None and c.std is not None:
                t = (t - c.mean) / c.std
            out.append(t)
        x = torch.stack(out)
        return x.to(device) if device is not None else x


@dataclass
class ImuConfig:
    kind: Literal["imu"] = "imu"
    channels: int = 6
    length: int = 2000
    sample_rate: int = 200


class ImuPreprocessor:
    def __init__(self, config: ImuConfig | None = None):
        self.config = config or ImuConfig()

    def __call__(self, inputs, sample_rate: int | None = None, device=None) -> torch.Tensor:
        c = self.config
        out = []
        for item in as_list(inputs):
            name = describe(item)
            if isinstance(item, (str, os.PathLike)):
                path = existing_file(item, "IMU")
                if path.suffix.lower() != ".npy":
                    raise InputError(f"IMU file '{path}' must be a .npy array of shape "
                                     f"[{c.channels}, T]; got '{path.suffix}'")
                item = np.load(path, allow_pickle=False)
            t = torch.as_tensor(np.asarray(item) if not isinstance(item, torch.Tensor) else item,
                                dtype=torch.float32).detach().cpu()
            if t.ndim == 2 and t.shape[0] != c.channels and t.shape[1] == c.channels:
                t = t.T
            if t.ndim != 2 or t.shape[0] != c.channels:
                raise InputError(f"IMU {name} has shape {tuple(t.shape)}; expected [{c.channels}, T] "
                                 f"(accelerometer xyz, gyroscope xyz) or [T, {c.channels}]")
            check_finite(t, f"IMU {name}")
            if sample_rate and sample_rate != c.sample_rate:
                new_len = max(1, round(t.shape[1] * c.sample_rate / sample_rate))
                t = F.interpolate(t[None], size=new_len, mode="linear", align_corners=False)[0]
            n = t.shape[1]
            if n >= c.length:
                start = (n - c.length) // 2
                t = t[:, start: start + c.length]
            else:
                t = F.pad(t, (0, c.length - n))
            out.append(t)
        x = torch.stack(out)
        return x.to(device) if device is not None else x


OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class ImageConfig:
    kind: Literal["image"] = "image"
    size: int = 224
    mean: list[float] = field(default_factory=lambda: list(OPENAI_MEAN))
    std: list[float] = field(default_factory=lambda: list(OPENAI_STD))
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"


def load_image(item: Any):
    """Path / PIL / uint8 array [H, W(, C)] -> RGB PIL image (alpha composited on white)."""
    from PIL import Image, UnidentifiedImageError

    name = describe(item)
    if isinstance(item, (str, os.PathLike)):
        path = existing_file(item, "image")
        try:
            img = Image.open(path)
            img.load()
        except (UnidentifiedImageError, OSError) as e:
            raise InputError(f"could not decode image '{path}': {e}; pass a PNG/JPEG/WebP file") from None
    elif isinstance(item, Image.Image):
        img = item
    elif isinstance(item, (np.ndarray, torch.Tensor)):
        arr = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else item
        if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
            arr = np.moveaxis(arr, 0, -1)  # CHW -> HWC
        if arr.dtype != np.uint8:
            if not np.isfinite(arr).all():
                raise InputError(f"image {name} contains NaN or inf values")
            arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim not in (2, 3):
            raise InputError(f"image {name} has shape {arr.shape}; expected [H, W], [H, W, C] or [C, H, W]")
        img = Image.fromarray(arr)
    else:
        raise InputError(f"cannot read an image from {name}; expected a path, PIL image, array or tensor")
    if img.width < 1 or img.height < 1:
        raise InputError(f"image {name} has size {img.width}x{img.height}; it must be at least 1x1")
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


class ImagePreprocessor:
    """CLIP image preprocessing (resize short side, center crop, normalize), open_clip's transform."""

    def __init__(self, config: ImageConfig | None = None):
        self.config = config or ImageConfig()
        from open_clip.transform import image_transform

        self.transform = image_transform(self.config.size, is_train=False, mean=tuple(self.config.mean),
                                         std=tuple(self.config.std),
                                         interpolation=self.config.interpolation)

    def __call__(self, inputs, device=None) -> torch.Tensor:
        x = torch.stack([self.transform(load_image(item)) for item in as_list(inputs)])
        return x.to(device) if device is not None else x


@dataclass
class TextConfig:
    kind: Literal["text"] = "text"
    context_length: int = 77
    tokenizer: str = "ViT-H-14"  # any open_clip model name; all CLIP BPE ones share the vocab


class TextPreprocessor:
    def __init__(self, config: TextConfig | None = None):
        self.config = config or TextConfig()
        import open_clip

        self.tokenizer = open_clip.get_tokenizer(self.config.tokenizer,
                                                 context_length=self.config.context_length)

    def __call__(self, inputs, device=None) -> torch.Tensor:
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise InputError("text input must be a string or a non-empty list of strings")
        x = self.tokenizer(texts)
        return x.to(device) if device is not None else x


PREPROCESS_CONFIGS = {
    "depth": (DepthConfig, DepthPreprocessor),
    "thermal": (ThermalConfig, ThermalPreprocessor),
    "imu": (ImuConfig, ImuPreprocessor),
    "image": (ImageConfig, ImagePreprocessor),
    "text": (TextConfig, TextPreprocessor),
}


def build_preprocessor(data: dict, where: str):
    """A preprocess config mapping (with ``kind``) -> (typed config, preprocessor instance)."""
    from .audio import AudioFbankConfig, AudioPreprocessor
    from .config import ConfigError, from_dict

    table = dict(PREPROCESS_CONFIGS, audio_fbank=(AudioFbankConfig, AudioPreprocessor))
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind not in table:
        raise ConfigError(f"{where}.kind: {kind!r} is not a known preprocessing; known: {sorted(table)}")
    cfg_cls, pre_cls = table[kind]
    cfg = from_dict(cfg_cls, data, where)
    return cfg, pre_cls(cfg)
