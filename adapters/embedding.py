"""Embeddings that know their CLIP space, and the arithmetic adapters need on them.

    sounds = adapters.embed(["dog.wav", "cat.wav"], "audio")          # Embeddings, pocket space
    mixed = adapters.mix([(sounds[0:1], 0.7), (adapters.embed("a beach", "text"), 0.3)])
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

import encoders
from encoders.bridge import Bridge
from encoders.inputs import InputError, as_list, describe
from encoders.spaces import ClipSpace, check_same_space, get_space


@dataclass
class Embeddings:
    """[N, D] unit-norm vectors in one CLIP space, with a label per row."""

    vectors: torch.Tensor
    space: ClipSpace
    labels: list[str] = field(default_factory=list)
    modality: str = "unknown"

    def __post_init__(self):
        self.space = get_space(self.space)
        if self.vectors.ndim == 1:
            self.vectors = self.vectors[None]
        if self.vectors.ndim != 2:
            raise InputError(f"embeddings must be [N, D], got shape {tuple(self.vectors.shape)}")
        if self.vectors.shape[1] != self.space.dim:
            raise InputError(
                f"embeddings are {self.vectors.shape[1]}-d but space {self.space.name} is "
                f"{self.space.dim}-d; pass the space they were computed in (space=...)")
        if not torch.isfinite(self.vectors).all():
            raise InputError("embeddings contain NaN or inf values")
        if not self.labels:
            self.labels = [f"{self.modality}{i}" for i in range(len(self.vectors))]
        if len(self.labels) != len(self.vectors):
            raise InputError(f"got {len(self.labels)} labels for {len(self.vectors)} embeddings")

    def __len__(self) -> int:
        return len(self.vectors)

    def __getitem__(self, idx) -> "Embeddings":
        idx = slice(idx, idx + 1) if isinstance(idx, int) else idx
        rows = torch.arange(len(self))[idx]
        return replace(self, vectors=self.vectors[rows], labels=[self.labels[i] for i in rows.tolist()])

    def normalized(self) -> "Embeddings":
        return replace(self, vectors=F.normalize(self.vectors.float(), dim=-1))

    def to_space(self, space: "str | ClipSpace", bridge: "Bridge | str | os.PathLike | None" = None) -> "Embeddings":
        """Return these embeddings in ``space``: as they are if already there, else through ``bridge``."""
        space = get_space(space)
        if space.name == self.space.name:
            return self
        if bridge is None:
            what = "embedding" if self.modality in ("embedding", "unknown") else f"{self.modality} embedding"
            check_same_space(self.space, space, what)
        if not isinstance(bridge, Bridge):
            bridge = Bridge.load(bridge)
        if bridge.source.name != self.space.name or bridge.target.name != space.name:
            raise InputError(f"bridge maps {bridge.source.name} -> {bridge.target.name}, but "
                             f"{self.space.name} -> {space.name} is needed")
        return replace(self, vectors=bridge(self.vectors), space=space)


def embed(inputs: Any, modality: str, encoder: Any = None, labels: Sequence[str] | None = None,
          **kwargs) -> Embeddings:
    """Files / arrays / strings -> unit-norm ``Embeddings`` with the encoder's space.

    encoder: None (the embedded default), a config name, or a (Multi)ModalityEncoder.
    Labels default to file stems (audio, depth, images) or the strings themselves (text).
    """
    enc = encoders.resolve_encoder(encoder, modality)
    items = [inputs] if isinstance(inputs, str) else (list(inputs) if modality == "text" else as_list(inputs))
    vectors = enc.embed(items, output="unit", **kwargs)
    return Embeddings(vectors.float().cpu(), enc.space, list(labels) if labels else default_labels(items, modality),
                      modality)


def default_labels(items: Sequence[Any], modality: str) -> list[str]:
    out = []
    for i, item in enumerate(items):
        if modality == "text":
            out.append(str(item))
        elif isinstance(item, (str, os.PathLike)):
            out.append(Path(item).stem)
        else:
            out.append(f"{modality}{i}")
    return out


def as_embeddings(x: Any, space: "str | ClipSpace | None" = None, labels: Sequence[str] | None = None,
                  modality: str = "embedding") -> Embeddings:
    """An ``Embeddings``, or a tensor/array plus its ``space`` -> ``Embeddings`` (unit norm)."""
    if isinstance(x, Embeddings):
        return x.normalized() if labels is None else replace(x.normalized(), labels=list(labels))
    if space is None:
        raise InputError("raw embedding tensors need the CLIP space they live in: pass space=... "
                         f"(one of {encoders.list_spaces()}) or use adapters.embed(...)")
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().float().cpu()
    return Embeddings(F.normalize(t if t.ndim > 1 else t[None], dim=-1), get_space(space),
                      list(labels) if labels else [], modality)


def mix(parts: Sequence[tuple[Embeddings, float]], label: str | None = None) -> Embeddings:
    """Weighted sum of unit-norm embeddings (the paper's embedding arithmetic), renormalized.

    Every part must be in the same space. A part with one row is broadcast against parts with N rows.
    """
    if not parts:
        raise InputError("mix() needs at least one (embeddings, weight) pair")
    space = parts[0][0].space
    n = max(len(e) for e, _ in parts)
    total = torch.zeros(n, space.dim)
    for e, w in parts:
        check_same_space(e.space, space, f"{e.modality} embedding in mix()")
        if len(e) not in (1, n):
            raise InputError(f"cannot mix {len(e)} rows with {n} rows; give 1 or {n} rows per part")
        total = total + float(w) * F.normalize(e.vectors.float(), dim=-1)
    if (total.norm(dim=-1) < 1e-8).any():
        raise InputError("the weighted sum is zero (weights cancel out); change the weights")
    names = [label or " + ".join(f"{w:g}*{e.labels[min(i, len(e) - 1)]}" for e, w in parts) for i in range(n)]
    return Embeddings(F.normalize(total, dim=-1), space, names, "mixed")
