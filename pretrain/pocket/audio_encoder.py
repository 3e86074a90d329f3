"""The pocket audio encoder: ImageBind's emergent zero-shot, trained on a CPU from registry sounds.

    python -m pretrain.pocket train --data /work/data/pocket --stages audio

A small AVID-style ConvNet (``encoders/convnet.py``) is trained with rebind's ``pretrain`` package
so that a sound lands where the FROZEN pocket CLIP image tower puts pictures of the same category.
It never sees text. It is then classified through the pocket CLIP's TEXT tower with the canonical
prompts (``pretrain.pocket.prompts``): emergent zero-shot.

Why the recipe looks like this (the ablations are in MODEL_CARD.md):

* Class-level pairing. A sound has no picture of its own, only the pictures of its category, so
  the best target for it is its category's image-embedding CENTROID (mean over every train picture
  and the K cached crops of each). ``objective``:
  ``prototype`` (default) -- cross-entropy of the unit embedding against ALL categories' image
  centroids at a fixed temperature: the centroids are a frozen classifier made of pictures (InfoNCE
  whose negatives are every other category's pictures, not only those that happen to be in the
  batch); ``centroid`` -- pretrain's in-batch multi-positive InfoNCE against the centroids;
  ``sample`` -- pretrain's stock class-level pairing (each row draws a cached crop of a random
  picture of its label; multi-positive InfoNCE).
* Tiny, unbalanced data (~330 train clips, 2 to 53 per category): rows of thin categories are
  repeated in the training manifest up to ``min_rows_per_class``; augmentation is pretrain's
  (temporal jitter = random crop + tempo, volume, SpecAugment frequency and time masks) plus mixing
  a clip with another clip of the same category from the batch (``mix_prob``).
* The ceiling: the SAME student, data, augmentation, batches and step budget, trained WITH labels
  and classified by its own head (``ceiling_head``: learned cosine prototypes at the same
  temperature, or a linear layer), chosen on VAL like the emergent recipe. Both read the clips of
  the categories that have pictures (xylophone has none: no pairing is possible for it).

Outputs (``--out``, default ``encoders/weights/pocket``): ``audio.safetensors`` (float16) and the
``audio`` entry of ``config.json`` / ``encoders/configs/pocket.json``; ``audio_recipe.json`` (the
recipe, data fingerprints, timings and every figure), ``audio_metrics.csv`` (train + val curves),
figures in ``docs/figures/pocket/``, and the "pocket audio encoder" section of MODEL_CARD.md.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
FIGURES = REPO / "docs" / "figures" / "pocket"
REGISTRY_CONFIG = REPO / "encoders" / "configs" / "pocket.json"
DEFAULT_WEIGHTS = REPO / "encoders" / "weights" / "pocket"

OBJECTIVES = ("prototype", "centroid", "sample")
CEILING_HEADS = ("cosine", "linear")


@dataclass
class AudioRecipe:
    seed: int = 0  # of a single run (train_one)
    seeds: list = field(default_factory=lambda: [0])  # the stage trains each (+ ceiling); ships the first
    # student: encoders' AVID-style ConvNet on a small log-mel fbank
    channels: list = field(default_factory=lambda: [16, 32, 64, 128])
    strides: list = field(default_factory=lambda: [1, 2, 2, 2])
    fc: list = field(default_factory=lambda: [256])
    dropout: float = 0.0
    mel_bins: int = 64
    clip_seconds: float = 1.5  # median clip is 1.4 s; 3 windows per file at evaluation
    frame_length_ms: float = 40.0
    frame_shift_ms: float = 20.0  # half ImageBind's frame rate: a CPU step costs half
    target_frames: int = 75  # 1.5 s at a 20 ms shift
    fbank_mean: float = -4.14  # measured on the train clips with these settings (padding excluded)
    fbank_std: float = 5.10
    # teacher: the frozen pocket CLIP image tower, K cached crops per train picture
    teacher: str = "rebind:pocket"
    teacher_views: int = 8
    # objective (see the module docstring)
    objective: str = "prototype"
    temperature: float = 0.1
    # data
    min_rows_per_class: int = 8
    # augmentation (pretrain.config.AugmentConfig + same-category mixing)
    freq_mask: int = 8
    time_mask: int = 20
    volume: list = field(default_factory=lambda: [0.5, 1.5])
    duration: list = field(default_factory=lambda: [0.7, 1.4])
    mix_prob: float = 0.5
    mix_gain: list = field(default_factory=lambda: [0.2, 0.8])
    freq_shift: int = 0  # roll the mel axis by up to +-k bins (a pitch change across recordings)
    spectral_tilt: float = 0.0  # add a random linear slope across mel bins, in normalised units
    # self-supervised start on the unlabelled pool (audio_ssl.py; 0 = random init)
    ssl_steps: int = 1500
    ssl_batch: int = 128  # clips per step, two views each
    ssl_lr: float = 2e-3
    ssl_temperature: float = 0.2
    # optimisation
    steps: int = 700  # val top-1 peaks by ~350-700 steps: ~330 clips overfit after that
    batch_size: int = 64
    lr: float = 1e-3  # from the SSL start; 3e-3 from random init (1e-3 there lost ~5 points)
    weight_decay: float = 0.05
    warmup_steps: int = 100
    min_lr_ratio: float = 0.02
    threads: int = 1  # the shipped run; stages train side by side on 2 cores
    eval_every: int = 350
    # the text-supervised ceiling
    ceiling: bool = True
    ceiling_head: str = "cosine"
    save_dtype: str = "float16"

    @classmethod
    def from_dict(cls, data: dict) -> "AudioRecipe":
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown AudioRecipe field(s) {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**data)

    def validate(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective {self.objective!r}: expected one of {OBJECTIVES}")
        if self.ceiling_head not in CEILING_HEADS:
            raise ValueError(f"ceiling_head {self.ceiling_head!r}: expected one of {CEILING_HEADS}")
        if len(self.channels) != len(self.strides):
            raise ValueError(f"channels {self.channels} and strides {self.strides} need one entry per stage")
        if self.steps < 1 or self.batch_size < 2 or self.teacher_views < 1:
            raise ValueError("steps >= 1, batch_size >= 2 and teacher_views >= 1 are required")
        if not 0 <= self.mix_prob <= 1:
            raise ValueError(f"mix_prob must be in [0, 1], got {self.mix_prob}")
        if self.ssl_steps < 0 or (self.ssl_steps and (self.ssl_batch < 2 or self.ssl_temperature <= 0)):
            raise ValueError("ssl_steps >= 0 (0 = no self-supervised start); with it, ssl_batch >= 2 and "
                             "ssl_temperature > 0")
        if self.save_dtype not in ("float16", "float32"):
            raise ValueError(f"save_dtype must be 'float16' or 'float32', got {self.save_dtype!r}")


# ------------------------------------------------------------------------------------ configs

def audio_modality_config(recipe: AudioRecipe) -> dict:
    """The ``audio`` entry of the pocket encoder config (architecture + preprocessing)."""
    return {"arch": "convnet", "channels": list(recipe.channels), "strides": list(recipe.strides),
            "fc": list(recipe.fc), "dropout": recipe.dropout,
            "preprocess": {"kind": "audio_fbank", "mel_bins": recipe.mel_bins,
                           "clip_seconds": recipe.clip_seconds, "clips": 3,
                           "frame_length_ms": recipe.frame_length_ms, "frame_shift_ms": recipe.frame_shift_ms,
                           "target_frames": recipe.target_frames,
                           "mean": recipe.fbank_mean, "std": recipe.fbank_std}}


def fbank_config(recipe: AudioRecipe):
    """The ``encoders.AudioFbankConfig`` of the recipe's preprocessing (held-out clips, SSL views)."""
    from encoders.audio import AudioFbankConfig
    from encoders.config import from_dict

    return from_dict(AudioFbankConfig, audio_modality_config(recipe)["preprocess"], "audio")


