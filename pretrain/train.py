"""Train a modality encoder against a frozen CLIP image tower.

    result = pretrain.train("run.yaml")                      # or a dict / RunConfig
    result = pretrain.train(cfg, resume=True)                # continue from <out_dir>/checkpoints

One code path for 1..N processes: launched by ``torchrun`` or ``accelerate launch`` the process
group is initialised from the environment (gloo on CPU, NCCL on GPU), the student is wrapped in
DDP, and each process embeds its slice of the global batch; the loss is the InfoNCE of the whole
gathered batch (see loss.py). A 2-process run therefore takes the same steps as a 1-process run
with the same global batch (up to float summation order), provided the student has no
batch-statistics layers (BatchNorm computes per-process statistics under DDP) and no stochastic
depth / dropout (their masks are drawn per process).

Outputs in ``out_dir``: ``checkpoints/last.pt`` (atomic, exact resume), ``metrics.csv`` (+
TensorBoard events with ``train.tensorboard``), ``metrics.png``, ``bad_files.txt`` and the trained
encoder in ``encoder/`` (``encoders.create(out_dir/'encoder')`` loads it; its config names the
teacher's space; ``space.json`` describes that space for processes that do not know it yet).
"""
from __future__ import annotations

import contextlib
import copy
import csv
import json
import logging
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

import encoders
from encoders.config import ConfigError
from encoders.spaces import ClipSpace, get_space

from . import checkpoint as ckpt
from .config import RunConfig, load_config
from .loss import gather, info_nce
from .teacher import (TeacherCache, load_teacher, register_space_record, resolve_space,
                      space_record, teacher_identity)

log = logging.getLogger("pretrain")

METRIC_COLUMNS = ["step", "epoch", "loss", "acc", "lr", "grad_norm", "samples_per_s", "step_s", "data_s",
                  "elapsed_s"]


@dataclass
class TrainResult:
    out_dir: Path
    encoder_dir: Path | None
    step: int
    total_steps: int
    loss: float | None
    space: str
    metrics_csv: Path
    plot: Path | None
    interrupted: bool = False
    samples_per_s: float | None = None
    bad_files: int = 0
    history: list[dict] = field(default_factory=list)
    signal: int = 0  # the signal that stopped the run (SIGINT/SIGTERM), 0 when it ran to the end


# ------------------------------------------------------------------------------------ processes

def init_distributed(device_type: str) -> tuple[int, int, int]:
    """(rank, world, local_rank); initialises the process group from torchrun/accelerate env vars."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
    return 0, 1, 0


def resolve_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if name == "cuda":
        return torch.device(f"cuda:{local_rank}")
    return torch.device(name)


# -------------------------------------------------------------------------------------- student

def build_student(cfg: RunConfig, space: ClipSpace) -> encoders.MultimodalEncoder:
    """The student encoder, built in the teacher's space; initial weights must have its dimension."""
    s = cfg.student
    checkpoint: Any = cfg.path(s.checkpoint) if s.checkpoint else None
    if isinstance(s.model, dict):
        data, name = copy.deepcopy(s.model), s.model.get("name", "student")
    else:
        folder = cfg.path(s.model)
        if folder is not None and folder.is_dir():
            if not (folder / "config.json").exists():
                raise ConfigError(f"run config.student.model: '{folder}' has no config.json (not a saved encoder)")
            data = json.loads((folder / "config.json").read_text())
            if (folder / "space.json").exists():
                register_space_record(json.loads((folder / "space.json").read_text()))
            name = data.get("name", folder.name)
            checkpoint = checkpoint or folder
        else:
            try:
                data, name = encoders.get_config(s.model), s.model
            except KeyError as e:
                raise ConfigError(f"run config.student.model: {e.args[0]}") from None
    mods = data.get("modalities", {})
    if s.modality not in mods:
        raise ConfigError(f"run config.student: encoder config {name!r} has no {s.modality!r} modality "
                          f"(it has {sorted(mods)})")
    if checkpoint is not None:
        try:
            own = get_space(data.get("space", ""))
        except KeyError as e:
            raise ConfigError(f"run config.student: {e.args[0]}") from None
        if own.dim != space.dim:
            raise ConfigError(
                f"student {name!r} ({s.modality}) starts from weights in CLIP space {own} but the "
                f"teacher's space is {space}: a {own.dim}-d encoder cannot be trained against a "
                f"{space.dim}-d teacher. Start from scratch (student.checkpoint: null), or use a "
                f"teacher whose space is {own.dim}-d, or fit a bridge (python -m pretrain bridge)")
        if own.name != space.name:
            log.warning("student weights come from space %s; training against %s re-labels them", own, space)
    data["modalities"] = {s.modality: {**mods[s.modality], **s.overrides}}
    data["space"] = space.name
    data.pop("embed_dim", None)
    data.pop("weights", None)
    data["name"] = name
    data["description"] = (f"{s.modality} encoder trained by rebind pretrain against the frozen image tower "
                           f"of {cfg.teacher.model or 'an inline open_clip config'} "
                           f"(pretrained={cfg.teacher.pretrained}); space {space.name}")
    try:
        return encoders.create(data, modalities=(s.modality,), checkpoint=checkpoint if checkpoint else False)
    except encoders.CheckpointError as e:
        raise ConfigError(f"run config.student.checkpoint: {e}") from None


