"""from_audio / from_depth / from_text / from_image / from_embeddings: inputs -> embeddings -> images."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from encoders.inputs import InputError, as_list, describe

from ..embedding import Embeddings, as_embeddings, embed, mix
from .pipelines import UnclipGenerator, load_pipeline

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
SILENCE_DBFS = -70.0


def from_audio(audio: Any, pipeline: Any = None, encoder: Any = None, *, mix_with: Sequence | None = None,
               norm: "str | float" = "stats", bridge: Any = None, sample_rate: int | None = None,
               allow_silent: bool = False, **generate_kwargs) -> list:
    """Sounds -> images: each sound's embedding conditions an unCLIP pipeline in place of a CLIP image
    (Stable unCLIP) or prompt (Karlo) embedding.

        images = adapters.unclip.from_audio(["dog.wav", "rain.ogg"], pipeline=gen, encoder=enc, seed=0)

    audio: a path (wav/flac/ogg/... as libsndfile reads), an array/tensor with ``sample_rate``, an
        ``(array, rate)`` tuple, or a list of them. Silent clips (below -70 dBFS) are refused unless
        ``allow_silent=True``: they carry nothing to draw.
    pipeline: an ``UnclipGenerator`` (from ``load_pipeline``), a diffusers pipeline, a folder, or None
        for the embedded pocket unCLIP.
    encoder: the audio encoder (config name, MultimodalEncoder or ModalityEncoder; None = default).
        Its space must be the pipeline's, or pass ``bridge=`` (a Bridge or its file) to cross over;
        otherwise the standard mismatch error names both spaces (``encoders.check_same_space``).
    mix_with: ``[(item, weight), ...]`` -- text prompts, image paths/PIL images/arrays, or Embeddings,
        embedded with the same encoder's text/vision towers. Weights are fractions of the mix; the
        sound gets ``1 - sum(weights)``: ``mix_with=[("a beach at sunset", 0.3)]`` is 70% sound.
    norm: "stats" (default: the norm of what the pipeline was trained on, see
        ``UnclipGenerator.target_norm``), "unit", or a fixed number (e.g. 20.0).
    generate_kwargs: ``prompt, negative_prompt, num_images_per_prompt, num_inference_steps,
        guidance_scale, noise_level, generator, seed, height, width`` and other pipeline arguments.
    Returns a list of PIL images, input-major (``num_images_per_prompt`` per sound).
    """
    items = [audio] if isinstance(audio, (str, os.PathLike)) else as_list(audio)
    loaded, labels = [], []
    for item in items:
        wav, rate = _load_sound(item, sample_rate, allow_silent)
        loaded.append((wav, rate))
        labels.append(Path(item).stem if isinstance(item, (str, os.PathLike)) else describe(item))
    emb = embed(loaded, "audio", encoder, labels=labels)
    return _generate(emb, pipeline, encoder, mix_with, norm, bridge, generate_kwargs)


def from_depth(depth: Any, pipeline: Any = None, encoder: Any = None, *, mix_with: Sequence | None = None,
               norm: "str | float" = "stats", bridge: Any = None, input: str | None = None,
               focal_length: float | None = None, baseline: float | None = None, **generate_kwargs) -> list:
    """Depth / disparity maps -> images (see ``from_audio``; ``input``, ``focal_length``, ``baseline``
    as in ``encoders.embed_depth``)."""
    kwargs = {k: v for k, v in (("input", input), ("focal_length", focal_length), ("baseline", baseline))
              if v is not None}
    emb = embed(depth, "depth", encoder, **kwargs)
    return _generate(emb, pipeline, encoder, mix_with, norm, bridge, generate_kwargs)


def from_text(text: "str | Sequence[str]", pipeline: Any = None, encoder: Any = None, *,
              mix_with: Sequence | None = None, norm: "str | float" = "stats", bridge: Any = None,
              **generate_kwargs) -> list:
    """Captions -> images through the encoder's CLIP text tower (the same slot the sounds use)."""
    emb = embed(text, "text", encoder)
    return _generate(emb, pipeline, encoder, mix_with, norm, bridge, generate_kwargs)


def from_image(images: Any, pipeline: Any = None, encoder: Any = None, *, mix_with: Sequence | None = None,
               norm: "str | float" = "stats", bridge: Any = None, **generate_kwargs) -> list:
    """Images -> variations through the encoder's CLIP image tower."""
    emb = embed(images, "vision", encoder)
    return _generate(emb, pipeline, encoder, mix_with, norm, bridge, generate_kwargs)


