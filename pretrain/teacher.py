"""The frozen teacher: an open_clip CLIP whose image tower defines the target space.

    teacher = load_teacher(TeacherConfig(model="ViT-B-32", pretrained="openai"))
    z = teacher.encode_images(teacher.transform(train=False)(pil)[None])   # [1, 512], unit norm

Built from an open_clip name + pretrained tag/file, a ``local-dir:`` folder (open_clip_config.json
+ weights), an inline model config, or ``rebind:<encoder>`` -- a rebind encoder config name
(``rebind:pocket``) or saved encoder folder whose ``vision`` (and ``text``) modalities are open_clip
towers: its inline open_clip config, its preprocessing and its safetensors become an open_clip
``CLIP`` again. Never trained (``requires_grad=False``, eval mode).

The teacher cache (``cache_teacher`` / ``python -m pretrain cache-teacher``) stores the unit-norm
embedding of ``views`` versions of every image: view 0 is the evaluation transform (center crop),
views 1.. are RandomResizedCrop(+flip) crops, each seeded by (seed, image, view). It is written in
chunks (atomic files) and resumes where it stopped; ``embeddings.npy`` [N, views, D] appears when
all chunks are done.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from encoders.config import ConfigError
from encoders.spaces import ClipSpace, get_space, list_spaces, register_space

from .checkpoint import atomic_write_bytes, atomic_write_text
from .config import TeacherConfig

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------ model config

def _local_dir(model: str, base_dir: str | None) -> Path:
    folder = Path(model[len("local-dir:"):]).expanduser()
    if not folder.is_absolute() and base_dir:
        folder = Path(base_dir) / folder
    return folder


REBIND_PREFIX = "rebind:"


@dataclass
class RebindClip:
    """A rebind encoder config whose vision/text modalities are open_clip towers (e.g. ``pocket``)."""

    name: str
    config: dict  # the encoder config (space, modalities, ...)
    weights: Path | None  # folder of <modality>.safetensors
    model_cfg: dict  # the open_clip model config of its towers
    preprocess_cfg: dict  # open_clip preprocess_cfg from the vision modality's image preprocessing

    @property
    def space(self) -> str:
        return self.config["space"]

    def weight_file(self, modality: str) -> Path | None:
        f = self.weights / f"{modality}.safetensors" if self.weights is not None else None
        return f if f is not None and f.exists() else None


def is_rebind(model: str | None) -> bool:
    return bool(model) and model.startswith(REBIND_PREFIX)


def rebind_clip(model: str, base_dir: str | None = None) -> RebindClip:
    """``rebind:<config name | saved folder>`` -> its open_clip config, preprocessing and weights."""
    import encoders
    from encoders.factory import WEIGHTS_DIR

    ref = model[len(REBIND_PREFIX):]
    folder = Path(ref).expanduser()
    if not folder.is_absolute() and base_dir and (Path(base_dir) / folder).is_dir():
        folder = Path(base_dir) / folder
    if folder.is_dir():
        if not (folder / "config.json").exists():
            raise ConfigError(f"teacher.model: '{folder}' has no config.json (not a saved rebind encoder)")
        data, weights, name = json.loads((folder / "config.json").read_text()), folder, str(folder)
    else:
        try:
            data = encoders.get_config(ref)
        except KeyError as e:
            raise ConfigError(f"teacher.model: {e.args[0]}") from None
        weights = WEIGHTS_DIR / data["weights"] if data.get("weights") else None
        name = ref
    vision = data.get("modalities", {}).get("vision")
    if not vision or vision.get("arch") != "open_clip_vision":
        raise ConfigError(f"teacher.model: rebind encoder {name!r} has no open_clip vision tower "
                          f"(modalities: {sorted(data.get('modalities', {}))}); a teacher needs one")
    if vision.get("open_clip_config") is not None:
        model_cfg = vision["open_clip_config"]
    else:
        import open_clip

        model_cfg = open_clip.get_model_config(vision["open_clip_model"])
    pre = vision.get("preprocess") or {}
    preprocess_cfg = {k: pre[k] for k in ("size", "mean", "std", "interpolation") if k in pre}
    return RebindClip(name, data, weights, model_cfg, preprocess_cfg)


def _rebind_open_clip_state(clip: RebindClip, text: bool) -> dict:
    """The towers' safetensors in open_clip ``CLIP`` key names (inverse of split_open_clip_state_dict)."""
    from encoders.factory import read_state_dict

    out = {}
    for modality in ("vision", "text") if text else ("vision",):
        f = clip.weight_file(modality)
        if f is None:
            raise ConfigError(f"teacher.model: rebind encoder {clip.name!r} has no {modality}.safetensors "
                              f"in '{clip.weights}'" + ("; the text side (zero-shot) needs it" if modality == "text" else ""))
        for k, v in read_state_dict(f).items():
            if modality == "vision":
                out["visual." + k[len("tower."):]] = v.float()
            elif k == "log_scale":
                out["logit_scale"] = v.float()
            else:
                out[k[len("tower."):]] = v.float()
    return out