def write_training_manifests(data: Path, work: Path, recipe: AudioRecipe) -> dict[str, Path]:
    """Manifests for pretrain: ``sounds.csv`` (audio,label: the train clips of categories that have
    pictures, thin categories repeated up to ``min_rows_per_class`` rows) and ``images.csv``
    (image,label: the train pictures). The emergent student and the ceiling read the same rows."""
    from .manifests import read_manifest

    work.mkdir(parents=True, exist_ok=True)
    sounds = read_manifest(data / "manifests" / "audio_train.csv")
    images = read_manifest(data / "manifests" / "images_train.csv")
    pictured = {r["label"] for r in images}
    by_label: dict[str, list[str]] = {}
    for r in sounds:
        if r["label"] in pictured:  # xylophone has no picture: nothing to pair its sounds with
            by_label.setdefault(r["label"], []).append(r["path"])
    out = {"sounds": work / "sounds.csv", "images": work / "images.csv"}
    with open(out["sounds"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["audio", "label"])
        for label in sorted(by_label):
            paths = by_label[label]
            for _ in range(max(1, math.ceil(recipe.min_rows_per_class / len(paths)))):
                w.writerows([p, label] for p in paths)
    with open(out["images"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "label"])
        w.writerows([r["path"], r["label"]] for r in images)
    return out


def run_config(recipe: AudioRecipe, data: Path, work: Path, manifests: dict[str, Path], name: str,
               progress: bool = True) -> dict:
    """The pretrain run config (a dict for ``pretrain.train`` / ``pretrain.Trainer``)."""
    return {
        "out_dir": str(work / name),
        "seed": recipe.seed,
        "student": {"model": {"name": "pocket", "space": "pocket",
                              "modalities": {"audio": audio_modality_config(recipe)}},
                    "modality": "audio"},
        "teacher": {"model": recipe.teacher, "cache": str(teacher_cache_dir(work, recipe)),
                    "image_augment": "crop"},
        "data": {"train": str(manifests["sounds"]), "root": str(data),
                 "images": str(manifests["images"]), "images_root": str(data), "pairing": "labels",
                 "preload": True},
        "augment": {"freq_mask": recipe.freq_mask, "time_mask": recipe.time_mask, "volume": list(recipe.volume),
                    "temporal_jitter": True, "duration": list(recipe.duration)},
        "loss": {"temperature": recipe.temperature, "positives": "labels"},
        **optimisation_sections(recipe, progress),
    }


def optimisation_sections(recipe, progress: bool) -> dict:
    """The ``optim`` and ``train`` sections of a pocket encoder's pretrain run config (audio, depth)."""
    return {
        "optim": {"lr": recipe.lr, "weight_decay": recipe.weight_decay, "warmup_steps": recipe.warmup_steps,
                  "min_lr_ratio": recipe.min_lr_ratio},
        "train": {"batch_size": recipe.batch_size, "steps": recipe.steps, "threads": recipe.threads,
                  "log_every": 10, "checkpoint_every": recipe.steps, "progress": progress},
    }


def teacher_cache_dir(work: Path, recipe: AudioRecipe) -> Path:
    """One cache per (teacher weights, views): a retrained CLIP gets a new folder."""
    from .. import teacher as T
    from ..config import TeacherConfig

    ident = T.teacher_identity(TeacherConfig(model=recipe.teacher))
    tag = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:10]
    return work / f"teacher_cache_{tag}_v{recipe.teacher_views}"


def ensure_teacher_cache(cfg: dict, recipe: AudioRecipe, progress: bool = True) -> Path:
    """The K crops per picture are drawn once (seed 0) and shared by every run and seed."""
    import pretrain

    run = pretrain.load_config(dict(cfg, seed=0), check_files=False)
    return pretrain.cache_teacher(run, views=recipe.teacher_views, progress=progress)