def from_embeddings(embeddings: Any, pipeline: Any = None, *, space: Any = None, encoder: Any = None,
                    mix_with: Sequence | None = None, norm: "str | float" = "stats", bridge: Any = None,
                    **generate_kwargs) -> list:
    """Precomputed embeddings -> images. ``Embeddings`` carry their space; a raw [N, D] tensor/array is
    taken to be in ``space`` (default: the pipeline's own space, so its width must match)."""
    gen = load_pipeline(pipeline)
    if not isinstance(embeddings, Embeddings):
        embeddings = as_embeddings(embeddings, space=space or gen.space)
    return _generate(embeddings, gen, encoder, mix_with, norm, bridge, generate_kwargs)


# ------------------------------------------------------------------------------------------ helpers

def _load_sound(item: Any, sample_rate: int | None, allow_silent: bool) -> tuple[torch.Tensor, int]:
    from encoders.audio import load_audio

    if isinstance(item, (str, os.PathLike)) and Path(item).suffix.lower() in IMAGE_SUFFIXES:
        raise InputError(f"'{item}' is an image file, not audio; use adapters.unclip.from_image(...) or "
                         f"mix it in with mix_with=[('{item}', weight)]")
    wav, rate = load_audio(item, sample_rate)
    if not allow_silent:
        centred = wav - wav.mean(dim=-1, keepdim=True)  # a DC offset is not sound
        rms = float(centred.pow(2).mean().sqrt())
        level = -math.inf if rms == 0.0 else 20 * math.log10(rms)
        if level < SILENCE_DBFS:
            shown = "digital silence" if rms == 0.0 else f"{level:.0f} dBFS"
            raise InputError(
                f"audio {describe(item)} is silent ({shown}, below {SILENCE_DBFS:.0f} dBFS): there is no sound "
                f"to draw and its embedding would be arbitrary. Check the file/recording, or pass "
                f"allow_silent=True to generate from it anyway")
    return wav, rate


def _mix_part(item: Any, encoder: Any) -> Embeddings:
    if isinstance(item, Embeddings):
        return item
    if isinstance(item, (str, os.PathLike)) and (not isinstance(item, str) or
                                                  Path(item).suffix.lower() in IMAGE_SUFFIXES):
        modality = "vision"
    elif isinstance(item, str):
        modality = "text"
    elif isinstance(item, (np.ndarray, torch.Tensor)) or hasattr(item, "convert"):  # array / PIL image
        modality = "vision"
    else:
        raise InputError(f"cannot mix in a {type(item).__name__}; mix_with takes text prompts, image "
                         f"paths/PIL images/arrays, or adapters.Embeddings")
    try:
        return embed([item] if modality == "vision" else item, modality, encoder)
    except (KeyError, ValueError) as e:
        if isinstance(e, InputError):
            raise
        raise InputError(f"cannot embed the {modality} part {describe(item)!r} of mix_with: {e}. Pass "
                         f"encoder= a config name or MultimodalEncoder that has a {modality} tower, or "
                         f"pass precomputed adapters.Embeddings in mix_with") from None


def apply_mix(main: Embeddings, mix_with: Sequence | None, encoder: Any = None) -> Embeddings:
    """``main`` mixed with ``[(item, weight), ...]``; main's weight is 1 - sum(weights)."""
    if not mix_with:
        return main
    if isinstance(mix_with, tuple) and len(mix_with) == 2 and isinstance(mix_with[1], (int, float)):
        mix_with = [mix_with]
    parts = []
    for entry in mix_with:
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2
                and isinstance(entry[1], (int, float)) and not isinstance(entry[1], bool)):
            raise InputError(f"mix_with takes (item, weight) pairs, e.g. [('a beach at sunset', 0.3)]; "
                             f"got {entry!r}")
        parts.append((_mix_part(entry[0], encoder), float(entry[1])))
    rest = 1.0 - sum(w for _, w in parts)
    if rest <= 0:
        raise InputError(f"the mix_with weights sum to {1 - rest:g}, leaving {rest:g} for the main input; "
                         f"keep their sum below 1, or combine freely with adapters.mix([...]) and "
                         f"from_embeddings")
    return mix([(main, rest)] + parts)


def _generate(emb: Embeddings, pipeline: Any, encoder: Any, mix_with, norm, bridge, generate_kwargs) -> list:
    gen = pipeline if isinstance(pipeline, UnclipGenerator) else load_pipeline(pipeline)
    emb = apply_mix(emb, mix_with, encoder)
    return gen.generate(emb, norm=norm, bridge=bridge, **generate_kwargs)