def open_clip_config(cfg: TeacherConfig, base_dir: str | None = None) -> dict:
    """The teacher's open_clip model config, without building anything."""
    import open_clip

    if cfg.config is not None:
        return cfg.config
    if is_rebind(cfg.model):
        return rebind_clip(cfg.model, base_dir).model_cfg
    if cfg.model.startswith("local-dir:"):
        path = _local_dir(cfg.model, base_dir) / "open_clip_config.json"
        if not path.exists():
            raise ConfigError(f"teacher.model: '{path}' does not exist")
        return json.loads(path.read_text())["model_cfg"]
    model_cfg = open_clip.get_model_config(cfg.model)
    if model_cfg is None:
        raise ConfigError(f"teacher.model: open_clip has no model named {cfg.model!r}; "
                          f"see open_clip.list_models(), or use local-dir:/folder or an inline config")
    return model_cfg


def _pretrained(cfg: TeacherConfig, base_dir: str | None) -> str | None:
    """A pretrained tag as is; a relative weights path resolved from the config's folder."""
    p = cfg.pretrained
    if p and base_dir and not Path(p).expanduser().is_absolute() and Path(base_dir, p).exists():
        return str(Path(base_dir, p))
    return str(Path(p).expanduser()) if p and Path(p).expanduser().exists() else p


def teacher_identity(cfg: TeacherConfig, base_dir: str | None = None) -> dict:
    """What makes two teachers the same (stored in caches and checked before use)."""
    model_cfg = open_clip_config(cfg, base_dir)
    ident = {"model": cfg.model if cfg.config is None else "inline",
             "pretrained": cfg.pretrained,
             "config_sha": hashlib.sha256(json.dumps(model_cfg, sort_keys=True).encode()).hexdigest()[:16],
             "dim": int(model_cfg["embed_dim"])}
    weights = None
    pretrained = _pretrained(cfg, base_dir)
    if is_rebind(cfg.model):
        weights = rebind_clip(cfg.model, base_dir).weight_file("vision")
    elif pretrained and Path(pretrained).exists():
        weights = Path(pretrained)
    elif cfg.model and cfg.model.startswith("local-dir:"):
        from open_clip.factory import _find_checkpoint_in_dir

        found = _find_checkpoint_in_dir(_local_dir(cfg.model, base_dir))
        weights = Path(found) if found else None
    if weights is not None and is_rebind(cfg.model):  # small files, retrained in place: hash the content
        ident["weights"] = f"{weights.name}:{hashlib.sha256(weights.read_bytes()).hexdigest()[:16]}"
    elif weights is not None:
        ident["weights"] = f"{weights.name}:{weights.stat().st_size}"
    return ident


