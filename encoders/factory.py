"""One registry of encoder configs and one factory, in the style of open_clip.

    model = encoders.create("imagebind_huge", modalities=("audio",), checkpoint="imagebind_huge.pth")
    emb = model.embed("audio", ["dog.wav"])            # [1, 1024], unit norm

A config (``encoders/configs/<name>.json``) names its CLIP space and, per modality, an
architecture and its preprocessing. Tiny twins (``imagebind_test``) go through the same path.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from . import imagebind as ib
from .config import ConfigError, from_dict
from .convnet import AudioConvNet, ConvNetConfig
from .model import ImageBindViT, ModalityEncoder, ViTConfig
from .openclip_towers import OpenClipText, OpenClipTowerConfig, OpenClipVision, split_open_clip_state_dict
from .preprocess import build_preprocessor
from .spaces import ClipSpace, get_space, register_space

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "configs"
WEIGHTS_DIR = Path(__file__).parent / "weights"
MODALITIES = ("vision", "text", "audio", "depth", "thermal", "imu")

ARCHS: dict[str, tuple[type, type[ModalityEncoder]]] = {
    "vit": (ViTConfig, ImageBindViT),
    "convnet": (ConvNetConfig, AudioConvNet),
    "open_clip_vision": (OpenClipTowerConfig, OpenClipVision),
    "open_clip_text": (OpenClipTowerConfig, OpenClipText),
}


class CheckpointError(RuntimeError):
    """A checkpoint does not fit the model; the message lists what is missing/unexpected/mis-shaped."""


@dataclass
class EncoderConfig:
    space: str
    modalities: dict
    embed_dim: int | None = None
    weights: str | None = None  # default checkpoint, relative to encoders/weights/
    description: str = ""
    name: str = ""
    space_info: dict | None = None  # the space's definition, so a saved encoder of a custom space loads anywhere


_CONFIGS: dict[str, dict] = {}


def _load_builtin_configs() -> None:
    for path in sorted(CONFIG_DIR.glob("*.json")):
        _CONFIGS.setdefault(path.stem, json.loads(path.read_text()))


def register_config(config: "str | os.PathLike | dict", name: str | None = None) -> str:
    """Add a config (a JSON file path or a dict) to the registry; returns its name."""
    if isinstance(config, (str, os.PathLike)) and Path(config).suffix == ".json":
        path = Path(config)
        data = json.loads(path.read_text())
        name = name or data.get("name") or path.stem
    elif isinstance(config, dict):
        data = copy.deepcopy(config)
        name = name or data.get("name")
        if not name:
            raise ConfigError("register_config(dict) needs a name: pass name=... or a 'name' key")
    else:
        raise ConfigError(f"register_config expects a .json path or a dict, got {config!r}")
    parse_config(data, name)  # validate now, not at first use
    _CONFIGS[name] = data
    return name


def list_models() -> list[str]:
    _load_builtin_configs()
    return sorted(_CONFIGS)


def get_config(name: str) -> dict:
    _load_builtin_configs()
    if name not in _CONFIGS:
        raise KeyError(f"unknown encoder config {name!r}; available: {', '.join(sorted(_CONFIGS))}. "
                       f"Register your own with encoders.register_config(path_or_dict).")
    return copy.deepcopy(_CONFIGS[name])


def parse_config(data: dict, name: str) -> tuple[EncoderConfig, ClipSpace, dict]:
    data = {k: v for k, v in data.items() if k != "name"}
    cfg = from_dict(EncoderConfig, dict(data, name=name), f"encoder config {name!r}")
    try:
        space = get_space(cfg.space)
    except KeyError as e:
        if not cfg.space_info:
            raise ConfigError(f"encoder config {name!r}.space: {e.args[0]}") from None
        info = dict(cfg.space_info, name=cfg.space)
        info["aliases"] = tuple(info.get("aliases", ()))
        space = register_space(from_dict(ClipSpace, info, f"encoder config {name!r}.space_info"))
    if cfg.embed_dim is not None and cfg.embed_dim != space.dim:
        raise ConfigError(f"encoder config {name!r}: embed_dim {cfg.embed_dim} differs from the "
                          f"{space.dim}-d of its space {space.name}")
    parsed = {}
    for modality, mcfg in cfg.modalities.items():
        where = f"encoder config {name!r}.modalities.{modality}"
        if modality not in MODALITIES:
            raise ConfigError(f"{where}: unknown modality; expected one of {MODALITIES}")
        arch = mcfg.get("arch") if isinstance(mcfg, dict) else None
        if arch not in ARCHS:
            raise ConfigError(f"{where}.arch: {arch!r} is not a known architecture; known: {sorted(ARCHS)}")
        parsed[modality] = from_dict(ARCHS[arch][0], mcfg, where)
        if parsed[modality].preprocess:
            build_preprocessor(parsed[modality].preprocess, where + ".preprocess")
    return cfg, space, parsed


class MultimodalEncoder(nn.Module):
    """The encoders of one config, one per modality, sharing a CLIP space."""

    def __init__(self, name: str, space: ClipSpace, encoders: dict[str, ModalityEncoder], config: dict):
        super().__init__()
        self.name, self.space, self.config = name, space, config
        self.encoders = nn.ModuleDict(encoders)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.encoders.keys())

    def __getitem__(self, modality: str) -> ModalityEncoder:
        if modality not in self.encoders:
            raise KeyError(f"encoder {self.name!r} was built without modality {modality!r} "
                           f"(built: {list(self.encoders)}); pass modalities=(..., {modality!r}) to create()")
        return self.encoders[modality]

    def forward(self, inputs: dict[str, torch.Tensor], output: str = "unit") -> dict[str, torch.Tensor]:
        return {m: self[m](x, output=output) for m, x in inputs.items()}

    def embed(self, modality: str, inputs: Any, **kwargs) -> torch.Tensor:
        return self[modality].embed(inputs, **kwargs)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, space={self.space}"


def create(name: "str | os.PathLike | dict", modalities: Iterable[str] | None = None, checkpoint: Any = None,
           device: "str | torch.device | None" = None, dtype: torch.dtype | None = None,
           strict: bool = True) -> MultimodalEncoder:
    """Build the encoders of a registered config, a config dict, or a saved encoder folder.

    modalities: which encoders to build (default: all in the config); the others are never allocated.
    checkpoint: None -> the config's bundled weights if it ships any, else random init (warned);
        False -> random init; a path -> the official ``imagebind_huge.pth``, an open_clip CLIP state
        dict, a rebind ``.safetensors`` file, or a directory of per-modality safetensors
        (``python -m encoders convert``).
    """
    if isinstance(name, dict):
        data, cname = copy.deepcopy(name), name.get("name", "custom")
    elif Path(str(name)).expanduser().is_dir():  # a saved encoder: config.json + <modality>.safetensors
        folder = Path(str(name)).expanduser()
        if not (folder / "config.json").exists():
            raise FileNotFoundError(f"'{folder}' has no config.json; it is not a saved rebind encoder "
                                    f"(save one with encoders.save_modalities(model, folder))")
        data = json.loads((folder / "config.json").read_text())
        cname = data.get("name") or folder.name
        if checkpoint is None:
            checkpoint = folder
    else:
        data, cname = get_config(str(name)), str(name)
    cfg, space, parsed = parse_config(data, cname)
    wanted = list(modalities) if modalities is not None else list(parsed)
    if isinstance(modalities, str):
        wanted = [modalities]
    for m in wanted:
        if m not in parsed:
            raise ValueError(f"encoder config {cname!r} has no {m!r} modality; it has {list(parsed)}")
    encoders = {}
    for m in wanted:
        mcfg = parsed[m]
        pre = build_preprocessor(mcfg.preprocess, f"{cname}.{m}.preprocess")[1] if mcfg.preprocess else None
        encoders[m] = ARCHS[mcfg.arch][1](m, space, space.dim, mcfg, pre)
    model = MultimodalEncoder(cname, space, encoders, data)
    if checkpoint is None and cfg.weights:
        checkpoint = WEIGHTS_DIR / cfg.weights
    if checkpoint is None:
        log.warning("encoder %r built with RANDOM weights; pass checkpoint=... to load trained ones", cname)
    elif checkpoint is not False:
        load_checkpoint(model, checkpoint, strict=strict)
    model.eval()
    if device is not None or dtype is not None:
        model.to(device=device, dtype=dtype)
    return model


# ------------------------------------------------------------------------------- checkpoint loading

def read_state_dict(path: "str | os.PathLike") -> dict[str, torch.Tensor]:
    """Load a state dict safely: safetensors, or torch.load(weights_only=True, mmap=True)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"checkpoint '{path}' does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:
            raise CheckpointError(f"could not read safetensors checkpoint '{path}': {e}") from None
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except Exception as e:
        raise CheckpointError(
            f"could not load checkpoint '{path}' with weights_only=True: {str(e).splitlines()[0]}. "
            f"rebind only loads plain tensors; re-save the file as a state dict or safetensors") from None
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"checkpoint '{path}' does not hold a state dict of tensors")
    return obj


