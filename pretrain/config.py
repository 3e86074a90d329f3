"""The run config: YAML -> typed dataclasses, validated before any work starts.

Every section is a dataclass filled by ``encoders.config.from_dict``, which refuses unknown keys and
wrong types naming the field (``run config.optim.lr: expected a number, got 'fast'``); the
``validate`` methods below check values and combinations. ``load_config`` also checks that the files
the run needs exist, so a typo fails in a second, not after the teacher tower was built.

A minimal config (see ``pretrain/configs/`` for complete ones)::

    out_dir: runs/audio-vitb32
    student: {model: imagebind_huge}
    teacher: {model: ViT-B-32, pretrained: openai}
    data: {train: data/train.csv, root: data/}
    train: {batch_size: 2048, epochs: 64}
"""
from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from encoders.config import ConfigError, from_dict, to_dict

Precision = Literal["auto", "fp32", "bf16", "fp16"]
Switch = Literal["auto", "on", "off"]


def _positive(where: str, name: str, value, allow_zero: bool = False) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{where}.{name}: must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


@dataclass
class StudentConfig:
    """The modality encoder being trained.

    model: a registered encoder config name (``encoders.list_models()``), a saved encoder folder
        (``encoders.save_modalities``), or an inline encoder config mapping.
    modality: which of its modalities is trained.
    checkpoint: initial weights (a rebind/ImageBind checkpoint path); null = from scratch, unless
        ``model`` is a saved folder (its weights are used).
    overrides: keys merged into the modality's architecture config, e.g. ``{drop_path: 0.1}``.
    The student is built in the TEACHER's space: its head outputs the teacher's dimension and its
    saved config names the teacher's space. Initial weights must already have that dimension.
    """

    model: Any = "imagebind_huge"
    modality: Literal["audio", "depth", "thermal", "imu"] = "audio"
    checkpoint: str | None = None
    overrides: dict = field(default_factory=dict)

    def validate(self, where: str) -> None:
        if not isinstance(self.model, (str, dict)):
            raise ConfigError(f"{where}.model: expected a config name, a saved encoder folder or a "
                              f"mapping, got {self.model!r}")


@dataclass
class TeacherConfig:
    """The frozen open_clip image tower that defines the target space.

    model: an open_clip model name (``ViT-H-14``, ``ViT-B-32``), ``local-dir:/folder`` holding
        ``open_clip_config.json`` (+ weights), or ``rebind:<encoder>`` (a rebind encoder config
        name such as ``rebind:pocket``, or a saved encoder folder, whose vision/text modalities
        are open_clip towers); or leave null and give ``config``.
    pretrained: an open_clip pretrained tag or a local weights file; null = random init (tests).
    config: an inline open_clip model config ``{embed_dim, vision_cfg, text_cfg}``.
    space: name of the CLIP space; default: the registered space whose ``open_clip_model`` and
        ``open_clip_pretrained`` match. A name that is not registered yet is registered for this
        teacher (and written next to the trained encoder as ``space.json``).
    cache: a folder written by ``python -m pretrain cache-teacher``; then no training step runs the
        tower. With ``image_augment: crop`` the cache holds ``views`` crops per image and training
        draws among them: APPROXIMATE augmentation (a finite set of crops instead of a fresh crop
        per step). With ``image_augment: none`` the cache is exact.
    image_augment: none (center crop, as evaluation) or crop (RandomResizedCrop + horizontal flip).
    """

    model: str | None = None
    pretrained: str | None = None
    config: dict | None = None
    space: str | None = None
    cache: str | None = None
    image_augment: Literal["none", "crop"] = "crop"
    crop_scale: list[float] = field(default_factory=lambda: [0.5, 1.0])
    flip: bool = True

    def validate(self, where: str) -> None:
        if (self.model is None) == (self.config is None):
            raise ConfigError(f"{where}: give exactly one of model (an open_clip name or "
                              f"local-dir:/folder) or config (an inline open_clip model config)")
        if self.config is not None:
            missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in self.config]
            if missing:
                raise ConfigError(f"{where}.config: an open_clip model config needs {missing}")
        lo, hi = (list(self.crop_scale) + [None, None])[:2]
        if len(self.crop_scale) != 2 or not (0 < lo <= hi <= 1):
            raise ConfigError(f"{where}.crop_scale: expected [min, max] with 0 < min <= max <= 1, "
                              f"got {self.crop_scale!r}")