def param_groups(module: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases, norms, tokens and position embeddings."""
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name.endswith(("cls_token", "pos_embed", "bias_k", "bias_v", "log_scale")):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_lambda(warmup: int, total: int, min_ratio: float):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return f


# ------------------------------------------------------------------------------------- metrics

class MetricsLog:
    """``metrics.csv`` (rank 0), truncated to the resumed step; optional TensorBoard."""

    def __init__(self, path: Path, start_step: int, tensorboard_dir: Path | None = None):
        self.path = path
        rows = []
        if start_step > 0 and path.exists():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= start_step]
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, METRIC_COLUMNS)
            w.writeheader()
            w.writerows(rows)
        self.rows = [dict(r) for r in rows]
        self.tb = None
        if tensorboard_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(tensorboard_dir), purge_step=start_step + 1 if start_step else None)

    def log(self, row: dict) -> None:
        row = {k: row.get(k, "") for k in METRIC_COLUMNS}
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, METRIC_COLUMNS).writerow(row)
        self.rows.append(row)
        if self.tb is not None:
            for k, v in row.items():
                if k != "step" and v != "":
                    self.tb.add_scalar(f"train/{k}", float(v), int(row["step"]))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def plot_metrics(csv_path: Path, png_path: Path) -> Path | None:
    """Loss / in-batch accuracy / learning rate / throughput against step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    step = [int(r["step"]) for r in rows]

    def col(k):
        return [float(r[k]) if r[k] not in ("", None) else float("nan") for r in rows]

    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, key, title in zip(axes.flat, ["loss", "acc", "lr", "samples_per_s"],
                              ["InfoNCE loss", "in-batch top-1 (student -> teacher)", "learning rate",
                               "samples / s"]):
        ax.plot(step, col(key))
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = png_path.with_name(png_path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, png_path)
    return png_path


def _quiet_worker(_):
    """Loader workers ignore Ctrl-C (it reaches the whole process group): the main process finishes
    its step and checkpoints, then shuts them down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _count_lines(path: Path) -> int:
    """Distinct bad files listed (a resumed run reports the same ones again)."""
    return len({line.split("\t", 1)[0] for line in open(path)}) if path.exists() else 0


# ------------------------------------------------------------------------------------- trainer

class Trainer:
    """Builds everything a run needs from a RunConfig; ``run()`` trains, ``step(batch)`` is one step."""

    def __init__(self, config: "RunConfig | dict | str | os.PathLike", resume: bool = False,
                 overrides: "list[str] | dict | None" = None):
        self.cfg = cfg = load_config(config, overrides)
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        want = "cuda" if t.device.startswith("cuda") or (t.device == "auto" and torch.cuda.is_available()) else "cpu"
        self.rank, self.world, local_rank = init_distributed(want)
        self.device = resolve_device(t.device, local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.main = self.rank == 0
        self.out = cfg.path(cfg.out_dir)
        self.ckpt_path = self.out / "checkpoints" / ckpt.CHECKPOINT
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
        if self.ckpt_path.exists() and not resume:
            raise ConfigError(f"run config.out_dir: '{self.out}' already holds a run (checkpoints/last.pt); "
                              f"pass --resume to continue it or choose another out_dir")
        if t.batch_size % self.world:
            raise ConfigError(f"train.batch_size {t.batch_size} is not divisible by the {self.world} processes")
        self.local_batch = t.batch_size // self.world
        precision = t.precision if t.precision != "auto" else ("bf16" if self.device.type == "cuda" else "fp32")
        self.precision = precision
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

        # 1. the teacher's space, from the cache or the model config (nothing heavy built yet)
        tc = cfg.teacher
        identity = teacher_identity(tc, cfg.base_dir)
        self.space = resolve_space(tc, identity["dim"], cfg.base_dir)
        self.cache = None
        if tc.cache:
            self.cache = TeacherCache.open(cfg.path(tc.cache))
            self.cache.check_teacher(identity, self.space)
            if tc.image_augment == "crop":
                if self.cache.views > 1:
                    log.info("teacher cache: %d views per image; training draws among them (APPROXIMATE "
                             "augmentation: a finite set of crops instead of a fresh crop each step)",
                             self.cache.views)
                else:
                    log.warning("teacher cache holds 1 view per image: training sees the center crop only "
                                "(no image augmentation); write it with --views K for K crops")

        # 2. the student, in the teacher's space (fails here on a dimension mismatch)
        torch.manual_seed(cfg.seed)
        self.model = build_student(cfg, self.space)
        self.student = self.model[cfg.student.modality]
        self.student.train().to(self.device)
        torch.manual_seed(cfg.seed * 1_000_003 + self.rank + 1)  # per-process streams (drop path)

        # 3. the teacher tower, only when there is no cache
        self.teacher = None
        if self.cache is None:
            self.teacher = load_teacher(tc, cfg.base_dir, self.device,
                                        self.amp_dtype if self.device.type == "cuda" and self.amp_dtype else torch.float32)
            if self.teacher.dim != self.student.embed_dim:  # pragma: no cover - guarded by build_student
                raise ConfigError(f"teacher {self.space} and student {self.student.space} differ in dimension")

        # 4. data
        from . import data as D

        if self.main and not resume and (self.out / "bad_files.txt").exists():
            (self.out / "bad_files.txt").unlink()  # left by a run that never reached a checkpoint
        if self.world > 1:
            dist.barrier()
        self.bad = D.BadFiles(cfg.data.on_bad_file, self.out / "bad_files.txt")
        if cfg.student.modality == "audio":
            from encoders.audio import AudioFbankConfig

            pre = self.student.preprocessor
            fb = pre.config if pre is not None else AudioFbankConfig()
            self.io = D.AudioIO(fb, cfg.augment)
        else:
            self.io = D.TensorIO(cfg.student.modality, self.student.preprocessor)
        augment = tc.image_augment == "crop"
        if self.cache is not None:
            self.targets = D.CachedTargets(self.cache, augment)
        else:
            self.targets = D.LiveTargets(self.teacher, augment, tc.crop_scale, tc.flip, cfg.data.preload)
        self.webdataset = D.is_webdataset(cfg)
        show = t.progress and self.main
        if self.webdataset:
            self.urls = D.expand_shards(cfg.data.train, cfg.base_dir)
            index = D.shards_index(self.urls)
            per_epoch = cfg.data.samples_per_epoch or index.get("total")
            if not per_epoch and t.steps is None:
                raise ConfigError("train.epochs with webdataset shards needs data.samples_per_epoch "
                                  "(or a shards.json from write-shards); or give train.steps")
            self.pool = None
            if cfg.data.images:
                refs, labels = D.image_manifest(cfg)
                self.pool = D.ImagePool([r for r in refs if self.targets.has(r.key)],
                                        [lab for r, lab in zip(refs, labels) if self.targets.has(r.key)])
            self.steps_per_epoch = max(1, (per_epoch or t.batch_size) // t.batch_size)
            self.dataset = None
        else:
            self.dataset = D.ManifestData(cfg, self.io, self.targets, self.bad, progress=show)
            if len(self.dataset) < t.batch_size:
                raise ConfigError(f"train.batch_size {t.batch_size} is larger than the {len(self.dataset)} "
                                  f"usable training samples; lower it")
            self.steps_per_epoch = len(self.dataset) // t.batch_size
        self.total_steps = t.steps if t.steps is not None else math.ceil(t.epochs * self.steps_per_epoch)

        # 5. optimizer, schedule, precision, DDP, compile
        o = cfg.optim
        self.optimizer = torch.optim.AdamW(param_groups(self.student, o.weight_decay), lr=o.lr,
                                           betas=tuple(o.betas), eps=o.eps)
        if o.warmup_steps is not None:
            warmup = o.warmup_steps
        elif o.warmup_epochs is not None:
            warmup = round(o.warmup_epochs * self.steps_per_epoch)
        else:
            warmup = min(2 * self.steps_per_epoch, self.total_steps // 10)
        self.warmup = max(1, warmup)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(self.warmup, self.total_steps, o.min_lr_ratio))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=precision == "fp16")
        self.forward = self.student
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.forward = DDP(self.student, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        compile_ = t.compile == "on" or (t.compile == "auto" and self.device.type == "cuda")
        if compile_:
            self.forward = torch.compile(self.forward)
        self.step_num = 0
        self.window = {"loss": 0.0, "acc": 0.0, "grad_norm": 0.0, "n": 0}  # metrics since the last log row
        self.positions: dict = {}
        self.resumed = False
        if resume and self.ckpt_path.exists():
            self._load(self.ckpt_path)
        elif resume and self.main:
            log.info("--resume: no checkpoint in %s yet, starting from step 0", self.out / "checkpoints")

    # ------------------------------------------------------------------------------- data loader
    def loader(self):
        from torch.utils.data import DataLoader

        from . import data as D

        nw = self.cfg.data.num_workers
        if self.webdataset:
            ds = D.ShardBatches(self.cfg, self.urls, self.io, self.targets, self.bad, self.pool, self.local_batch,
                                self.step_num, self.positions.get(self.rank), self.rank, self.world, nw)
        else:
            ds = D.StepBatches(self.dataset, self.cfg.train.batch_size, self.step_num, self.total_steps,
                               self.rank, self.world)
        return DataLoader(ds, batch_size=None, shuffle=False, num_workers=nw,
                          pin_memory=self.device.type == "cuda", generator=torch.Generator(),
                          persistent_workers=False, prefetch_factor=4 if nw else None,
                          worker_init_fn=_quiet_worker if nw else None)

    # -------------------------------------------------------------------------------------- step
    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def model_input(self, batch: dict) -> torch.Tensor:
        x = batch["x"]
        if isinstance(x, dict):
            x = {k: v.to(self.device, non_blocking=True) for k, v in x.items()}
            return self.io.device_transform(**x)
        return x.to(self.device, non_blocking=True)

    def targets_of(self, batch: dict) -> torch.Tensor:
        if "teacher" in batch:
            return batch["teacher"].to(self.device, non_blocking=True).float()
        with self.autocast():
            return self.teacher.encode_images(batch["images"].to(self.device, non_blocking=True))

    def step(self, batch: dict) -> dict[str, torch.Tensor]:
        """One optimisation step on this process's share of a global batch."""
        x = self.model_input(batch)
        t = self.targets_of(batch)
        with self.autocast():
            s = self.forward(x, output="raw")
        labels = None
        if self.cfg.loss.positives == "labels":
            labels = gather(batch["labels"].to(self.device))
        loss, stats = info_nce(gather(s.float(), with_grad=True), gather(t), self.cfg.loss.temperature, labels)
        self.scaler.scale(loss * self.world).backward()
        grad_norm = torch.tensor(float("nan"))
        if self.cfg.optim.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.student.parameters(), self.cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step_num += 1
        if "position" in batch:
            stream, epoch, n = batch["position"].tolist()
            self.positions.setdefault(self.rank, {})[stream] = (epoch, n)
        return {"loss": loss.detach(), "acc": stats["acc"], "grad_norm": grad_norm.detach()}

    # ---------------------------------------------------------------------------- checkpointing
    def _gather_object(self, obj):
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def save(self) -> None:
        rngs = self._gather_object(ckpt.rng_state())
        positions = self._gather_object(self.positions.get(self.rank, {}))
        if self.main:
            state = {"step": self.step_num, "world_size": self.world, "model": self.student.state_dict(),
                     "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                     "scaler": self.scaler.state_dict(), "rng": rngs,
                     "data": {"webdataset": self.webdataset, "num_workers": self.cfg.data.num_workers,
                              "positions": [{int(k): list(v) for k, v in p.items()} for p in positions]},
                     "window": dict(self.window), "config": json.dumps(self.cfg.to_dict())}
            ckpt.save_checkpoint(self.ckpt_path, state)
            ckpt.write_marker(self.ckpt_path.parent, {"step": self.step_num, "time": time.time()})
        if self.world > 1:
            dist.barrier()

    def _load(self, path: Path) -> None:
        state = ckpt.load_checkpoint(path)
        self.student.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step_num = int(state["step"])
        self.window = dict(state.get("window", self.window))
        old = json.loads(state["config"])
        new = self.cfg.to_dict()
        changed = sorted(f"{sec}.{k}" for sec in new if isinstance(new[sec], dict)
                         for k in new[sec] if old.get(sec, {}).get(k) != new[sec][k]
                         and f"{sec}.{k}" not in ("train.steps", "train.epochs", "train.progress",
                                                  "train.log_every", "train.checkpoint_every"))
        if changed and self.main:
            log.warning("resuming with a config that differs in %s: the run is no longer exactly reproducible",
                        changed)
        if state["world_size"] == self.world:
            ckpt.set_rng_state(state["rng"][self.rank])
        elif self.main:
            log.warning("resuming %d-process checkpoint on %d processes: per-process RNG streams (drop path, "
                        "dropout) restart", state["world_size"], self.world)
        data = state.get("data", {})
        if self.webdataset:
            if data.get("num_workers") != self.cfg.data.num_workers or state["world_size"] != self.world:
                raise ConfigError("resuming a webdataset run needs the same data.num_workers and number of "
                                  f"processes as when it was saved ({data.get('num_workers')} workers, "
                                  f"{state['world_size']} processes)")
            self.positions = {r: {int(k): tuple(v) for k, v in p.items()} for r, p in enumerate(data["positions"])}
        self.resumed = True
        if self.main:
            log.info("resumed from %s at step %d", path, self.step_num)

    def export(self, interrupted: bool, last_loss: float | None) -> Path | None:
        """Rank 0: the trained encoder folder (safetensors + config naming the space + space.json)."""
        if not self.main:
            return None
        enc_dir = self.out / "encoder"
        encoders.save_modalities(self.model, enc_dir)
        ckpt.atomic_write_text(enc_dir / "space.json", json.dumps(space_record(self.space), indent=1))
        ckpt.atomic_write_text(enc_dir / "training.json", json.dumps({
            "step": self.step_num, "total_steps": self.total_steps, "interrupted": interrupted,
            "final_loss": last_loss, "teacher": teacher_identity(self.cfg.teacher, self.cfg.base_dir),
            "space": self.space.name, "processes": self.world, "config": self.cfg.to_dict()}, indent=1))
        return enc_dir

    # --------------------------------------------------------------------------------------- run
    def run(self, callback=None) -> TrainResult:
        """Train to ``total_steps``. ``callback(trainer, stats)`` runs after every step (stats: step,
        loss, acc, lr); returning True stops the run like SIGINT does (checkpoint, export)."""
        cfg, t = self.cfg, self.cfg.train
        metrics = MetricsLog(self.out / "metrics.csv", self.step_num,
                             self.out / "tensorboard" if t.tensorboard else None) if self.main else None
        if self.main:
            (self.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
            log.info("training %s student (%s, %d params) against %s teacher%s: %d steps of global batch %d "
                     "on %d process(es), %s, %s", cfg.student.modality, self.model.name,
                     sum(p.numel() for p in self.student.parameters()), self.space,
                     " (cached)" if self.cache is not None else "", self.total_steps, t.batch_size, self.world,
                     self.device, self.precision)
        stop = {"signal": 0}
        old_handlers = {}

        def handler(signum, frame):
            stop["signal"] = signum
            if self.main:
                log.warning("got signal %d: saving a checkpoint after this step", signum)

        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old_handlers[sig] = signal.signal(sig, handler)
        bar = None
        if t.progress and self.main:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.total_steps, initial=self.step_num, desc="train", unit="step", dynamic_ncols=True)
        acc_time, acc_data, timed = 0.0, 0.0, 0
        w = self.window
        last_loss, interrupted, rate = None, False, None
        start = time.perf_counter()
        last_saved = self.step_num
        try:
            it = iter(self.loader()) if self.step_num < self.total_steps else iter(())
            while self.step_num < self.total_steps:
                t0 = time.perf_counter()
                batch = next(it)
                t1 = time.perf_counter()
                out = self.step(batch)
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                t2 = time.perf_counter()
                loss = float(out["loss"])
                if not math.isfinite(loss):
                    raise FloatingPointError(f"loss is {loss} at step {self.step_num}; lower optim.lr or use "
                                             f"train.precision: fp32")
                w["loss"] += loss
                w["acc"] += float(out["acc"])
                w["grad_norm"] += float(out["grad_norm"])
                w["n"] += 1
                acc_time += t2 - t0
                acc_data += t1 - t0
                timed += 1
                last_loss = loss
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.3f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}")
                if self.step_num % t.log_every == 0 or self.step_num == self.total_steps:
                    n = w["n"]
                    rate = t.batch_size * timed / max(acc_time, 1e-9)
                    if metrics is not None:
                        metrics.log({"step": self.step_num, "epoch": f"{self.step_num / self.steps_per_epoch:.4f}",
                                     "loss": f"{w['loss'] / n:.6f}", "acc": f"{w['acc'] / n:.4f}",
                                     "lr": f"{self.scheduler.get_last_lr()[0]:.6e}",
                                     "grad_norm": f"{w['grad_norm'] / n:.4f}", "samples_per_s": f"{rate:.2f}",
                                     "step_s": f"{acc_time / timed:.5f}", "data_s": f"{acc_data / timed:.5f}",
                                     "elapsed_s": f"{time.perf_counter() - start:.2f}"})
                    w.update(loss=0.0, acc=0.0, grad_norm=0.0, n=0)
                    acc_time = acc_data = 0.0
                    timed = 0
                signalled = stop["signal"]
                if callback is not None and callback(self, {"step": self.step_num, "loss": loss,
                                                            "acc": float(out["acc"]),
                                                            "lr": self.scheduler.get_last_lr()[0]}):
                    signalled = stop["signal"] = stop["signal"] or -1
                if self.world > 1:
                    flag = torch.tensor([1.0 if signalled else 0.0], device=self.device)
                    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                    signalled = int(flag.item())
                if signalled:
                    interrupted = True
                    break
                if self.step_num % t.checkpoint_every == 0 and self.step_num < self.total_steps:
                    self.save()
                    last_saved = self.step_num
            if self.step_num != last_saved or not self.ckpt_path.exists():
                self.save()
        finally:
            if bar is not None:
                bar.close()
            for sig, h in old_handlers.items():
                signal.signal(sig, h)
        enc_dir = self.export(interrupted, last_loss)
        plot = None
        if metrics is not None:
            metrics.close()
            plot = plot_metrics(self.out / "metrics.csv", self.out / "metrics.png")
            bad = _count_lines(self.out / "bad_files.txt")  # reports from loader workers included
            if bad:
                log.warning("%d bad input file(s) were skipped; see %s", bad, self.out / "bad_files.txt")
        if interrupted and self.main:
            log.warning("stopped (%s) at step %d; checkpoint saved, continue with --resume",
                        "callback" if stop["signal"] == -1 else f"signal {stop['signal']}", self.step_num)
        return TrainResult(self.out, enc_dir, self.step_num, self.total_steps, last_loss, self.space.name,
                           self.out / "metrics.csv", plot, interrupted, rate,
                           _count_lines(self.out / "bad_files.txt") if self.main else len(self.bad),
                           list(metrics.rows) if metrics is not None else [], max(stop["signal"], 0))


def train(config: "RunConfig | dict | str | os.PathLike", resume: bool = False,
          overrides: "list[str] | dict | None" = None, callback=None) -> TrainResult:
    """Train a student encoder against a frozen teacher; see the module docstring and ``Trainer.run``."""
    return Trainer(config, resume=resume, overrides=overrides).run(callback)