def resolve_space(cfg: TeacherConfig, dim: int, base_dir: str | None = None) -> ClipSpace:
    """The CLIP space of a teacher: ``cfg.space`` (registered if new), the space a ``rebind:``
    encoder config names, or the registered space of (model, pretrained)."""
    if not cfg.space and is_rebind(cfg.model):
        from encoders.factory import parse_config

        clip = rebind_clip(cfg.model, base_dir)
        space = parse_config(clip.config, clip.name)[1]  # registers a saved custom space (space_info)
        if space.dim != dim:
            raise ConfigError(f"teacher.model: rebind encoder {clip.name!r} names space {space} but its "
                              f"open_clip towers embed to {dim}-d")
        return space
    if cfg.space:
        try:
            space = get_space(cfg.space)
        except KeyError:
            return register_space(ClipSpace(
                cfg.space, dim, cfg.model if cfg.config is None else None, cfg.pretrained,
                f"registered by rebind pretrain for teacher {cfg.model or 'inline config'}"))
        if space.dim != dim:
            raise ConfigError(f"teacher.space: space {space} is {space.dim}-d but the teacher tower "
                              f"embeds to {dim}-d; name another space")
        return space
    for name in list_spaces():
        space = get_space(name)
        if space.open_clip_model == cfg.model and space.open_clip_pretrained == cfg.pretrained \
                and space.dim == dim and cfg.config is None:
            return space
    raise ConfigError(
        f"teacher: no registered CLIP space is defined by open_clip model {cfg.model or 'inline config'!r} "
        f"with pretrained {cfg.pretrained!r}; name its space with teacher.space: <name> (an existing "
        f"one, e.g. openclip-vit-h-14 for a local ViT-H-14 laion2b file, or a new name to register). "
        f"Known spaces: {list_spaces()}")


def space_record(space: ClipSpace) -> dict:
    return {"name": space.name, "dim": space.dim, "open_clip_model": space.open_clip_model,
            "open_clip_pretrained": space.open_clip_pretrained, "description": space.description}


def register_space_record(record: dict) -> ClipSpace:
    """Register a space written by ``space_record`` unless a space of that name exists."""
    try:
        space = get_space(record["name"])
    except KeyError:
        return register_space(ClipSpace(record["name"], int(record["dim"]), record.get("open_clip_model"),
                                        record.get("open_clip_pretrained"), record.get("description", "")))
    if space.dim != int(record["dim"]):
        raise ValueError(f"space {record['name']!r} is registered as {space.dim}-d but the saved encoder "
                         f"says {record['dim']}-d")
    return space


# ------------------------------------------------------------------------------------- the teacher