def class_centroids(cache_dir: Path, images_csv: Path, classes: list[str]) -> torch.Tensor:
    """[C, D] unit image-embedding centroid of each class: mean over its pictures of the (unit) mean
    over the cached views, re-normalised."""
    from ..data import read_manifest
    from ..teacher import TeacherCache

    cache = TeacherCache.open(cache_dir)
    index = cache.index()
    rows, _ = read_manifest(images_csv)
    per_class: dict[str, list[torch.Tensor]] = {c: [] for c in classes}
    for r in rows:
        if r["label"] in per_class and r["image"] in index:
            views = torch.from_numpy(np.array(cache.embeddings[index[r["image"]]], dtype=np.float32))
            per_class[r["label"]].append(F.normalize(F.normalize(views, dim=-1).mean(0), dim=-1))
    empty = [c for c, v in per_class.items() if not v]
    if empty:
        raise ValueError(f"no cached picture for class(es) {empty}: the emergent objective needs one per class")
    return torch.stack([F.normalize(torch.stack(v).mean(0), dim=-1) for v in per_class.values()])


# ------------------------------------------------------------------------------------ trainer

def mix_same_label(x: dict, labels: torch.Tensor, prob: float, gain: tuple[float, float],
                   gen: torch.Generator) -> dict:
    """Add to a row, with probability ``prob``, another row of the same label (gain ~ U[gain]).

    Works on the waveform segments before the fbank (a real mixture of two sounds); the partner is
    cut or zero-padded to the row's length. Rows without a same-label partner stay as they are.
    """
    wave, lengths = x["wave"], x["lengths"]
    n = wave.shape[0]
    mixed = wave.clone()
    draw = torch.rand(n, generator=gen)
    picks = torch.rand(n, generator=gen)
    gains = gain[0] + (gain[1] - gain[0]) * torch.rand(n, generator=gen)
    for i in range(n):
        if draw[i] >= prob:
            continue
        partners = torch.nonzero((labels == labels[i]) & (torch.arange(n) != i)).flatten()
        if len(partners) == 0:
            continue
        j = int(partners[int(picks[i] * len(partners))])
        m = int(min(lengths[i], lengths[j]))
        mixed[i, :m] += gains[i] * wave[j, :m]
    return dict(x, wave=mixed)


def shift_and_tilt(x: torch.Tensor, max_shift: int, max_tilt: float, pad_value: float,
                   gen: torch.Generator) -> torch.Tensor:
    """Per row: roll the mel axis by k ~ U{-max_shift..max_shift} bins (edge bins repeated) and add
    a linear slope ~ U[-max_tilt, max_tilt] across the bins, on frames that hold signal (the
    preprocessing's zero padding keeps its value)."""
    b, _, mel, frames = x.shape
    pad = (x == pad_value).all(dim=2, keepdim=True)  # [B, 1, 1, T] padded frames
    if max_shift:
        k = torch.randint(-max_shift, max_shift + 1, (b,), generator=gen)
        idx = (torch.arange(mel)[None] - k[:, None]).clamp(0, mel - 1).to(x.device)  # [B, mel]
        x = x.gather(2, idx[:, None, :, None].expand(b, 1, mel, frames))
    if max_tilt:
        slope = (torch.rand(b, generator=gen) * 2 - 1) * max_tilt
        x = x + (slope[:, None] * torch.linspace(-1, 1, mel)[None]).to(x.device)[:, None, :, None]
    return torch.where(pad, torch.full_like(x, pad_value), x)


class CosineHead(torch.nn.Module):
    """Learned class prototypes, scored by cosine / temperature (the ceiling's default head)."""

    def __init__(self, dim: int, classes: int, temperature: float):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(classes, dim) * dim ** -0.5)
        self.temperature = temperature

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return F.normalize(z, dim=-1) @ F.normalize(self.weight, dim=-1).T / self.temperature


def _make_trainer_class():
    """PocketAudioTrainer subclasses pretrain's Trainer (imported lazily: this module stays light)."""
    from ..loss import info_nce
    from ..train import Trainer, lr_lambda, param_groups

    class PocketAudioTrainer(Trainer):
        """pretrain's Trainer (data, augmentation, cached teacher, schedule, checkpoints, metrics,
        export) with the pocket objectives: ``prototype`` / ``centroid`` / ``sample`` (emergent) or
        ``ceiling`` (labels, own head)."""

        def __init__(self, config: dict, recipe: AudioRecipe, objective: str, images_csv: Path):
            super().__init__(config)
            self.recipe, self.objective = recipe, objective
            self.classes = list(self.dataset.classes)
            self.mix_gen = torch.Generator().manual_seed(recipe.seed * 7919 + 17)
            self.head = None
            # the class image centroids: the emergent targets, and a diagnostic for every run
            self.prototypes = class_centroids(self.cache.folder, images_csv, self.classes).to(self.device)
            if objective == "ceiling":
                dim = self.student.embed_dim
                self.head = (CosineHead(dim, len(self.classes), recipe.temperature)
                             if recipe.ceiling_head == "cosine" else torch.nn.Linear(dim, len(self.classes)))
                self.head.to(self.device).train()
                o = self.cfg.optim  # the optimizer and schedule again, now with the head's parameters
                groups = param_groups(self.student, o.weight_decay) + param_groups(self.head, o.weight_decay)
                self.optimizer = torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps)
                self.scheduler = torch.optim.lr_scheduler.LambdaLR(
                    self.optimizer, lr_lambda(self.warmup, self.total_steps, o.min_lr_ratio))

        def model_input(self, batch: dict) -> torch.Tensor:
            r = self.recipe
            if r.mix_prob > 0:
                batch = dict(batch, x=mix_same_label(batch["x"], batch["labels"], r.mix_prob, tuple(r.mix_gain),
                                                     self.mix_gen))
            x = super().model_input(batch)
            if r.freq_shift or r.spectral_tilt:
                pad_value = float((torch.zeros(1) - r.fbank_mean) / r.fbank_std)  # as the fbank transform pads
                x = shift_and_tilt(x, r.freq_shift, r.spectral_tilt, pad_value, self.mix_gen)
            return x

        def step(self, batch: dict) -> dict[str, torch.Tensor]:
            if self.objective == "sample":
                return super().step(batch)  # pretrain's own class-level pairing
            x = self.model_input(batch)
            labels = batch["labels"].to(self.device)
            s = self.forward(x, output="raw").float()
            tau = self.recipe.temperature
            if self.objective == "prototype":
                logits = F.normalize(s, dim=-1) @ self.prototypes.T / tau
                loss = F.cross_entropy(logits, labels)
                acc = (logits.argmax(1) == labels).float().mean()
            elif self.objective == "centroid":
                loss, stats = info_nce(s, self.prototypes[labels], tau, labels)
                acc = stats["acc"]
            else:  # ceiling
                logits = self.head(s)
                loss = F.cross_entropy(logits, labels)
                acc = (logits.argmax(1) == labels).float().mean()
            loss.backward()
            params = list(self.student.parameters()) + (list(self.head.parameters()) if self.head is not None else [])
            grad_norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.optim.grad_clip or float("inf"))
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
            self.step_num += 1
            return {"loss": loss.detach(), "acc": acc.detach(), "grad_norm": grad_norm.detach()}

        def export(self, interrupted: bool, last_loss: float | None):
            if self.objective == "ceiling":
                return None  # a measurement, never shipped
            return super().export(interrupted, last_loss)

    return PocketAudioTrainer


