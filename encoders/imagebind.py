"""The official ``imagebind_huge.pth``: key map into rebind's module names, and safetensors export.

The checkpoint is one state dict (1311 keys) with prefixes ``modality_preprocessors.<m>.``,
``modality_trunks.<m>.``, ``modality_heads.<m>.`` and ``modality_postprocessors.<m>.``. Only the keys
of the modalities asked for are read (the file is memory-mapped), so loading audio never touches
the 630M-parameter vision tower.

Vision and text become open_clip towers: the vision stem is a Conv3d over 2 repeated frames, which
equals a Conv2d with the kernel summed over time; the heads' Linear weights are open_clip's
transposed ``proj`` / ``text_projection``.
"""
from __future__ import annotations

import re

import torch

VIT_MODALITIES = ("audio", "depth", "thermal", "imu")
_STEM = {"audio": "rgbt_stem", "depth": "depth_stem", "thermal": "rgbt_stem", "imu": "imu_stem"}
_OPEN_CLIP_BLOCK = {"norm_1": "ln_1", "norm_2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
_VIT_BLOCK = {"attn.in_proj_weight": "attn.qkv.weight", "attn.in_proj_bias": "attn.qkv.bias",
              "attn.bias_k": "attn.bias_k", "attn.bias_v": "attn.bias_v",
              "attn.out_proj.weight": "attn.proj.weight", "attn.out_proj.bias": "attn.proj.bias",
              "norm_1.weight": "norm1.weight", "norm_1.bias": "norm1.bias",
              "norm_2.weight": "norm2.weight", "norm_2.bias": "norm2.bias",
              "mlp.fc1.weight": "mlp.fc1.weight", "mlp.fc1.bias": "mlp.fc1.bias",
              "mlp.fc2.weight": "mlp.fc2.weight", "mlp.fc2.bias": "mlp.fc2.bias"}
# keys the reference stores that carry no learned state rebind needs
IGNORED = {"text": ("modality_preprocessors.text.mask",)}


def is_imagebind_state_dict(state: dict) -> bool:
    return any(k.startswith(("modality_trunks.", "modality_preprocessors.")) for k in state)


def imagebind_modalities(state: dict) -> list[str]:
    return sorted({k.split(".")[1] for k in state if k.startswith("modality_trunks.")})


def imagebind_keys(state: dict, modality: str) -> list[str]:
    pattern = re.compile(rf"^modality_(preprocessors|trunks|heads|postprocessors)\.{modality}\.")
    return [k for k in state if pattern.match(k)]


def map_imagebind(state: dict, modality: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Reference keys of one modality -> (rebind state dict, reference keys that had no mapping)."""
    out, unmapped = {}, []
    for key in imagebind_keys(state, modality):
        if key in IGNORED.get(modality, ()):
            continue
        new, value = _map_key(key, state[key], modality)
        if new is None:
            unmapped.append(key)
        else:
            out[new] = value
    return out, unmapped


def _map_key(key: str, value: torch.Tensor, m: str):
    rest = key.split(".", 2)[2]  # drop "modality_xxx.<m>."
    group = key.split(".", 1)[0]
    if m in VIT_MODALITIES:
        if group == "modality_preprocessors":
            stem = _STEM[m]
            table = {f"{stem}.proj.weight": "stem.proj.weight",
                     f"{stem}.norm_layer.weight": "stem.norm.weight",
                     f"{stem}.norm_layer.bias": "stem.norm.bias",
                     "cls_token": "cls_token", "pos_embedding_helper.pos_embed": "pos_embed",
                     "pos_embed": "pos_embed"}
            return table.get(rest), value
        if group == "modality_trunks":
            mt = re.match(r"blocks\.(\d+)\.(.+)$", rest)
            if mt and mt.group(2) in _VIT_BLOCK:
                return f"trunk.blocks.{mt.group(1)}.{_VIT_BLOCK[mt.group(2)]}", value
            return None, value
        if group == "modality_heads":
            head = {"0.weight": "head_norm.weight", "0.bias": "head_norm.bias",
                    "2.weight": "head_proj.weight", "3.weight": "head_proj.weight"}
            return head.get(rest), value
        if group == "modality_postprocessors":
            return ("log_scale" if rest == "1.log_logit_scale" else None), value
    if m == "vision":
        if group == "modality_preprocessors":
            if rest == "rgbt_stem.proj.1.weight":  # Conv3d over 2 identical frames == Conv2d, summed kernel
                return "tower.conv1.weight", value.sum(dim=2)
            if rest == "cls_token":
                return "tower.class_embedding", value.reshape(-1)
            if rest == "pos_embedding_helper.pos_embed":
                return "tower.positional_embedding", value[0]
            return None, value
        if group == "modality_trunks":
            if rest.startswith("pre_transformer_layer.0."):
                return "tower.ln_pre." + rest.rsplit(".", 1)[1], value
            new = _open_clip_block(rest)
            return new, value
        if group == "modality_heads":
            if rest in ("0.weight", "0.bias"):
                return "tower.ln_post." + rest.split(".")[1], value
            if rest == "2.weight":
                return "tower.proj", value.T.contiguous()
        return None, value
    if m == "text":
        if group == "modality_preprocessors":
            if rest == "token_embedding.weight":
                return "tower.token_embedding.weight", value
            if rest == "pos_embed":
                return "tower.positional_embedding", value[0]
            return None, value
        if group == "modality_trunks":
            return _open_clip_block(rest), value
        if group == "modality_heads":
            if rest in ("proj.0.weight", "proj.0.bias"):
                return "tower.ln_final." + rest.rsplit(".", 1)[1], value
            if rest == "proj.1.weight":
                return "tower.text_projection", value.T.contiguous()
            return None, value
        if group == "modality_postprocessors":
            return ("log_scale" if rest == "1.log_logit_scale" else None), value
    return None, value


def _open_clip_block(rest: str) -> str | None:
    mt = re.match(r"blocks\.(\d+)\.(.+)$", rest)
    if not mt:
        return None
    i, name = mt.groups()
    if name.startswith("attn."):
        return f"tower.transformer.resblocks.{i}.{name}"
    for src, dst in _OPEN_CLIP_BLOCK.items():
        if name.startswith(src + "."):
            return f"tower.transformer.resblocks.{i}.{dst}{name[len(src):]}"
    return None
