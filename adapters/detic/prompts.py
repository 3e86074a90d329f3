"""from_audio / from_depth / from_text / from_embeddings, and finding the detector to prompt."""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Sequence

import torch

import encoders
from encoders.audio import is_silent, load_audio
from encoders.bridge import Bridge
from encoders.inputs import InputError, as_list, describe

from ..embedding import Embeddings, as_embeddings, default_labels
from .base import DEFAULT_THRESHOLD, PromptableDetector, PromptedDetector
from .detections import check_threshold

# Where the embedded default ("pocket") detector is installed, once it has been trained.
DEFAULT_DETECTOR_DIR = Path(__file__).resolve().parent.parent / "weights" / "pocket_detector"

# Audio file types libsndfile reads (by extension); others are refused before decoding.
AUDIO_SUFFIXES = {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au",
                  ".snd", ".caf", ".w64", ".rf64", ".sd2", ".voc", ".htk", ".mat", ".pvf", ".xi", ".avr",
                  ".ircam", ".sf", ".paf", ".nist", ".mpc", ".wve"}

_default_detector: PromptableDetector | None = None
_default_lock = threading.Lock()


def load_detector(detector: Any = None, space: "str | None" = None,
                  device: "str | torch.device | None" = None) -> PromptableDetector:
    """Anything that names a detector -> a promptable detector.

    None: the embedded default (the pocket detector in ``DEFAULT_DETECTOR_DIR``), loaded once.
    A folder written by ``save_detector``; a ``DeticStyleDetector``; an ``OwlDetector`` or
    ``Detectron2Detic``; a transformers OWL model (needs ``space=`` unless it is a public
    checkpoint); a detectron2 Detic model (``space=`` defaults to openai-vit-b-32).
    """
    global _default_detector
    if isinstance(detector, PromptableDetector):
        return detector
    if detector is None:
        with _default_lock:
            if _default_detector is None:
                if not (DEFAULT_DETECTOR_DIR / "config.json").exists():
                    raise RuntimeError(
                        f"the embedded default detector (pocket) is not installed ({DEFAULT_DETECTOR_DIR} is "
                        f"missing). Pass detector= a folder saved with adapters.detic.save_detector, a "
                        f"DeticStyleDetector, adapters.detic.load_owl(...) or "
                        f"adapters.detic.load_detectron2_detic(...).")
                from .model import load_saved_detector

                _default_detector = load_saved_detector(DEFAULT_DETECTOR_DIR, device=device)
            return _default_detector
    if isinstance(detector, (str, os.PathLike)):
        path = Path(detector).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"detector folder '{path}' does not exist (expected a folder written by "
                                    f"adapters.detic.save_detector)")
        from .model import load_saved_detector

        return load_saved_detector(path, device=device)
    if isinstance(detector, torch.nn.Module):
        if hasattr(detector, "class_predictor") and hasattr(detector, "image_embedder"):
            from .owl import OwlDetector

            return OwlDetector(detector, space=space)
        if hasattr(detector, "roi_heads") and hasattr(detector, "proposal_generator"):
            from .detectron2 import PUBLIC_DETIC_SPACE, Detectron2Detic

            return Detectron2Detic(detector, space=space or PUBLIC_DETIC_SPACE)
    raise TypeError(f"cannot use {describe(detector)} as a detector; pass None (the embedded default), a saved "
                    f"detector folder, a DeticStyleDetector, an OWL model or a detectron2 Detic model")


def _labels(items: list, modality: str, names: Sequence[str] | None) -> list[str]:
    if names is None:
        return default_labels(items, modality)
    names = [str(n) for n in ([names] if isinstance(names, str) else names)]
    if len(names) != len(items):
        raise InputError(f"got {len(names)} names for {len(items)} {modality} inputs")
    return names


def _check_audio_file(item: Any) -> None:
    if isinstance(item, (str, os.PathLike)):
        suffix = Path(item).suffix.lower()
        if suffix and suffix not in AUDIO_SUFFIXES:
            raise InputError(f"'{item}' has an unknown audio file type '{suffix}'; readable are "
                             f"{', '.join(sorted(s for s in AUDIO_SUFFIXES if len(s) <= 5))} (what libsndfile "
                             f"decodes). Convert it first, e.g. `ffmpeg -i '{Path(item).name}' -ar 16000 out.wav`")