# ---------------------------------------------------------------------------------- evaluation

@dataclass
class HeldOut:
    """Preprocessed held-out clips (3 windows each, as ``encoders.embed_audio`` sees them)."""

    x: torch.Tensor  # [N, 3, 1, mel, frames]
    labels: list[str]
    paths: list[str]


def load_heldout(data: Path, split: str, recipe: AudioRecipe) -> HeldOut:
    from encoders.audio import AudioPreprocessor

    from .manifests import read_manifest

    rows = read_manifest(data / "manifests" / f"audio_{split}.csv")
    pre = AudioPreprocessor(fbank_config(recipe))
    x = pre([str(data / r["path"]) for r in rows])
    return HeldOut(x, [r["label"] for r in rows], [r["path"] for r in rows])


@torch.no_grad()
def embed_heldout(student, held: HeldOut, batch: int = 64) -> torch.Tensor:
    was = student.training
    student.eval()
    out = torch.cat([student(held.x[i: i + batch], output="unit") for i in range(0, len(held.x), batch)])
    student.train(was)
    return out


def topk(scores: torch.Tensor, truth: torch.Tensor, k: int) -> float:
    return float((scores.topk(min(k, scores.shape[1]), dim=1).indices == truth[:, None]).any(1).float().mean())


def classify(emb: torch.Tensor, labels: list[str], class_names: list[str], class_emb: torch.Tensor) -> dict:
    """Nearest class embedding; every name in ``class_names`` is a candidate (chance 1/len)."""
    index = {n: i for i, n in enumerate(class_names)}
    truth = torch.tensor([index[l] for l in labels])
    scores = emb @ class_emb.T
    return {"n": len(labels), "top1": topk(scores, truth, 1), "top5": topk(scores, truth, 5),
            "chance_top1": 1 / len(class_names), "chance_top5": min(5, len(class_names)) / len(class_names),
            "pred": scores.argmax(1).tolist(), "true": truth.tolist()}


# ------------------------------------------------------------------------------------ training

@dataclass
class AudioRun:
    objective: str
    seed: int
    seconds: float
    curves: list[dict]  # step, val figures
    final: dict  # val figures at the end
    trainer: Any = None
    history: list[dict] = field(default_factory=list)  # pretrain's metrics.csv rows (loss, lr, ...)


def train_one(data: Path, work: Path, recipe: AudioRecipe, objective: str, text_emb: torch.Tensor,
              class_names: list[str], val: HeldOut | None, name: str | None = None, progress: bool = True,
              log: Callable[[str], None] = print, init: dict | None = None) -> AudioRun:
    """One pretrain run of the emergent student (``objective``) or of the ceiling (``"ceiling"``),
    from random weights or from ``init`` (a student state dict: the SSL start)."""
    recipe.validate()
    torch.set_num_threads(recipe.threads)
    manifests = write_training_manifests(data, work, recipe)
    name = name or f"{objective}_seed{recipe.seed}"
    cfg = run_config(recipe, data, work, manifests, name, progress=progress)
    out = Path(cfg["out_dir"])
    if out.exists():
        shutil.rmtree(out)  # a recipe run always starts from scratch
    ensure_teacher_cache(cfg, recipe, progress=progress)
    Trainer = _make_trainer_class()
    trainer = Trainer(cfg, recipe, objective, manifests["images"])
    if init is not None:
        trainer.student.load_state_dict(init)

    def evaluate_now(step: int) -> dict:
        row = {"step": step}
        if val is None:
            return row
        emb = embed_heldout(trainer.student, val)
        row.update({f"val_text_{k}": v for k, v in classify(emb, val.labels, class_names, text_emb).items()
                    if k in ("top1", "top5")})
        # audio -> image-class link alone: nearest class IMAGE centroid (no text involved)
        known = [i for i, l in enumerate(val.labels) if l in trainer.classes]
        row["val_image_top1"] = classify(emb[known].cpu(), [val.labels[i] for i in known], trainer.classes,
                                         trainer.prototypes.cpu())["top1"]
        if trainer.head is not None:
            trainer.head.eval()
            with torch.no_grad():
                logits = trainer.head(emb if recipe.ceiling_head == "cosine" else embed_raw(trainer.student, val))
            trainer.head.train()
            index = {c: i for i, c in enumerate(trainer.classes)}
            truth = torch.tensor([index.get(l, -1) for l in val.labels])
            row["val_head_top1"] = topk(logits, truth, 1)
            row["val_head_top5"] = topk(logits, truth, 5)
        return row

    result, seconds, curves, final = run_with_curves(trainer, recipe.eval_every, evaluate_now, f"audio {name}", log)
    return AudioRun(objective, recipe.seed, seconds, curves, final, trainer, result.history)