def _split_by_modality(state: dict, wanted: Iterable[str], source: str) -> dict[str, dict]:
    """Any supported key layout -> {modality: rebind state dict}; raises if nothing matches."""
    wanted = list(wanted)
    if ib.is_imagebind_state_dict(state):
        out = {}
        for m in wanted:
            mapped, unmapped = ib.map_imagebind(state, m)
            if unmapped:
                raise CheckpointError(f"{source}: {len(unmapped)} ImageBind key(s) of modality {m!r} have "
                                      f"no place in rebind's {m} encoder: {_short(unmapped)}")
            out[m] = mapped
        return out
    if any(k.startswith("visual.") for k in state) and "token_embedding.weight" in state:
        split = split_open_clip_state_dict(state)
        return {m: split.get(m, {}) for m in wanted}
    out = {m: {} for m in wanted}
    for k, v in state.items():
        m, _, rest = k.partition(".")
        if m in out:
            out[m][rest] = v
    return out


def _short(keys: list[str], n: int = 8) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f", ... (+{len(keys) - n} more)" if len(keys) > n else "")


def load_checkpoint(model: MultimodalEncoder, checkpoint: "str | os.PathLike | dict",
                    strict: bool = True) -> None:
    """Load weights into the built modalities; strict checks list every mismatch."""
    wanted = list(model.encoders)
    if isinstance(checkpoint, dict):
        source, states = "state dict", _split_by_modality(checkpoint, wanted, "state dict")
    else:
        path = Path(checkpoint).expanduser()
        source = f"checkpoint '{path}'"
        if path.is_dir():
            states = {}
            for m in wanted:
                f = path / f"{m}.safetensors"
                if not f.exists():
                    have = sorted(p.stem for p in path.glob("*.safetensors"))
                    raise CheckpointError(f"{source} has no {m}.safetensors for modality {m!r} "
                                          f"(found: {have}); export it with `python -m encoders convert`")
                states[m] = read_state_dict(f)
        else:
            states = _split_by_modality(read_state_dict(path), wanted, source)
    problems = []
    for m in wanted:
        enc, state = model.encoders[m], states.get(m, {})
        if not state:
            problems.append(f"modality {m!r}: the checkpoint holds no weights for it")
            continue
        own = enc.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in own if k in state and state[k].shape != own[k].shape]
        if strict and (missing or unexpected or shapes):
            lines = [f"modality {m!r}:"]
            if missing:
                lines.append(f"  missing keys ({len(missing)}): {_short(missing)}")
            if unexpected:
                lines.append(f"  unexpected keys ({len(unexpected)}): {_short(unexpected)}")
            if shapes:
                lines.append(f"  shape mismatches ({len(shapes)}): " + "; ".join(shapes[:6])
                             + (f"; ... (+{len(shapes) - 6} more)" if len(shapes) > 6 else ""))
            problems.append("\n".join(lines))
            continue
        state = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
        enc.load_state_dict(state, strict=False)
    if problems:
        raise CheckpointError(
            f"{source} does not fit encoder config {model.name!r} (space {model.space}):\n"
            + "\n".join(problems)
            + "\nIs it a checkpoint of another model? Pick the config it was trained with "
              "(encoders.list_models()), or pass strict=False to load what matches.")


