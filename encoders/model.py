"""Modality encoders: input tensor -> embedding in a CLIP space.

``ModalityEncoder`` is the shared base: it owns the space, the preprocessing and the output
postprocessing (L2 normalize, optional fixed scale, mean over clips). Subclasses implement
``encode(x) -> [B, embed_dim]`` (the head output before normalization).

``ImageBindViT`` is the ImageBind trunk for audio / depth / thermal / IMU: patch stem (+LayerNorm),
CLS token, learned positions, pre-norm bias_kv transformer, LayerNorm head on CLS, bias-free Linear.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .spaces import ClipSpace
from .transformer import Transformer

Output = Literal["unit", "scaled", "raw"]


class ModalityEncoder(nn.Module):
    """Base class. ``forward(x, output)`` takes the preprocessed tensor.

    output="unit": L2-normalized embedding (what most users want for cosine similarity);
    "scaled": the reference output (unit * fixed scale, averaged over clips -- ImageBind's exact output);
    "raw": head output before normalization (averaged over clips).
    Inputs with one more dimension than ``input_ndim`` carry several clips per item ([B, S, ...]);
    their per-clip embeddings are averaged, as ImageBind does for audio.
    """

    input_ndim: int = 4

    def __init__(self, modality: str, space: ClipSpace, embed_dim: int, preprocessor: Any = None,
                 scale: float | None = None, learnable_scale: bool = False, max_scale: float = 100.0):
        super().__init__()
        if embed_dim != space.dim:
            raise ValueError(f"{modality} encoder outputs {embed_dim}-d embeddings but its space "
                             f"{space} is {space.dim}-d; fix embed_dim or space in the config")
        self.modality, self.space, self.embed_dim = modality, space, embed_dim
        self.preprocessor = preprocessor
        self.max_scale = max_scale
        if scale is None:
            self.log_scale = None
        elif learnable_scale:
            self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))
        else:
            self.register_buffer("log_scale", torch.tensor(math.log(scale)))

    @property
    def scale(self) -> float | None:
        return None if self.log_scale is None else float(self._scale())

    def _scale(self) -> torch.Tensor:
        return torch.clip(self.log_scale.exp(), max=self.max_scale)

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor, output: Output = "unit") -> torch.Tensor:
        if output not in ("unit", "scaled", "raw"):
            raise ValueError(f"output={output!r}: expected 'unit', 'scaled' or 'raw'")
        param = next(self.parameters(), None)
        if param is not None and x.is_floating_point():
            x = x.to(param.device, param.dtype)
        elif param is not None:
            x = x.to(param.device)
        multi = x.ndim == self.input_ndim + 1
        if not multi and x.ndim != self.input_ndim:
            raise ValueError(f"{self.modality} encoder expects a tensor of {self.input_ndim} dims "
                             f"(or {self.input_ndim + 1} with a clip axis), got shape {tuple(x.shape)}; "
                             f"use .embed(...) to preprocess raw inputs")
        if multi:
            b, s = x.shape[:2]
            x = x.flatten(0, 1)
        z = self.encode(x)
        if output != "raw":
            z = F.normalize(z, dim=-1)
            if self.log_scale is not None:
                z = self._scale() * z
        if multi:
            z = z.view(b, s, -1).mean(dim=1)
        if output == "unit":
            z = F.normalize(z, dim=-1)
        return z

    def preprocess(self, inputs, **kwargs) -> torch.Tensor:
        if self.preprocessor is None:
            raise RuntimeError(f"{self.modality} encoder has no preprocessor; pass tensors to forward()")
        return self.preprocessor(inputs, **kwargs)

    @torch.inference_mode()
    def embed(self, inputs, output: Output = "unit", batch_size: int = 32, progress: bool = False,
              **preprocess_kwargs) -> torch.Tensor:
        """Raw inputs (paths, arrays, ...) -> [N, D] embeddings, preprocessed and run in batches."""
        from .inputs import as_list

        items = [inputs] if isinstance(inputs, str) else as_list(inputs)
        if self.modality == "text":
            items = [inputs] if isinstance(inputs, str) else list(inputs)
        chunks = range(0, len(items), batch_size)
        if progress:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc=f"embed {self.modality}", unit="batch")
        outs = [self(self.preprocess(items[i: i + batch_size], **preprocess_kwargs), output=output)
                for i in chunks]
        return torch.cat(outs)


# ---------------------------------------------------------------------------------- ImageBind ViT

@dataclass
class StemConfig:
    kind: Literal["patch2d", "patch1d"] = "patch2d"
    in_channels: int = 1
    kernel: int = 16
    stride: int | None = None  # defaults to kernel
    input_size: list[int] = field(default_factory=lambda: [224, 224])  # [H, W] or [C, T] for patch1d


@dataclass
class ViTConfig:
    arch: Literal["vit"] = "vit"
    width: int = 768
    layers: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    drop_path: float = 0.0
    bias_kv: bool = True
    head_dropout: float = 0.0
    scale: float | None = None
    stem: StemConfig = field(default_factory=StemConfig)
    preprocess: dict = field(default_factory=dict)
    grad_checkpointing: bool = False


class PatchStem(nn.Module):
    """Conv2d patches (audio/depth/thermal) or Linear over 1-D patches (IMU), then LayerNorm."""

    def __init__(self, cfg: StemConfig, width: int):
        super().__init__()
        self.kind, self.kernel = cfg.kind, cfg.kernel
        stride = cfg.stride or cfg.kernel
        if cfg.kind == "patch2d":
            self.proj = nn.Conv2d(cfg.in_channels, width, cfg.kernel, stride, bias=False)
            h, w = cfg.input_size
            self.grid = ((h - cfg.kernel) // stride + 1, (w - cfg.kernel) // stride + 1)
            self.expected = (cfg.in_channels, h, w)
        else:
            c, t = cfg.input_size
            self.proj = nn.Linear(c * cfg.kernel, width, bias=False)
            self.grid = (t // cfg.kernel,)
            self.expected = (c, t)
        self.num_patches = math.prod(self.grid)
        self.norm = nn.LayerNorm(width)  # eps 1e-5 in the stems, as in ImageBind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.expected:
            raise ValueError(f"stem expects inputs of shape [B, {', '.join(map(str, self.expected))}], "
                             f"got {tuple(x.shape)}; preprocess inputs with the encoder's preprocessor")
        if self.kind == "patch2d":
            x = self.proj(x).flatten(2).transpose(1, 2)
        else:  # [B, C, T] -> [B, T/k, C*k], channel-major inside a patch
            b, c, _ = x.shape
            x = x.unfold(-1, self.kernel, self.kernel).permute(0, 2, 1, 3).reshape(b, -1, c * self.kernel)
            x = self.proj(x)
        return self.norm(x)


class ImageBindViT(ModalityEncoder):
    def __init__(self, modality: str, space: ClipSpace, embed_dim: int, cfg: ViTConfig, preprocessor=None):
        super().__init__(modality, space, embed_dim, preprocessor, scale=cfg.scale)
        self.config = cfg
        self.input_ndim = 3 if cfg.stem.kind == "patch1d" else 4
        self.stem = PatchStem(cfg.stem, cfg.width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.stem.num_patches + 1, cfg.width))
        self.trunk = Transformer(cfg.width, cfg.layers, cfg.heads, cfg.mlp_ratio, cfg.bias_kv,
                                 cfg.drop_path, eps=1e-6, grad_checkpointing=cfg.grad_checkpointing)
        self.head_norm = nn.LayerNorm(cfg.width, eps=1e-6)
        self.head_dropout = nn.Dropout(cfg.head_dropout)
        self.head_proj = nn.Linear(cfg.width, embed_dim, bias=False)
        with torch.no_grad():  # OpenCLIP-style init, as ImageBind's preprocessors
            nn.init.normal_(self.cls_token, std=cfg.width ** -0.5)
            nn.init.normal_(self.pos_embed, std=cfg.width ** -0.5 if cfg.stem.kind == "patch2d" else 0.01)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.stem(x)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1) + self.pos_embed
        tokens = self.trunk(tokens)
        return self.head_proj(self.head_dropout(self.head_norm(tokens[:, 0])))