def run_with_curves(trainer, eval_every: int, evaluate_now: Callable[[int], dict], label: str,
                    log: Callable[[str], None]):
    """Run a pretrain Trainer, evaluating every ``eval_every`` steps and once at the end (audio, depth).

    Returns (the run's result, training seconds, every evaluation row, the final row)."""
    curves: list[dict] = []

    def callback(tr, stats):
        if eval_every and stats["step"] % eval_every == 0 and stats["step"] < tr.total_steps:
            curves.append(evaluate_now(stats["step"]))
        return False

    t0 = time.time()
    result = trainer.run(callback)
    seconds = time.time() - t0
    if result.interrupted:
        # the Trainer stops cleanly on SIGINT/SIGTERM; a stage must not go on to evaluate and
        # ship the truncated model (the pocket runs always restart from scratch)
        how = f"signal {result.signal}" if result.signal else "its callback"
        raise KeyboardInterrupt(f"{label}: stopped by {how} at step {result.step} of "
                                f"{result.total_steps}; nothing was written to the weights folder, rerun the stage")
    final = evaluate_now(trainer.step_num)
    curves.append(final)
    log(f"{label}: {seconds / 60:.1f} min; val " + ", ".join(f"{k} {v:.3f}" for k, v in final.items() if k != "step"))
    return result, seconds, curves, final


@torch.no_grad()
def embed_raw(student, held: HeldOut) -> torch.Tensor:
    was = student.training
    student.eval()
    out = student(held.x, output="raw")
    student.train(was)
    return out


# ------------------------------------------------------------------------------------- export

def pocket_config(out: Path) -> dict:
    """The pocket encoder config the weights folder ``out`` holds (the CLIP stage writes it first)."""
    for path in (out / "config.json", REGISTRY_CONFIG):
        if path.exists():
            cfg = json.loads(path.read_text())
            if "vision" in cfg.get("modalities", {}):
                return cfg
    raise FileNotFoundError(f"no pocket CLIP in '{out}' (config.json with a vision modality): run the clip "
                            f"stage first (python -m pretrain.pocket train --data DIR --stages clip)")


def export_modality(student, modality: str, entry: dict, out: Path, dtype: str) -> Path:
    """Write ``<out>/<modality>.safetensors`` and add ``entry`` to ``<out>/config.json`` (and to
    encoders/configs/pocket.json when ``out`` is the shipped weights folder)."""
    import encoders

    out = Path(out)
    config = pocket_config(out)
    config = copy.deepcopy(config)
    config["modalities"][modality] = entry
    config.setdefault("name", "pocket")
    state = {f"{modality}.{k}": v for k, v in student.state_dict().items()}
    enc = encoders.create(config, modalities=(modality,), checkpoint=state)
    written = encoders.save_modalities(enc, out, (modality,), dtype=torch.float16 if dtype == "float16" else None)
    if out.resolve() == DEFAULT_WEIGHTS.resolve():
        registry = json.loads(REGISTRY_CONFIG.read_text()) if REGISTRY_CONFIG.exists() else \
            {k: v for k, v in config.items() if k not in ("name", "space_info")}
        registry.setdefault("modalities", {})[modality] = entry
        REGISTRY_CONFIG.write_text(json.dumps(registry, indent=2) + "\n")
    return written[0]


# ------------------------------------------------------------------------------------ figures

def plot_confusion(result: dict, names: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [n for n in names if n in set(result["true"])]
    m = np.zeros((len(present), len(names)))
    for t, p in zip(result["true"], result["pred"]):
        m[present.index(t), names.index(p)] += 1
    m = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(11, 0.24 * len(present) + 2.5))
    ax.imshow(m, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(present)), present, fontsize=7)
    for i, t in enumerate(present):
        ax.add_patch(plt.Rectangle((names.index(t) - 0.5, i - 0.5), 1, 1, fill=False, ec="green", lw=0.8))
    ax.set_xlabel("predicted (pocket CLIP text prompts)"), ax.set_ylabel("true (held-out clips)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_similarity(emb: torch.Tensor, labels: list[str], names: list[str], text: torch.Tensor, path: Path,
                    title: str) -> None:
    """Rows: each held-out class's mean clip embedding; columns: every class's text embedding."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [n for n in names if n in set(labels)]
    rows = torch.stack([F.normalize(emb[[i for i, l in enumerate(labels) if l == n]].mean(0), dim=-1)
                        for n in present])
    sim = (rows @ text.T).numpy()
    fig, ax = plt.subplots(figsize=(11, 0.24 * len(present) + 2.5))
    im = ax.imshow(sim, cmap="viridis", aspect="auto")
    for i, n in enumerate(present):
        j = int(sim[i].argmax())
        ax.plot(j, i, marker="o", ms=3, color="white" if names[j] == n else "red")
        ax.add_patch(plt.Rectangle((names.index(n) - 0.5, i - 0.5), 1, 1, fill=False, ec="white", lw=0.8))
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(present)), present, fontsize=7)
    ax.set_xlabel("class text embedding (prompt ensemble)"), ax.set_ylabel("mean embedding of held-out clips")
    ax.set_title(title + "  (box: true class; dot: best match, red if wrong)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.02, label="cosine")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_curves(runs: dict[str, "AudioRun"], path: Path, chance: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    for label, run in runs.items():
        rows = run.history
        if rows:
            a.plot([int(r["step"]) for r in rows], [float(r["loss"]) for r in rows], label=label)
        steps = [c["step"] for c in run.curves]
        key = "val_head_top1" if run.objective == "ceiling" else "val_text_top1"
        b.plot(steps, [c.get(key, float("nan")) for c in run.curves], "o-", label=f"{label}: val top-1")
        if run.objective != "ceiling":
            b.plot(steps, [c.get("val_image_top1", float("nan")) for c in run.curves], "s--",
                   label=f"{label}: val nearest image centroid")
    a.set_xlabel("step"), a.set_ylabel("training loss"), a.set_title("training loss"), a.legend(fontsize=8)
    b.axhline(chance, color="gray", ls=":", label="chance")
    b.set_ylim(0, 1), b.set_xlabel("step"), b.set_title("held-out (val) accuracy"), b.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_card_section(card: Path, start: str, end: str, section: str) -> None:
    """Insert or replace one marked section of MODEL_CARD.md; other stages' sections are kept."""
    head = ("# rebind pocket models\n\nSmall models rebind trains itself from package-registry data "
            "(`python -m pretrain.pocket`), shipped as the `pocket` encoder config.\n\n")
    text = card.read_text() if card.exists() else head
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    card.write_text(text)


