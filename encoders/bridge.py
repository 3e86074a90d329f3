"""A linear map from one CLIP space to another (fitted by ``python -m pretrain bridge``).

Public Detic models classify with 512-d OpenAI ViT-B/32 text embeddings while ImageBind audio lives
in 1024-d OpenCLIP ViT-H/14; a map fitted on IMAGE embeddings of both towers carries other
modalities across (they share the image space). ``y = normalize((x - source_mean) @ W + target_mean)``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .spaces import ClipSpace, get_space


@dataclass
class Bridge:
    source: ClipSpace
    target: ClipSpace
    weight: torch.Tensor  # [source.dim, target.dim]
    source_mean: torch.Tensor  # [source.dim]
    target_mean: torch.Tensor  # [target.dim]
    method: str = "ridge"
    info: dict | None = None

    def __post_init__(self):
        self.source, self.target = get_space(self.source), get_space(self.target)
        if tuple(self.weight.shape) != (self.source.dim, self.target.dim):
            raise ValueError(f"bridge weight has shape {tuple(self.weight.shape)}, expected "
                             f"({self.source.dim}, {self.target.dim}) for {self.source.name} -> {self.target.name}")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.source.dim:
            raise ValueError(f"bridge {self.source.name} -> {self.target.name} takes {self.source.dim}-d "
                             f"embeddings, got {x.shape[-1]}-d")
        w = self.weight.to(x.device, torch.float32)
        y = (F.normalize(x.float(), dim=-1) - self.source_mean.to(x.device)) @ w + self.target_mean.to(x.device)
        return F.normalize(y, dim=-1)

    def save(self, path: "str | os.PathLike") -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        save_file({"weight": self.weight.contiguous().float(), "source_mean": self.source_mean.float(),
                   "target_mean": self.target_mean.float()}, str(tmp),
                  metadata={"source": self.source.name, "target": self.target.name, "method": self.method,
                            "info": json.dumps(self.info or {})})
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: "str | os.PathLike") -> "Bridge":
        from safetensors import safe_open

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"bridge file '{path}' does not exist; fit one with "
                                    f"`python -m pretrain bridge --source ... --target ... --out {path.name}`")
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if "source" not in meta or "target" not in meta:
            raise ValueError(f"'{path}' is not a rebind bridge (no source/target space in its metadata)")
        return cls(meta["source"], meta["target"], tensors["weight"], tensors["source_mean"],
                   tensors["target_mean"], meta.get("method", "ridge"), json.loads(meta.get("info", "{}")))