@dataclass
class DataConfig:
    """Training data.

    train: a manifest (.csv or .jsonl, one row per modality file) or webdataset shards
        (``shards/train-{000000..000009}.tar``, a .tar, or a folder of .tar files).
    root: folder that relative paths in the manifests resolve from (default: the manifest's folder).
    path_column: the modality file column (default: the modality name, then path, filename, file).
    image_column: the paired image column (explicit pairs).
    label_column: the class column (default: label, then category, class).
    images: an image manifest ``image,label`` for class-level pairing.
    pairing: pairs (each row names its image) | labels (each step draws an image of the row's
        label from ``images``) | auto (pairs when the image column exists, else labels).
    on_bad_file: missing/corrupt files are reported with path and reason, then skipped or fail.
    preload: decode every modality file once into memory (small sets; the pocket path).
    shuffle_buffer: webdataset only: samples held for shuffling per stream.
    """

    train: str = ""
    root: str | None = None
    format: Literal["auto", "manifest", "webdataset"] = "auto"
    path_column: str | None = None
    image_column: str = "image"
    label_column: str | None = None
    images: str | None = None
    images_root: str | None = None
    pairing: Literal["auto", "pairs", "labels"] = "auto"
    on_bad_file: Literal["skip", "fail"] = "skip"
    preload: bool = False
    num_workers: int = 0
    shuffle_buffer: int = 1000
    samples_per_epoch: int | None = None

    def validate(self, where: str) -> None:
        if not self.train:
            raise ConfigError(f"{where}.train: required: a manifest (.csv/.jsonl) or webdataset shards")
        _positive(where, "num_workers", self.num_workers, allow_zero=True)
        _positive(where, "shuffle_buffer", self.shuffle_buffer)
        _positive(where, "samples_per_epoch", self.samples_per_epoch)


@dataclass
class AugmentConfig:
    """Audio augmentation (ImageBind Table 9 + AVID-CMA supplement).

    freq_mask: SpecAugment frequency masking, maximum masked mel bins (paper: 12); 0 = off.
    time_mask: maximum masked frames; 0 = off (not in the paper).
    volume: waveform gain drawn uniformly in [lo, hi] (AVID: [0.9, 1.1]); null = off.
    temporal_jitter: read a segment of random start and of duration clip_seconds * U[duration],
        then rescale its frames to clip_seconds (AVID: 1.4-2.8 s for 2 s clips); off = a random
        clip_seconds window.
    """

    freq_mask: int = 12
    time_mask: int = 0
    volume: list[float] | None = field(default_factory=lambda: [0.9, 1.1])
    temporal_jitter: bool = True
    duration: list[float] = field(default_factory=lambda: [0.7, 1.4])

    def validate(self, where: str) -> None:
        _positive(where, "freq_mask", self.freq_mask, allow_zero=True)
        _positive(where, "time_mask", self.time_mask, allow_zero=True)
        if self.volume is not None and (len(self.volume) != 2 or not 0 < self.volume[0] <= self.volume[1]):
            raise ConfigError(f"{where}.volume: expected [lo, hi] with 0 < lo <= hi, got {self.volume!r}")
        if len(self.duration) != 2 or not 0 < self.duration[0] <= self.duration[1]:
            raise ConfigError(f"{where}.duration: expected [lo, hi] with 0 < lo <= hi, got {self.duration!r}")