# ---------------------------------------------------------------------------------- the stage

CARD_START, CARD_END = "<!-- pocket-audio:start -->", "<!-- pocket-audio:end -->"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _mean_sd(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "values": [float(v) for v in values]}


def write_metrics_csv(runs: dict[str, AudioRun], path: Path) -> None:
    """Training rows (pretrain's metrics, every 10 steps) and val rows (every eval_every) of every run."""
    keys = ["run", "step", "loss", "acc", "lr", "grad_norm", "samples_per_s", "val_text_top1", "val_text_top5",
            "val_image_top1", "val_head_top1", "val_head_top5"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, keys, extrasaction="ignore")
        w.writeheader()
        for name, run in runs.items():
            for row in run.history:
                w.writerow({"run": name, **row})
            for row in run.curves:
                w.writerow({"run": name, **row})


def ssl_start(data: Path, work: Path, recipe: AudioRecipe, progress: bool = True,
              log: Callable[[str], None] = print) -> tuple[dict, dict]:
    """The SSL start: a randomly initialised student (seeded by ``recipe.seed``) trained on the
    data's unlabelled pool. Returns (student state dict, summary)."""
    import encoders

    from .audio_ssl import pretrain_on_pool
    from .pool import load_pool

    waves = load_pool(data)
    torch.manual_seed(recipe.seed)
    config = {"name": "pocket_audio_ssl", "space": "pocket", "modalities": {"audio": audio_modality_config(recipe)}}
    student = encoders.create(config, checkpoint=False)["audio"]
    for module in student.modules():  # PyTorch's default init, not the ConvNet's kaiming fan_out:
        if module is not student and hasattr(module, "reset_parameters"):  # the start that measured best
            module.reset_parameters()
    summary = pretrain_on_pool(student, waves, recipe, Path(work) / "ssl", progress, log)
    return {k: v.detach().clone() for k, v in student.state_dict().items()}, summary


