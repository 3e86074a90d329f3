"""Checks on what people hand the demos, with messages a person can act on.

Uploads reach the demos as files of any name and content; these checks run before any model does,
so a wrong file gets one sentence saying what was wrong and what to do, never a stack trace.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_SOUND_SECONDS = 30.0
SILENCE_DBFS = -70.0  # the adapters' threshold: below it a clip holds no usable sound
COMMON_AUDIO_TYPES = "WAV, FLAC, OGG, Opus, MP3 or AIFF"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


class DemoInputError(ValueError):
    """An input the demos cannot use; the message is meant for the person who gave it."""


@dataclass(frozen=True)
class Sound:
    """A sound file that passed the checks."""

    path: Path
    seconds: float
    sample_rate: int
    channels: int

    @property
    def name(self) -> str:
        """The label the demos give it: the file name without its extension."""
        return self.path.stem


def _audio_suffixes() -> set[str]:
    from adapters.detic.prompts import AUDIO_SUFFIXES

    return AUDIO_SUFFIXES


def check_sound(path: Any, max_seconds: float = MAX_SOUND_SECONDS) -> Sound:
    """A readable, non-silent sound file of at most ``max_seconds`` -> ``Sound``; else ``DemoInputError``."""
    if path is None or (isinstance(path, str) and not path.strip()):
        raise DemoInputError("No sound given: upload or record a sound, or click one of the examples.")
    if not isinstance(path, (str, os.PathLike)):
        raise DemoInputError(f"Expected a sound file, got {type(path).__name__}.")
    p = Path(path)
    shown = p.name
    if not p.is_file():
        raise DemoInputError(f"The sound file '{shown}' does not exist.")
    suffix = p.suffix.lower()
    readable = COMMON_AUDIO_TYPES
    if suffix in IMAGE_SUFFIXES:
        raise DemoInputError(f"'{shown}' is an image, not a sound. Use a sound file: {readable}.")
    if suffix and suffix not in _audio_suffixes():
        raise DemoInputError(f"'{shown}' is not a sound file this demo reads (type '{suffix}'). "
                             f"Use one of: {readable}.")
    if p.stat().st_size == 0:
        raise DemoInputError(f"The sound file '{shown}' is empty (0 bytes).")
    import numpy as np
    import soundfile as sf

    try:
        info = sf.info(str(p))
    except Exception:  # libsndfile: LibsndfileError / RuntimeError / TypeError, depending on the damage
        raise DemoInputError(f"Could not read '{shown}' as audio: the file is damaged or is not really "
                             f"{suffix.lstrip('.') or 'audio'}. Try another file, or convert it to WAV.") from None
    seconds = info.frames / info.samplerate if info.samplerate else 0.0
    if info.frames <= 0 or seconds <= 0:
        raise DemoInputError(f"'{shown}' holds no audio samples.")
    if seconds > max_seconds:
        raise DemoInputError(f"'{shown}' is {seconds:.1f} s long; this demo takes sounds up to "
                             f"{max_seconds:g} s. Trim it to the part you want and upload that.")
    try:
        data, _ = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception:
        raise DemoInputError(f"Could not decode '{shown}': the audio data is damaged. "
                             f"Try another file, or convert it to WAV.") from None
    centred = data - data.mean(axis=0, keepdims=True)  # a DC offset is not sound
    rms = float(np.sqrt(np.mean(centred.astype(np.float64) ** 2)))
    if not math.isfinite(rms):
        raise DemoInputError(f"'{shown}' contains invalid samples (NaN or infinity).")
    if rms == 0.0 or 20 * math.log10(rms) < SILENCE_DBFS:
        raise DemoInputError(f"'{shown}' is silent: there is no sound in it to look for or to paint. "
                             f"Record again closer to the source, or pick another file.")
    return Sound(p, seconds, int(info.samplerate), int(info.channels))


def check_image(path: Any, what: str = "image"):
    """A readable image file (or PIL image) -> RGB PIL image; else ``DemoInputError``."""
    if path is None or (isinstance(path, str) and not path.strip()):
        raise DemoInputError(f"No {what} given: upload one, or click one of the examples.")
    if hasattr(path, "convert"):
        return path.convert("RGB")
    p = Path(path)
    if not p.is_file():
        raise DemoInputError(f"The {what} file '{p.name}' does not exist.")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(p) as im:
            im.load()
            if min(im.size) < 2:
                raise DemoInputError(f"The {what} '{p.name}' is only {im.width}x{im.height} pixels.")
            if im.mode in ("RGBA", "LA", "P"):
                rgba = im.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return Image.alpha_composite(background, rgba).convert("RGB")
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as e:
        if isinstance(e, DemoInputError):
            raise
        raise DemoInputError(f"Could not read '{p.name}' as an image. Upload a PNG, JPEG or WebP picture.") from None
