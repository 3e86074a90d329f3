"""Prompt open-vocabulary detectors with sounds (and depth, text, any CLIP-space embedding).

    import adapters.detic
    detector = adapters.detic.from_audio(["dog.wav", "doorbell.wav"])   # classes: dog, doorbell
    found = detector.detect("hall.jpg")                                  # threshold 0.9 (the paper's)
    found.draw("hall.jpg").save("hall_boxes.png"); print(found.to_json())
    detector.restore()                                                   # or: with ... as detector:

A detector classifies each box against a matrix of CLIP embeddings (Detic's zero-shot head).
The sounds' embeddings -- computed in the detector's CLIP space, L2-normalised -- are swapped
into that matrix through a registered buffer; the previous matrix is put back exactly on
``restore()`` / at the end of a ``with`` block, also after errors.

Backends (one interface: ``space``, ``get_class_embeddings``, ``prompt``/``prompted``, ``detect``):
  * ``DeticStyleDetector`` -- rebind's own, on torchvision (trainable; the embedded default);
  * ``load_detectron2_detic`` -- real Detic models, when detectron2 and Detic are installed;
  * ``load_owl`` / ``OwlDetector`` -- OWLv2 / OWL-ViT from transformers.
"""
from __future__ import annotations

from .base import DEFAULT_THRESHOLD, PromptableDetector, PromptedDetector
from .detections import Detections
from .owl import OWL_SPACES, OwlDetector, load_owl  # registers the OWL CLIP spaces; transformers loads lazily
from .prompts import (DEFAULT_DETECTOR_DIR, from_audio, from_depth, from_embeddings, from_text,
                      load_detector)

__all__ = [
    "from_audio", "from_depth", "from_text", "from_embeddings", "load_detector", "save_detector",
    "Detections", "PromptedDetector", "PromptableDetector", "DeticStyleDetector", "DeticStyleConfig",
    "OwlDetector", "load_owl", "Detectron2Detic", "load_detectron2_detic", "find_zero_shot_classifiers",
    "DEFAULT_THRESHOLD", "DEFAULT_DETECTOR_DIR", "OWL_SPACES",
]

# torchvision's detection models and detectron2 load on first use, not on import.
_LAZY = {
    "DeticStyleDetector": "model", "DeticStyleConfig": "model", "save_detector": "model",
    "Detectron2Detic": "detectron2", "load_detectron2_detic": "detectron2", "find_zero_shot_classifiers": "detectron2",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