def save_modalities(model: MultimodalEncoder, out_dir: "str | os.PathLike",
                    modalities: Iterable[str] | None = None, dtype: torch.dtype | None = None) -> list[Path]:
    """Write one ``<modality>.safetensors`` per modality plus ``config.json`` (atomically)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for m in modalities or model.modalities:
        state = {k: (v.to(dtype) if dtype and v.is_floating_point() else v).contiguous()
                 for k, v in model[m].state_dict().items()}
        target = out / f"{m}.safetensors"
        tmp = target.with_suffix(".safetensors.tmp")
        save_file(state, str(tmp), metadata={"rebind_config": model.name, "modality": m,
                                             "space": model.space.name})
        os.replace(tmp, target)
        written.append(target)
    # the folder's config lists exactly the modalities whose weights sit in it
    config = copy.deepcopy(model.config)
    present = {p.stem for p in out.glob("*.safetensors")}
    config["modalities"] = {m: c for m, c in config["modalities"].items() if m in present}
    config["name"] = model.name
    space = dataclasses.asdict(model.space)
    space.pop("name")
    config["space_info"] = dict(space, aliases=list(space["aliases"]))
    tmp = out / "config.json.tmp"
    tmp.write_text(json.dumps(config, indent=2))
    os.replace(tmp, out / "config.json")
    return written


def convert_imagebind(checkpoint: "str | os.PathLike", out_dir: "str | os.PathLike",
                      modalities: Iterable[str] | None = None, config: str = "imagebind_huge",
                      progress: bool = True) -> list[Path]:
    """Official ImageBind checkpoint -> per-modality safetensors in rebind's key names.

    Modalities are converted one at a time so peak memory stays at one tower.
    """
    state = read_state_dict(checkpoint)
    if not ib.is_imagebind_state_dict(state):
        raise CheckpointError(f"'{checkpoint}' is not an ImageBind checkpoint (no modality_trunks.* keys)")
    todo = list(modalities or ib.imagebind_modalities(state))
    written = []
    it = todo
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(todo, desc="convert", unit="modality")
    for m in it:
        model = create(config, modalities=(m,), checkpoint=False)
        load_checkpoint(model, state)
        written += save_modalities(model, out_dir, (m,))
        del model
    return written
