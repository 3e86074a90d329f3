"""Vision and text towers through open_clip's own classes (CLIP is never re-implemented here).

A tower is built from an open_clip model config -- a built-in name such as ``ViT-H-14`` or an
inline config dict (the pocket CLIP, tiny test CLIPs) -- without building the other tower.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from .model import ModalityEncoder
from .spaces import ClipSpace


@dataclass
class OpenClipTowerConfig:
    arch: Literal["open_clip_vision", "open_clip_text"] = "open_clip_vision"
    open_clip_model: str | None = None
    open_clip_config: dict | None = None
    layer_norm_eps: float | None = None  # ImageBind's vision/text towers use 1e-6, open_clip 1e-5
    scale: float | None = None
    learnable_scale: bool = False
    preprocess: dict = field(default_factory=dict)

    def validate(self, where: str) -> None:
        from .config import ConfigError

        if (self.open_clip_model is None) == (self.open_clip_config is None):
            raise ConfigError(f"{where}: give exactly one of open_clip_model (a built-in open_clip "
                              f"name) or open_clip_config (an inline model config)")


def open_clip_model_config(cfg: OpenClipTowerConfig) -> dict:
    import open_clip

    if cfg.open_clip_config is not None:
        return cfg.open_clip_config
    model_cfg = open_clip.get_model_config(cfg.open_clip_model)
    if model_cfg is None:
        raise KeyError(f"open_clip has no model config named {cfg.open_clip_model!r}; "
                       f"see open_clip.list_models()")
    return model_cfg


def _set_layer_norm_eps(module: nn.Module, eps: float | None) -> None:
    if eps is None:
        return
    for m in module.modules():
        if isinstance(m, nn.LayerNorm):
            m.eps = eps


class OpenClipVision(ModalityEncoder):
    """open_clip ``VisionTransformer`` (or any open_clip visual tower) as a modality encoder."""

    def __init__(self, modality: str, space: ClipSpace, embed_dim: int, cfg: OpenClipTowerConfig,
                 preprocessor=None):
        from open_clip.model import CLIPVisionCfg, _build_vision_tower

        super().__init__(modality, space, embed_dim, preprocessor, scale=cfg.scale,
                         learnable_scale=cfg.learnable_scale)
        model_cfg = open_clip_model_config(cfg)
        if model_cfg["embed_dim"] != embed_dim:
            raise ValueError(f"open_clip config embeds to {model_cfg['embed_dim']}-d, space needs {embed_dim}-d")
        self.config = cfg
        self.tower = _build_vision_tower(embed_dim, CLIPVisionCfg(**model_cfg["vision_cfg"]),
                                         quick_gelu=model_cfg.get("quick_gelu", False))
        _set_layer_norm_eps(self.tower, cfg.layer_norm_eps)
        self.image_size = getattr(self.tower, "image_size", None)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.tower(x)


class OpenClipText(ModalityEncoder):
    """open_clip ``TextTransformer``: tokens [B, context] -> text embedding."""

    input_ndim = 2

    def __init__(self, modality: str, space: ClipSpace, embed_dim: int, cfg: OpenClipTowerConfig,
                 preprocessor=None):
        from open_clip.model import CLIPTextCfg, _build_text_tower

        super().__init__(modality, space, embed_dim, preprocessor, scale=cfg.scale,
                         learnable_scale=cfg.learnable_scale)
        model_cfg = open_clip_model_config(cfg)
        self.config = cfg
        self.tower = _build_text_tower(embed_dim, CLIPTextCfg(**model_cfg["text_cfg"]),
                                       quick_gelu=model_cfg.get("quick_gelu", False))
        _set_layer_norm_eps(self.tower, cfg.layer_norm_eps)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.tower(x.long())


def split_open_clip_state_dict(state: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """An open_clip ``CLIP`` state dict -> {"vision": {...}, "text": {...}} in tower key names."""
    vision, text = {}, {}
    for k, v in state.items():
        if k.startswith("visual."):
            vision["tower." + k[len("visual."):]] = v
        elif k == "logit_scale":
            text["log_scale"] = v
        elif k in ("logit_bias", "attn_mask"):
            continue
        else:
            text["tower." + k] = v
    return {"vision": vision, "text": text}