def from_audio(audio: Any, detector: Any = None, threshold: float = DEFAULT_THRESHOLD,
               names: Sequence[str] | None = None, encoder: Any = None, bridge: "Bridge | str | None" = None,
               sample_rate: int | None = None, silence_db: float = -70.0) -> PromptedDetector:
    """A detector whose classes are these sounds.

    audio: a file / array / tensor, or a list of them (arrays need ``sample_rate`` or (array, rate)).
    detector: see ``load_detector`` (None: the embedded default).
    threshold: keep detections scoring strictly above it (0.9: the paper's overlays).
    names: class names (default: the files' stems).
    encoder: the audio encoder (None: the embedded default; a config name or model); its space must be
        the detector's, or pass ``bridge`` (a ``Bridge`` or its file) from its space into the detector's.
    Silent inputs (RMS below ``silence_db`` dBFS) are refused: they carry no sound to look for.
    """
    threshold = check_threshold(threshold)
    items = as_list(audio)
    labels = _labels(items, "audio", names)
    waves = []
    for item in items:
        _check_audio_file(item)
        wav, rate = load_audio(item, sample_rate)
        if is_silent(wav, silence_db):
            raise InputError(f"audio {describe(item)} is silent (level below {silence_db:g} dBFS): there is no "
                             f"sound to detect; pass a recording with audible content")
        waves.append((wav, rate))
    det = load_detector(detector)
    enc = encoders.resolve_encoder(encoder, "audio")
    vectors = enc.embed(waves, output="unit")
    emb = Embeddings(vectors.float().cpu(), enc.space, labels, "audio")
    return det.prompt(emb, bridge=bridge, threshold=threshold)


def from_depth(depth: Any, detector: Any = None, threshold: float = DEFAULT_THRESHOLD,
               names: Sequence[str] | None = None, encoder: Any = None, bridge: "Bridge | str | None" = None,
               **preprocess) -> PromptedDetector:
    """A detector whose classes are these depth (disparity) maps: files (.npy / images) or arrays.
    ``preprocess`` goes to the depth preprocessing (``input='depth'``, ``focal_length``, ``baseline``)."""
    threshold = check_threshold(threshold)
    items = as_list(depth)
    labels = _labels(items, "depth", names)
    det = load_detector(detector)
    enc = encoders.resolve_encoder(encoder, "depth")
    emb = Embeddings(enc.embed(items, output="unit", **preprocess).float().cpu(), enc.space, labels, "depth")
    return det.prompt(emb, bridge=bridge, threshold=threshold)


def from_text(texts: "str | Sequence[str]", detector: Any = None, threshold: float = DEFAULT_THRESHOLD,
              names: Sequence[str] | None = None, encoder: Any = None,
              bridge: "Bridge | str | None" = None) -> PromptedDetector:
    """A detector whose classes are these texts (the usual open-vocabulary prompt).

    encoder None: the detector's own text tower when it has one (OWL), else the embedded default.
    """
    threshold = check_threshold(threshold)
    items = [texts] if isinstance(texts, str) else list(texts)
    if not items or not all(isinstance(t, str) and t.strip() for t in items):
        raise InputError("texts must be a non-empty string or a list of non-empty strings")
    labels = _labels(items, "text", names)
    det = load_detector(detector)
    if encoder is None and getattr(det, "tokenizer", None) is not None and hasattr(det, "embed_text"):
        emb = det.embed_text(items)
    else:
        enc = encoders.resolve_encoder(encoder, "text")
        emb = Embeddings(enc.embed(items, output="unit").float().cpu(), enc.space, [], "text")
    emb = Embeddings(emb.vectors, emb.space, labels, "text")
    return det.prompt(emb, bridge=bridge, threshold=threshold)


def from_embeddings(embeddings: Any, detector: Any = None, threshold: float = DEFAULT_THRESHOLD,
                    names: Sequence[str] | None = None, space: "str | None" = None,
                    bridge: "Bridge | str | None" = None) -> PromptedDetector:
    """A detector whose classes are these embeddings.

    embeddings: ``adapters.Embeddings`` (they know their space), or a [C, D] array / tensor: in
    ``space`` if given, else taken to be in the detector's space (its dimension is checked).
    """
    threshold = check_threshold(threshold)
    det = load_detector(detector)
    if not isinstance(embeddings, Embeddings) and space is not None:
        embeddings = as_embeddings(embeddings, space=space)
    return det.prompt(embeddings, names=names, bridge=bridge, threshold=threshold)
