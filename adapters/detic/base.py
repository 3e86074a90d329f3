"""What every detector backend shares: its CLIP space, the classifier swap, and ``detect``.

A backend is a detector whose class head is a dot product with a matrix of CLIP embeddings.
It mixes in ``PromptableDetector`` and provides:

    space: ClipSpace                       the CLIP space its class embeddings live in
    class_names: list[str]                 one name per class now installed
    get_class_embeddings() -> [C, D]       the unit class embeddings now installed (a copy)
    _classifier_state() -> object          everything the swap touches, to put back exactly
    _restore_classifier_state(state)
    _classifier_token() -> tuple           the tensor objects now installed (identity, not value)
    _install_class_embeddings(unit [C, D], names)   through a registered buffer
    _detect_images(images: list[PIL RGB], threshold) -> list[dict(boxes, scores, labels[, masks])]

The mixin gives ``prompt`` / ``prompted`` / ``set_class_embeddings`` / ``detect`` on top.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from encoders.bridge import Bridge
from encoders.inputs import InputError
from encoders.spaces import ClipSpace

from ..embedding import Embeddings
from .detections import Detections, as_image_list, check_threshold, read_image

DEFAULT_THRESHOLD = 0.9  # the ImageBind paper's overlays (Figure 5)

# One lock for every swap + forward: a prompt is installed on a shared model for the duration of a call.
_SWAP_LOCK = threading.RLock()


class PromptableDetector:
    """Mixin for detector backends (see the module docstring for what a backend implements)."""

    space: ClipSpace
    class_names: list[str]
    has_masks: bool = False

    # ----------------------------------------------------------------------------- to implement
    def get_class_embeddings(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _classifier_state(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _restore_classifier_state(self, state: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _classifier_token(self) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def _install_class_embeddings(self, vectors: torch.Tensor, names: list[str]) -> None:  # pragma: no cover
        raise NotImplementedError

    def _detect_images(self, images: list, threshold: float) -> list[dict]:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------------------- provided
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_embeddings_from(self, embeddings: Any, names: Sequence[str] | None = None,
                              bridge: "Bridge | str | None" = None) -> Embeddings:
        """``Embeddings`` (any space, carried over by ``bridge``) or a [C, D] array in this detector's
        space -> unit ``Embeddings`` in ``self.space``; refuses other spaces and dimensions."""
        if isinstance(embeddings, Embeddings):
            emb = embeddings.to_space(self.space, bridge).normalized()
        else:
            t = embeddings.detach() if isinstance(embeddings, torch.Tensor) else torch.as_tensor(np.asarray(embeddings))
            t = t.float().cpu()
            t = t[None] if t.ndim == 1 else t
            if t.ndim != 2 or t.shape[1] != self.space.dim:
                raise InputError(
                    f"class embeddings of shape {tuple(t.shape)} do not fit this detector: it classifies in "
                    f"CLIP space {self.space}, so it needs [C, {self.space.dim}]. Compute them with an "
                    f"encoder trained against the {self.space.name} image tower, or pass "
                    f"adapters.Embeddings (which know their space) with a bridge= fitted by "
                    f"`python -m pretrain bridge --source <their space> --target {self.space.name}`.")
            if (t.norm(dim=-1) < 1e-8).any():
                raise InputError("a class embedding is all zeros; it has no direction to classify with")
            emb = Embeddings(F.normalize(t, dim=-1), self.space, [], "embedding")
        if len(emb) == 0:
            raise InputError("need at least one class embedding")
        if names is not None:
            names = [str(n) for n in names]
            if len(names) != len(emb):
                raise InputError(f"got {len(names)} names for {len(emb)} class embeddings")
            emb = Embeddings(emb.vectors, emb.space, names, emb.modality)
        return emb

    def set_class_embeddings(self, embeddings: Any, names: Sequence[str] | None = None,
                             bridge: "Bridge | str | None" = None) -> None:
        """Install classes for good (e.g. a training vocabulary). For a restorable swap use ``prompt``."""
        emb = self.class_embeddings_from(embeddings, names, bridge)
        with _SWAP_LOCK:
            self._install_checked(emb)

    def prompt(self, embeddings: Any, names: Sequence[str] | None = None, bridge: "Bridge | str | None" = None,
               threshold: float = DEFAULT_THRESHOLD) -> "PromptedDetector":
        """Swap these classes in now; ``.restore()`` (or leaving a ``with`` block) puts the old ones back."""
        return PromptedDetector(self, self.class_embeddings_from(embeddings, names, bridge), threshold)

    @contextmanager
    def prompted(self, embeddings: Any, names: Sequence[str] | None = None,
                 bridge: "Bridge | str | None" = None,
                 threshold: float = DEFAULT_THRESHOLD) -> Iterator["PromptedDetector"]:
        """``with detector.prompted(sounds): detector.detect(img)`` -- restored on exit, also on errors."""
        prompted = self.prompt(embeddings, names, bridge, threshold)
        try:
            yield prompted
        finally:
            prompted.restore()

    def detect(self, images: Any, threshold: float = DEFAULT_THRESHOLD) -> "Detections | list[Detections]":
        """Image (path / PIL / array) or list of images -> ``Detections`` (or a list of them)."""
        threshold = check_threshold(threshold)
        items, single = as_image_list(images)
        pil = [read_image(item) for item in items]
        with _SWAP_LOCK:
            if self.num_classes == 0:
                raise RuntimeError("this detector has no classes yet; prompt it first, e.g. "
                                   "adapters.detic.from_audio('dog.wav', detector=...) or "
                                   "detector.prompted(embeddings)")
            names = list(self.class_names)
            raw = self._detect_images(pil, threshold)
        out = [Detections(r["boxes"].float().cpu(), r["scores"].float().cpu(), r["labels"].long().cpu(), names,
                          img.size, None if r.get("masks") is None else r["masks"].bool().cpu())
               for r, img in zip(raw, pil)]
        return out[0] if single else out

    def _install_checked(self, emb: Embeddings) -> None:
        """Install, or leave everything as it was if installing fails half-way."""
        state = self._classifier_state()
        try:
            self._install_class_embeddings(emb.vectors, list(emb.labels))
        except BaseException:
            self._restore_classifier_state(state)
            raise


class PromptedDetector:
    """A detector whose classes are given embeddings (sounds, depth maps, texts, ...).

    Made by ``adapters.detic.from_audio`` & co. or ``detector.prompt(...)``: the embeddings are
    swapped into the detector's classifier buffer at once. ``restore()`` (or the end of a ``with``
    block) puts back exactly what was there. ``detect`` always uses this prompt's classes, even
    while another prompt holds the detector.
    """

    def __init__(self, detector: PromptableDetector, embeddings: Embeddings,
                 threshold: float = DEFAULT_THRESHOLD):
        self.detector = detector
        self.embeddings = embeddings
        self.threshold = check_threshold(threshold)
        with _SWAP_LOCK:
            self._previous = detector._classifier_state()
            detector._install_checked(embeddings)
            self._token = detector._classifier_token()
        self.active = True

    @property
    def class_names(self) -> list[str]:
        return list(self.embeddings.labels)

    @property
    def space(self) -> ClipSpace:
        return self.detector.space

    def _is_installed(self) -> bool:
        now = self.detector._classifier_token()
        return len(now) == len(self._token) and all(a is b for a, b in zip(now, self._token))

    def detect(self, images: Any, threshold: float | None = None) -> "Detections | list[Detections]":
        threshold = self.threshold if threshold is None else threshold
        with _SWAP_LOCK:
            if self.active and self._is_installed():
                return self.detector.detect(images, threshold)
            state = self.detector._classifier_state()  # another prompt holds the detector: borrow it
            try:
                self.detector._install_class_embeddings(self.embeddings.vectors, self.class_names)
                return self.detector.detect(images, threshold)
            finally:
                self.detector._restore_classifier_state(state)

    def restore(self) -> None:
        """Put back the classes the detector had before this prompt (no-op when already restored)."""
        with _SWAP_LOCK:
            if not self.active:
                return
            if not self._is_installed():
                raise RuntimeError("another prompt (or set_class_embeddings) changed this detector's classes "
                                   "after this one and is still in place; restore prompts in reverse order "
                                   "(with-blocks do this for you)")
            self.detector._restore_classifier_state(self._previous)
            self.active = False

    def __enter__(self) -> "PromptedDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def __repr__(self) -> str:
        state = "active" if self.active else "restored"
        return (f"PromptedDetector({type(self.detector).__name__}, {len(self.embeddings)} classes "
                f"{self.class_names[:4]}{'...' if len(self.embeddings) > 4 else ''}, space={self.space.name}, "
                f"threshold={self.threshold}, {state})")