def run_audio_stage(data: Path, out: Path, recipe: AudioRecipe, seeds: list[int] | None = None,
                    work: Path | None = None, progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Train the emergent audio encoder (+ the ceiling) for every seed, ship the first seed's encoder,
    evaluate it through the public path and write recipe, metrics, figures and the card section."""
    import encoders

    from .evaluate import audio_image_retrieval, heldout_sounds, zero_shot
    from .prompts import CLASS_NAMES, class_text_embeddings

    recipe.validate()
    seeds = list(seeds) if seeds else list(recipe.seeds)
    data, out = Path(data), Path(out).expanduser().resolve()
    register = out == DEFAULT_WEIGHTS.resolve()
    figures = FIGURES if register else out / "figures"
    work = Path(work) if work else REPO / "runs" / "pocket_audio"
    recipe = copy.deepcopy(recipe)
    recipe.teacher = "rebind:pocket" if register else f"rebind:{out}"  # the CLIP the clip stage wrote into this folder
    names = list(CLASS_NAMES)
    clip_text = encoders.create(str(out), modalities=("text",))
    text = class_text_embeddings(names, model=clip_text)
    val, test = load_heldout(data, "val", recipe), load_heldout(data, "test", recipe)
    t_start = time.time()
    init, ssl = None, None
    if recipe.ssl_steps:  # one self-supervised start, shared by every seed's emergent run and ceiling
        init, ssl = ssl_start(data, work, recipe, progress, log)
    runs: dict[str, AudioRun] = {}
    per_seed = []
    for seed in seeds:
        r = copy.deepcopy(recipe)
        r.seed = seed
        emergent = train_one(data, work, r, r.objective, text, names, val, f"emergent_seed{seed}", progress, log,
                             init=init)
        runs[f"emergent_seed{seed}"] = emergent
        emb = embed_heldout(emergent.trainer.student, test)
        zs = classify(emb, test.labels, names, text)
        img = classify(emb, test.labels, emergent.trainer.classes, emergent.trainer.prototypes.cpu())
        row = {"seed": seed, "emergent_top1": zs["top1"], "emergent_top5": zs["top5"],
               "image_centroid_top1": img["top1"], "emergent_minutes": emergent.seconds / 60}
        if r.ceiling:
            ceiling = train_one(data, work, r, "ceiling", text, names, val, f"ceiling_seed{seed}", progress, log,
                                init=init)
            runs[f"ceiling_seed{seed}"] = ceiling
            head = ceiling.trainer.head.eval()
            with torch.no_grad():
                logits = head(embed_heldout(ceiling.trainer.student, test) if r.ceiling_head == "cosine"
                              else embed_raw(ceiling.trainer.student, test))
            index = {c: i for i, c in enumerate(ceiling.trainer.classes)}
            truth = torch.tensor([index[l] for l in test.labels])
            row.update(ceiling_top1=topk(logits, truth, 1), ceiling_top5=topk(logits, truth, 5),
                       ceiling_classes=len(ceiling.trainer.classes), ceiling_minutes=ceiling.seconds / 60)
        per_seed.append(row)
        log("audio seed {seed}: test emergent top-1 {emergent_top1:.3f} top-5 {emergent_top5:.3f}".format(**row)
            + (", ceiling top-1 {ceiling_top1:.3f}".format(**row) if r.ceiling else ""))
    train_minutes = (time.time() - t_start) / 60

    # ship the first seed's encoder, then measure it the way users get it
    shipped = runs[f"emergent_seed{seeds[0]}"]
    entry = audio_modality_config(recipe)
    weights = export_modality(shipped.trainer.student, "audio", entry, out, recipe.save_dtype)
    audio_model = encoders.create(str(out), modalities=("audio",))
    result: dict[str, Any] = {"classes": names, "chance_top1": 1 / len(names), "chance_top5": 5 / len(names),
                              "test_set": heldout_summary(data, "test")}
    for split in ("val", "test"):
        sounds = heldout_sounds(data, split, model=audio_model)
        zs = zero_shot(sounds.embeddings, sounds.labels, names, text)
        result[split] = {"zero_shot": zs,
                         "audio_image": audio_image_retrieval(sounds, data, split,
                                                              encoders.create(str(out), modalities=("vision",)))}
        if split == "test":
            test_sounds = sounds
    seeds_summary = {k: _mean_sd([row[k] for row in per_seed]) for k in per_seed[0] if k != "seed"}
    if recipe.ceiling:
        seeds_summary["ratio_top1"] = _mean_sd([row["emergent_top1"] / max(row["ceiling_top1"], 1e-9)
                                                for row in per_seed])
    result["seeds"] = {"per_seed": per_seed, "summary": seeds_summary}
    if ssl is not None:
        result["ssl"] = {k: v for k, v in ssl.items() if k != "history"}

    # figures
    figures.mkdir(parents=True, exist_ok=True)
    zs = result["test"]["zero_shot"]
    plot_confusion(zs, names, figures / "audio_confusion.png",
                   f"pocket audio encoder, emergent zero-shot on {zs['n']} held-out test clips: "
                   f"top-1 {zs['top1']:.1%} (chance {1 / len(names):.1%})")
    plot_similarity(test_sounds.embeddings, test_sounds.labels, names, text, figures / "audio_text_similarity.png",
                    "held-out test clips vs pocket CLIP class prompts")
    plot_curves({k: v for k, v in runs.items() if k.endswith(f"seed{seeds[0]}")}, figures / "audio_curves.png",
                1 / len(names))
    write_metrics_csv(runs, out / "audio_metrics.csv")
    record = {
        "stage": "audio", "recipe": asdict(recipe), "seeds": seeds, "encoder_config": entry,
        "data": {"dir": str(data), **{f"{m}.sha256": _sha(data / "manifests" / m)
                                      for m in ("audio_train.csv", "audio_val.csv", "audio_test.csv",
                                                "images_train.csv")}},
        "teacher": {"clip_vision.sha256": _sha(out / "vision.safetensors")},
        "environment": {"torch": torch.__version__, "threads": recipe.threads},
        "run": {"train_minutes_all_seeds": train_minutes, "params": sum(p.numel() for p in shipped.trainer.student.parameters()),
                "size_mb": weights.stat().st_size / 1e6,
                "train_clips": len(shipped.trainer.dataset), "train_classes": len(shipped.trainer.classes)},
        "results": {k: v for k, v in result.items()},
    }
    (out / "audio_recipe.json").write_text(json.dumps(record, indent=1) + "\n")
    rel = os.path.relpath(figures, out)
    write_card_section(out / "MODEL_CARD.md", CARD_START, CARD_END, model_card_section(record, rel))
    log(f"audio: wrote {weights} ({weights.stat().st_size / 1e6:.2f} MB)")
    return record


def heldout_summary(data: Path, split: str) -> dict:
    """How thin a held-out split is: its recordings, the categories with 1-2 clips, and dog's share."""
    from collections import Counter  # noqa: PLC0415

    from .manifests import AUDIO_COLUMNS, read_manifest  # noqa: PLC0415

    rows = read_manifest(Path(data) / "manifests" / f"audio_{split}.csv", AUDIO_COLUMNS)
    dog = [row for row in rows if row["label"] == "dog"]
    return {"clips": len(rows), "recordings": len({row["recording"] for row in rows}),
            "thin": sum(1 for n in Counter(row["label"] for row in rows).values() if n <= 2),
            "dog_clips": len(dog), "dog_recordings": len({row["recording"] for row in dog})}


def ssl_bullet(r: dict, ssl: dict | None) -> str:
    if not ssl:
        return ""
    return (f"- **Self-supervised start (no labels, no pictures, no text):** before the step above, the ConvNet "
            f"trains {ssl['steps']} steps\n  of SimCLR on the data's unlabelled pool ({ssl['pool_clips']} clips, "
            f"{ssl['pool_hours']:.1f} h: sounds of the same packages that no\n  category names, none of them a held-out "
            f"clip's name or copy; `pretrain/pocket/pool.py`): two augmented views of one\n  clip must find each other "
            f"in a batch of {r['ssl_batch']} clips (temperature {r['ssl_temperature']}, lr {r['ssl_lr']}); final pair "
            f"accuracy {ssl['final_pair_acc']:.2f}, {ssl['minutes']:.1f} min.\n  Every seed's run starts from these weights.\n")


def model_card_section(record: dict, figures_rel: str) -> str:
    r, res, run = record["recipe"], record["results"], record["run"]
    s = res["seeds"]["summary"]
    n_seeds = len(record["seeds"])
    zs, ret = res["test"]["zero_shot"], res["test"]["audio_image"]
    vzs = res["val"]["zero_shot"]
    ceiling = "ceiling_top1" in s
    ts = res["test_set"]

    def ms(key: str) -> str:
        v = s[key]
        return f"{v['mean']:.1%} ± {v['sd']:.1%}" if n_seeds > 1 else f"{v['mean']:.1%}"

    seed_rows = "\n".join(
        f"| {row['seed']} | {row['emergent_top1']:.1%} | {row['emergent_top5']:.1%} | {row['image_centroid_top1']:.1%} | "
        + (f"{row['ceiling_top1']:.1%} | {row['ceiling_top5']:.1%} | {row['emergent_top1'] / max(row['ceiling_top1'], 1e-9):.2f} |"
           if ceiling else "- | - | - |") for row in res["seeds"]["per_seed"])
    weak = sorted(zs["per_class_top1"].items(), key=lambda kv: kv[1])[:6]
    return f"""{CARD_START}
## pocket audio encoder (emergent: trained against pictures, classified through text)

`python -m pretrain.pocket train --data DIR --stages audio` (recipe: `pretrain/pocket/audio_encoder.py`;
this run's exact recipe, data fingerprints and figures: `audio_recipe.json`; curves: `audio_metrics.csv`).

- **Model:** `encoders/convnet.py` (AVID-style 2-D ConvNet), channels {r['channels']}, strides {r['strides']},
  FC {r['fc']} -> 256-d `pocket` space; {run['params'] / 1e6:.2f}M parameters, {run['size_mb']:.2f} MB ({r['save_dtype']}).
  Input: Kaldi log-mel fbank, {r['mel_bins']} bins, {r['frame_length_ms']:.0f} ms window, {r['frame_shift_ms']:.0f} ms
  shift, {r['clip_seconds']} s windows ({r['target_frames']} frames), 3 windows per file whose embeddings are
  averaged (ImageBind's scheme at a smaller scale); `encoders.embed_audio(path)` does all of it.
- **Training (no text, no labels as targets):** rebind `pretrain` (`pretrain.Trainer`): class-level pairs
  (a sound and the pictures of its category), the frozen pocket CLIP image tower as teacher with
  {r['teacher_views']} cached crops per train picture. Objective `{r['objective']}`: cross-entropy of the unit
  audio embedding against the IMAGE-embedding centroids of all {run['train_classes']} categories that have
  pictures (temperature {r['temperature']}). {run['train_clips']} rows ({r['min_rows_per_class']}+ per category: thin
  categories repeated) of the train clips; augmentation: temporal jitter ({r['duration']} x window, random
  start), volume {r['volume']}, frequency mask {r['freq_mask']} bins, time mask {r['time_mask']} frames, mixing with
  another clip of the same category (p {r['mix_prob']}, gain {r['mix_gain']}); AdamW lr {r['lr']}, wd
  {r['weight_decay']}, {r['warmup_steps']} warmup steps then cosine, batch {r['batch_size']}, {r['steps']} steps,
  {r['threads']} CPU threads. Seeds {record['seeds']} trained (emergent + ceiling) in {run['train_minutes_all_seeds']:.1f} min.
{ssl_bullet(r, res.get('ssl'))}- **Ceiling (text-supervised):** the same ConvNet{' (same SSL start)' if res.get('ssl') else ''}, rows, augmentation, batches and steps, trained WITH labels
  (cross-entropy through its own {r['ceiling_head']} head at the same temperature) and classified by that head.
- **Data:** held-out clips come from held-out RECORDINGS (`manifests/audio_*.csv`); candidates are all
  {len(res['classes'])} pocket classes (chance top-1 {res['chance_top1']:.1%}, top-5 {res['chance_top5']:.1%}); xylophone has
  no picture, so it can only be a (wrong) candidate for the emergent encoder.

### Held-out figures

Shipped encoder (seed {record['seeds'][0]}), measured through `encoders.embed_audio` on the shipped float16 file:

| split | clips | emergent top-1 | emergent top-5 | audio->image R@1 | R@5 (test renders) |
|---|---|---|---|---|---|
| val | {vzs['n']} | {vzs['top1']:.1%} | {vzs['top5']:.1%} | {res['val']['audio_image']['R@1']:.1%} | {res['val']['audio_image']['R@5']:.1%} |
| test | {zs['n']} | **{zs['top1']:.1%}** | **{zs['top5']:.1%}** | **{ret['R@1']:.1%}** | **{ret['R@5']:.1%}** |
| chance | | {res['chance_top1']:.1%} | {res['chance_top5']:.1%} | {ret['chance_R@1']:.1%} | {ret['chance_R@5']:.1%} |

Audio->image: each held-out test clip queries the {ret['gallery']} held-out test renders (a hit = a render of
its category; {ret['left_out']} clips whose category has no test render left out), chance computed exactly.

Test figures per training seed (in memory, float32){' -- mean ± sd over seeds below' if n_seeds > 1 else ''}:

| seed | emergent top-1 | emergent top-5 | nearest image centroid top-1 | ceiling top-1 | ceiling top-5 | emergent / ceiling |
|---|---|---|---|---|---|---|
{seed_rows}

{('**Emergent top-1 ' + ms('emergent_top1') + ' vs ceiling ' + ms('ceiling_top1') + ' (ratio ' + f"{s['ratio_top1']['mean']:.2f}" + (f" ± {s['ratio_top1']['sd']:.2f}" if n_seeds > 1 else '') + '); chance ' + f"{res['chance_top1']:.1%}" + '.**') if ceiling else ''}
"Nearest image centroid" classifies each clip by the closest category IMAGE centroid, without text: the
audio->picture link alone. The gap between it and the emergent figure is what the CLIP's picture->text
link costs.

![confusion]({figures_rel}/audio_confusion.png)
![similarity]({figures_rel}/audio_text_similarity.png)
![curves]({figures_rel}/audio_curves.png)

Weakest test categories (top-1): {', '.join(f'{k} {v:.0%}' for k, v in weak)}.

### Known weaknesses
- Tiny held-out sets: {zs['n']} test clips from {ts['recordings']} recordings; one clip moves top-1 by {1 / zs['n']:.1%}.
  {ts['thin']} categories have 1-2 test clips; dog has {ts['dog_clips']} ({ts['dog_recordings']} recording{'s' if ts['dog_recordings'] != 1 else ''}).
- Game and toy sound effects, not field recordings: it knows these {len(res['classes'])} categories as they sound in
  Debian's games and educational packages, nothing else.
- Everything passes through the pocket CLIP: categories its text tower confuses (cow / pig, rain / thunder)
  stay confused for sounds however well they are separated by the audio.
{CARD_END}"""