class Teacher:
    """A frozen open_clip model (image tower, optionally the text tower) and its transforms."""

    def __init__(self, model, space: ClipSpace, identity: dict, tokenizer=None,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        from open_clip.model import get_model_preprocess_cfg

        self.space, self.identity = space, identity
        self.device, self.dtype = torch.device(device), dtype
        self.preprocess_cfg = dict(get_model_preprocess_cfg(model))
        self.visual = model.visual.to(self.device, dtype).eval().requires_grad_(False)
        self.clip = model if tokenizer is not None else None  # keeps the text tower only when asked
        if self.clip is not None:
            self.clip.to(self.device, dtype).eval().requires_grad_(False)
        self.tokenizer = tokenizer

    @property
    def dim(self) -> int:
        return self.space.dim

    @property
    def image_size(self) -> int:
        size = self.preprocess_cfg.get("size", 224)
        return size[0] if isinstance(size, (list, tuple)) else int(size)

    def transform(self, train: bool = False, crop_scale: Sequence[float] = (0.5, 1.0),
                  flip: bool = True) -> Callable:
        """PIL image -> normalized tensor; ``train`` adds RandomResizedCrop (+ flip)."""
        from open_clip.transform import image_transform
        from torchvision import transforms as T

        c = self.preprocess_cfg
        mean, std = c.get("mean"), c.get("std")
        if not train:
            return image_transform(self.image_size, is_train=False, mean=mean, std=std,
                                   interpolation=c.get("interpolation"), resize_mode=c.get("resize_mode"))
        interp = T.InterpolationMode.BICUBIC if c.get("interpolation", "bicubic") == "bicubic" \
            else T.InterpolationMode.BILINEAR
        steps = [T.RandomResizedCrop(self.image_size, scale=tuple(crop_scale), interpolation=interp)]
        if flip:
            steps.append(T.RandomHorizontalFlip())
        steps += [T.ToTensor(), T.Normalize(mean=mean, std=std)]
        return T.Compose(steps)

    @torch.no_grad()  # not inference_mode: the result enters the (differentiable) loss
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        z = self.visual(images.to(self.device, self.dtype))
        return F.normalize(z.float(), dim=-1)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        if self.clip is None:
            raise RuntimeError("this teacher was loaded without its text tower (load_teacher(..., text=True))")
        out = []
        for i in range(0, len(texts), batch_size):
            tokens = self.tokenizer(list(texts[i: i + batch_size])).to(self.device)
            out.append(F.normalize(self.clip.encode_text(tokens).float(), dim=-1))
        return torch.cat(out)


def load_teacher(cfg: TeacherConfig, base_dir: str | None = None, device: Any = "cpu",
                 dtype: torch.dtype = torch.float32, text: bool = False) -> Teacher:
    """Build the frozen teacher (its space is resolved and checked first, before the weights load)."""
    import open_clip

    model_cfg = open_clip_config(cfg, base_dir)
    space = resolve_space(cfg, int(model_cfg["embed_dim"]), base_dir)
    identity = teacher_identity(cfg, base_dir)
    tmp = None
    rebind = rebind_clip(cfg.model, base_dir) if is_rebind(cfg.model) else None
    if cfg.config is not None or rebind is not None:  # inline configs go through open_clip's local-dir: schema
        tmp = tempfile.TemporaryDirectory(prefix="rebind-teacher-")
        record = {"model_cfg": model_cfg}
        if rebind is not None:
            record["preprocess_cfg"] = rebind.preprocess_cfg
        Path(tmp.name, "open_clip_config.json").write_text(json.dumps(record))
        name = f"local-dir:{tmp.name}"
    elif cfg.model.startswith("local-dir:"):
        name = f"local-dir:{_local_dir(cfg.model, base_dir)}"
    else:
        name = cfg.model
    schema = name.startswith("local-dir:")
    pretrained = _pretrained(cfg, base_dir)
    try:
        with _quiet_open_clip(rebind is not None):  # its "no weights found" warning: they load next
            model = open_clip.create_model(name, pretrained=None if schema else pretrained)
        if rebind is not None:
            state = _rebind_open_clip_state(rebind, text)
            missing, unexpected = model.load_state_dict(state, strict=False)
            missing = [k for k in missing if k.startswith("visual.") or text]
            if missing or unexpected:
                raise RuntimeError(f"rebind encoder {rebind.name!r}: weights do not fit its open_clip config "
                                   f"(missing {missing[:4]}, unexpected {unexpected[:4]})")
        elif schema and pretrained:
            open_clip.load_checkpoint(model, pretrained)
        tokenizer = open_clip.get_tokenizer(name) if text else None
    except RuntimeError as e:
        raise RuntimeError(f"could not build teacher {cfg.model or 'inline config'} "
                           f"(pretrained={cfg.pretrained!r}): {e}. Offline, pass a local weights file "
                           f"as pretrained or a local-dir: folder") from None
    finally:
        if tmp is not None:
            tmp.cleanup()
    return Teacher(model, space, identity, tokenizer, device, dtype)


@contextlib.contextmanager
def _quiet_open_clip(quiet: bool):
    """open_clip warns on the root logger; silence it while a tower whose weights load next is built."""
    root = logging.getLogger()
    level = root.level
    if quiet:
        root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def seeded(transform: Callable, image, seed: int) -> torch.Tensor:
    """Apply a torchvision transform with its randomness drawn from ``seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return transform(image)


def view_seed(seed: int, image_index: int, view: int) -> int:
    return int(np.random.SeedSequence([seed, image_index, view, 7]).generate_state(1)[0])


# ----------------------------------------------------------------------------------------- caching

@dataclass
class TeacherCache:
    folder: Path
    meta: dict
    keys: list[str]
    embeddings: np.ndarray  # [N, views, D] (memory-mapped)

    @property
    def views(self) -> int:
        return int(self.meta["views"])

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[-1])

    def index(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.keys)}

    @classmethod
    def open(cls, folder: "str | os.PathLike") -> "TeacherCache":
        folder = Path(folder)
        meta_path = folder / "meta.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"'{folder}' holds no teacher cache (meta.json); write one with "
                                    f"`python -m pretrain cache-teacher --config run.yaml`")
        meta = json.loads(meta_path.read_text())
        if not meta.get("complete"):
            done = len(list((folder / "parts").glob("part-*.npy")))
            raise RuntimeError(f"teacher cache '{folder}' is incomplete ({done} of {meta.get('chunks')} chunks); "
                               f"run `python -m pretrain cache-teacher` again to finish it (it resumes)")
        keys = json.loads((folder / "keys.json").read_text())
        emb = np.load(folder / "embeddings.npy", mmap_mode="r")
        return cls(folder, meta, keys, emb)

    def check_teacher(self, identity: dict, space: ClipSpace) -> None:
        mine = {k: v for k, v in self.meta["teacher"].items()}
        if mine != identity or self.meta["space"] != space.name:
            raise ConfigError(f"teacher.cache: '{self.folder}' was written by teacher {mine} in space "
                              f"{self.meta['space']!r}, but the run's teacher is {identity} in space "
                              f"{space.name!r}; rebuild the cache for this teacher")


def cache_teacher(cfg, out: "str | os.PathLike | None" = None, views: int = 1, batch_size: int = 64,
                  chunk: int = 512, device: Any = "auto", dtype: str = "float32",
                  progress: bool = True) -> Path:
    """Write (or resume writing) the teacher cache of a run config's images; returns the folder."""
    from .data import collect_images, BadFiles, load_image_ref

    if views < 1:
        raise ConfigError(f"cache-teacher: views must be >= 1, got {views}")
    if dtype not in ("float32", "float16"):
        raise ConfigError(f"cache-teacher: dtype must be float32 or float16, got {dtype!r}")
    out = Path(out) if out is not None else cfg.path(cfg.teacher.cache)
    if out is None:
        raise ConfigError("cache-teacher: give --out or teacher.cache in the config")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(f"cuda:{local}" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    bad = BadFiles(cfg.data.on_bad_file, out / "bad_files.txt")
    refs = collect_images(cfg, bad)
    keys = [r.key for r in refs]
    tcfg = cfg.teacher
    identity = teacher_identity(tcfg, cfg.base_dir)
    space = resolve_space(tcfg, identity["dim"], cfg.base_dir)
    augment = {"image_augment": tcfg.image_augment if views > 1 else "none",
               "crop_scale": list(tcfg.crop_scale), "flip": tcfg.flip}
    meta = {"teacher": identity, "space": space.name, "space_record": space_record(space),
            "views": views, "augment": augment, "seed": cfg.seed, "images": len(keys),
            "keys_sha": hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16],
            "chunk": chunk, "chunks": (len(keys) + chunk - 1) // chunk, "dtype": dtype}
    rank, world = _cache_world(dev)
    meta_path = out / "meta.json"
    if meta_path.exists():  # every process checks, so all fail alike
        old = json.loads(meta_path.read_text())
        if {k: old.get(k) for k in meta} != meta:
            diff = sorted(k for k in meta if old.get(k) != meta[k])
            raise ConfigError(f"cache-teacher: '{out}' holds a cache with other settings ({diff}); "
                              f"use another --out or delete it")
        if old.get("complete"):
            log.info("teacher cache '%s' is already complete", out)
            return out
        meta = old
    parts = out / "parts"
    if rank == 0:
        parts.mkdir(parents=True, exist_ok=True)
        atomic_write_text(meta_path, json.dumps(meta, indent=1))
        atomic_write_text(out / "keys.json", json.dumps(keys))
    _barrier(world)
    # under torchrun, process r embeds chunks r, r + world, ...
    todo = [c for c in range(meta["chunks"]) if c % world == rank and not (parts / f"part-{c:06d}.npy").exists()]
    if todo:
        teacher = load_teacher(tcfg, cfg.base_dir, dev,
                               torch.bfloat16 if dev.type == "cuda" and dtype == "float16" else torch.float32)
        val_t = teacher.transform(train=False)
        train_t = teacher.transform(train=True, crop_scale=tcfg.crop_scale, flip=tcfg.flip)
        if views > 1 and tcfg.image_augment == "none" and rank == 0:
            log.warning("cache-teacher: views=%d but teacher.image_augment is none: views 1.. are crops anyway; "
                        "set image_augment: crop in the run that reads this cache", views)
        bar = None
        if progress and rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo) * chunk * views, desc="cache teacher", unit="view")
        np_dtype = np.float16 if dtype == "float16" else np.float32
        for c in todo:
            lo, hi = c * chunk, min((c + 1) * chunk, len(keys))
            rows = np.full((hi - lo, views, teacher.dim), np.nan, dtype=np.float32)
            tensors, where = [], []
            for i in range(lo, hi):
                try:
                    img = load_image_ref(refs[i])
                except Exception as e:  # reported with path and reason; skip or fail per policy
                    bad.report(refs[i].describe(), e)
                    continue
                for v in range(views):
                    t = val_t(img) if v == 0 else seeded(train_t, img, view_seed(cfg.seed, i, v))
                    tensors.append(t)
                    where.append((i - lo, v))
                    if len(tensors) == batch_size:
                        _flush(teacher, tensors, where, rows, bar)
            _flush(teacher, tensors, where, rows, bar)
            atomic_write_bytes(parts / f"part-{c:06d}.npy", lambda f, r=rows.astype(np_dtype): np.save(f, r))
        if bar is not None:
            bar.close()
    _barrier(world)
    if rank != 0:
        _barrier(world)
        return out
    # all chunks present: one memory-mappable array
    arrays = [np.load(parts / f"part-{c:06d}.npy") for c in range(meta["chunks"])]
    full = np.concatenate(arrays) if arrays else np.zeros((0, views, identity["dim"]), np.float32)
    atomic_write_bytes(out / "embeddings.npy", lambda f: np.save(f, full))
    missing = [keys[i] for i in np.where(np.isnan(full.reshape(len(full), -1)).any(1))[0]] if len(full) else []
    meta.update(complete=True, missing=missing)
    atomic_write_text(meta_path, json.dumps(meta, indent=1))
    for p in parts.glob("part-*.npy"):
        p.unlink()
    parts.rmdir()
    log.info("teacher cache '%s': %d images x %d views (%d unreadable)", out, len(keys), views, len(missing))
    _barrier(world)
    return out


def _cache_world(device: torch.device) -> tuple[int, int]:
    """(rank, world) when launched by torchrun/accelerate; the process group is set up if needed."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def _flush(teacher: Teacher, tensors: list, where: list, rows: np.ndarray, bar) -> None:
    if not tensors:
        return
    z = teacher.encode_images(torch.stack(tensors)).cpu().numpy()
    for (r, v), e in zip(where, z):
        rows[r, v] = e
    if bar is not None:
        bar.update(len(tensors))
    tensors.clear()
    where.clear()