@dataclass
class LossConfig:
    """Symmetric InfoNCE against the frozen teacher.

    temperature: fixed (paper: audio 0.05, depth 0.2, thermal 0.1, IMU 0.2).
    positives: pairs (row i matches teacher i only) | labels (every teacher embedding of the same
        label is a positive: multi-positive InfoNCE, averaging the log-likelihood of the positives,
        SupCon's L_out). Use labels with class-level pairing, where several rows of one batch share
        a label and would otherwise push each other away.
    """

    temperature: float = 0.05
    positives: Literal["pairs", "labels"] = "pairs"

    def validate(self, where: str) -> None:
        _positive(where, "temperature", self.temperature)


@dataclass
class OptimConfig:
    """AdamW + linear warmup + cosine decay (paper Table 9, audio column as defaults)."""

    lr: float = 1.6e-3
    weight_decay: float = 0.2
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    grad_clip: float | None = 1.0
    warmup_steps: int | None = None
    warmup_epochs: float | None = None  # neither given: 2 epochs (paper), at most 10% of the run
    min_lr_ratio: float = 0.0

    def validate(self, where: str) -> None:
        _positive(where, "lr", self.lr)
        _positive(where, "weight_decay", self.weight_decay, allow_zero=True)
        _positive(where, "eps", self.eps)
        _positive(where, "grad_clip", self.grad_clip)
        _positive(where, "warmup_steps", self.warmup_steps, allow_zero=True)
        _positive(where, "warmup_epochs", self.warmup_epochs, allow_zero=True)
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"{where}.betas: expected [beta1, beta2] in [0, 1), got {self.betas!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"{where}.min_lr_ratio: expected a number in [0, 1], got {self.min_lr_ratio!r}")
        if self.warmup_steps is not None and self.warmup_epochs is not None:
            raise ConfigError(f"{where}: give warmup_steps or warmup_epochs, not both")


@dataclass
class TrainConfig:
    """The loop.

    batch_size: GLOBAL batch (split evenly over processes; the loss sees all of it).
    steps / epochs: length; steps wins when both are given.
    precision: auto = bf16 autocast on GPU, fp32 on CPU.
    compile: torch.compile the student (auto = on GPU only).
    threads: torch intra-op threads per process (null = leave as is).
    """

    batch_size: int = 2048
    steps: int | None = None
    epochs: float | None = None
    log_every: int = 10
    checkpoint_every: int = 500
    precision: Precision = "auto"
    compile: Switch = "auto"
    device: str = "auto"
    threads: int | None = None
    tensorboard: bool = False
    progress: bool = True

    def validate(self, where: str) -> None:
        _positive(where, "batch_size", self.batch_size)
        _positive(where, "steps", self.steps, allow_zero=True)
        _positive(where, "epochs", self.epochs)
        _positive(where, "log_every", self.log_every)
        _positive(where, "checkpoint_every", self.checkpoint_every)
        _positive(where, "threads", self.threads)
        if self.steps is None and self.epochs is None:
            raise ConfigError(f"{where}: give steps or epochs")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"{where}.device: {self.device!r} is not one of auto, cpu, cuda, cuda:N")


@dataclass
class RunConfig:
    out_dir: str = ""
    seed: int = 0
    student: StudentConfig = field(default_factory=StudentConfig)
    teacher: TeacherConfig = field(default_factory=lambda: TeacherConfig(model="ViT-H-14"))
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    base_dir: str | None = None  # relative paths resolve from here (the YAML file's folder)

    def validate(self, where: str) -> None:
        if not self.out_dir:
            raise ConfigError(f"{where}.out_dir: required: the folder for checkpoints, metrics and the encoder")

    def to_dict(self) -> dict:
        return to_dict(self)

    def path(self, p: str | None) -> Path | None:
        """Resolve a path of this config (relative to ``base_dir``; shard patterns pass through)."""
        if p is None:
            return None
        if p.startswith("local-dir:"):
            return Path(p)
        q = Path(os.path.expanduser(p))
        if not q.is_absolute() and self.base_dir:
            q = Path(self.base_dir) / q
        return q


SECTIONS = {f.name for f in dataclasses.fields(RunConfig)}


def yaml_load(text: str):
    """``yaml.safe_load`` that also reads ``1e-3`` as a number (PyYAML follows YAML 1.1, which
    needs ``1.0e-3``; every learning rate in a config would otherwise be a string)."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+][0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
        list("-+0123456789."))
    return yaml.load(text, Loader=Loader)


def load_config(source: "RunConfig | dict | str | os.PathLike", overrides: list[str] | dict | None = None,
                check_files: bool = True) -> RunConfig:
    """A RunConfig from a YAML/JSON file, a mapping or a RunConfig, with ``a.b=value`` overrides.

    Raises ``ConfigError`` naming the field for unknown keys, bad types and bad values, and for
    files that do not exist (when ``check_files``).
    """
    base_dir = None
    if isinstance(source, RunConfig):
        data = source.to_dict()
    elif isinstance(source, dict):
        data = copy.deepcopy(source)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise ConfigError(f"config file '{path}' does not exist")
        import yaml

        try:
            data = yaml_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file '{path}' is not valid YAML: {e}") from None
        base_dir = str(path.resolve().parent)
    if not isinstance(data, dict):
        raise ConfigError(f"run config: expected a mapping at the top level, got {type(data).__name__}")
    if base_dir is not None:
        data.setdefault("base_dir", base_dir)
    for key, value in _parse_overrides(overrides).items():
        _set_dotted(data, key, value)
    cfg = from_dict(RunConfig, data, "run config")
    if check_files:
        check_paths(cfg)
    return cfg


def _parse_overrides(overrides) -> dict:
    if not overrides:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    import yaml

    out = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. optim.lr=1e-3")
        key, _, raw = item.partition("=")
        out[key.strip()] = yaml_load(raw) if raw.strip() else None
    return out


def _set_dotted(data: dict, key: str, value) -> None:
    parts = key.split(".")
    node = data
    for i, p in enumerate(parts[:-1]):
        if parts[0] not in SECTIONS:
            raise ConfigError(f"override {key!r}: unknown section {parts[0]!r}; sections: {sorted(SECTIONS)}")
        nxt = node.get(p)
        if nxt is None:
            nxt = node[p] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {key!r}: {'.'.join(parts[: i + 1])} is not a section")
        node = nxt
    node[parts[-1]] = value


def _is_pattern(p: str) -> bool:
    return any(c in p for c in "{}*?") or p.startswith(("pipe:", "http://", "https://", "s3://", "gs://"))


def check_paths(cfg: RunConfig) -> None:
    """Fail with the field name when a file the run needs is missing."""
    d = cfg.data
    if not _is_pattern(d.train):
        p = cfg.path(d.train)
        if not p.exists():
            raise ConfigError(f"run config.data.train: '{p}' does not exist")
    for name in ("root", "images", "images_root"):
        v = getattr(d, name)
        if v is not None and not cfg.path(v).exists():
            raise ConfigError(f"run config.data.{name}: '{cfg.path(v)}' does not exist")
    if cfg.student.checkpoint and not cfg.path(cfg.student.checkpoint).exists():
        raise ConfigError(f"run config.student.checkpoint: '{cfg.path(cfg.student.checkpoint)}' does not exist")
    if cfg.teacher.cache and not (cfg.path(cfg.teacher.cache) / "meta.json").exists():
        raise ConfigError(f"run config.teacher.cache: '{cfg.path(cfg.teacher.cache)}' holds no teacher "
                          f"cache (meta.json); write it with `python -m pretrain cache-teacher`")
    t = cfg.teacher
    if t.model and t.model.startswith("local-dir:"):
        folder = Path(t.model[len("local-dir:"):]).expanduser()
        if not folder.is_absolute() and cfg.base_dir:
            folder = Path(cfg.base_dir) / folder
        if not (folder / "open_clip_config.json").exists():
            raise ConfigError(f"run config.teacher.model: '{folder}' has no open_clip_config.json")
    if t.pretrained and (os.sep in t.pretrained or t.pretrained.endswith((".pt", ".pth", ".bin", ".safetensors"))):
        if not cfg.path(t.pretrained).exists():
            raise ConfigError(f"run config.teacher.pretrained: '{cfg.path(t.pretrained)}' does not exist")
