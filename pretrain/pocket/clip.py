"""The pocket CLIP: open_clip's own ``CLIP`` (ResNet image tower + small text transformer), trained
contrastively on the pocket renders and short captions, then frozen and shipped as the ``pocket``
encoder config (``encoders.create("pocket")``).

    python -m pretrain.pocket train --data /work/data/pocket --stages clip

Every later pocket model leans on it: the audio encoder learns to hit its IMAGE embeddings and is
classified through its TEXT tower, the detector classifies with its text embeddings, the small
unCLIP is conditioned on and judged by its image embeddings. So the recipe aims at near-perfect
zero-shot classification of its own categories on held-out drawings, with well-separated class
text embeddings.

Recipe (defaults of ``ClipRecipe``):
- data: the train renders (RGBA cut-outs) under strong batched augmentation (augment.py) plus
  crops of labelled objects from the TRAIN scenes (clutter, occlusion, small objects);
- batches: ``renders_per_class`` views of EVERY image class and ``captions_per_class`` captions of
  every class (xylophone, text-only, included as a negative), so labels are known and the
  loss is exact: a multi-positive (label-aware) CLIP loss in both directions;
- AdamW, linear warmup then cosine decay, one seed for init, sampling and augmentation.

Evaluation goes through the public path (``encoders.embed_image`` / ``embed_text`` on the saved
files), so the figures are what users get.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import LiveCSV
from .augment import AugmentConfig, augment_crops, augment_renders
from .categories import BY_NAME
from .manifests import IMAGE_COLUMNS, read_manifest
from .prompts import CLASS_NAMES, class_prompts, training_captions

from .train import DEFAULT_OUT, warmup_cosine

REPO = Path(__file__).resolve().parents[2]
REGISTRY_CONFIG = REPO / "encoders" / "configs" / "pocket.json"
FIGURES = REPO / "docs" / "figures" / "pocket"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
TOKENIZER = "ViT-B-32"  # any CLIP-BPE open_clip name: SimpleTokenizer, shipped in the wheel


class PocketDataError(FileNotFoundError):
    """The pocket data directory is missing or incomplete."""


@dataclass
class ClipRecipe:
    seed: int = 0
    steps: int = 1500
    image_size: int = 64  # open_clip's ModifiedResNet needs a multiple of 32
    embed_dim: int = 256  # the ``pocket`` space
    vision: dict = field(default_factory=lambda: {"layers": [1, 1, 1, 1], "width": 24, "head_width": 32})
    text: dict = field(default_factory=lambda: {"context_length": 16, "width": 64, "heads": 4, "layers": 3})
    renders_per_class: int = 3  # views of every image class per step (39 classes -> 117 images)
    captions_per_class: int = 2
    scene_crop_fraction: float = 0.25  # of the views of a class, when it has train scene crops
    augment_ramp: float = 0.3  # fraction of the steps over which augmentation (and scene crops) ramp up
    scene_min_visible: float = 0.5
    scene_margin: float = 1.2  # crop side = margin * the box's longer side
    lr: float = 2e-3
    min_lr_ratio: float = 0.02
    weight_decay: float = 0.05
    warmup_steps: int = 60
    # text warm-up: at init every caption embeds alike (cosine ~0.9: the shared end token and
    # positions dominate), which leaves the image tower no class signal for hundreds of steps.
    # A few supervised-contrastive steps on captions alone spread the classes first.
    text_warmup_steps: int = 30
    text_warmup_lr: float = 2e-3
    grad_clip: float = 1.0
    init_logit_scale: float = 1 / 0.07
    max_logit_scale: float = 100.0
    eval_every: int = 100
    threads: int = 2
    save_dtype: str = "float16"  # halves the shipped files; figures are measured after reloading
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    @classmethod
    def from_dict(cls, data: dict) -> "ClipRecipe":
        data = dict(data)
        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"unknown ClipRecipe field(s) {sorted(unknown)}; "
                             f"known: {sorted(cls.__dataclass_fields__)}")
        aug = data.pop("augment", {})
        aug = aug if isinstance(aug, AugmentConfig) else AugmentConfig(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in aug.items()})
        return cls(**data, augment=aug)

    def validate(self) -> None:
        if self.image_size % 32:
            raise ValueError(f"image_size {self.image_size}: open_clip's ModifiedResNet needs a multiple of 32")
        if self.steps < 1 or self.renders_per_class < 1 or self.captions_per_class < 1:
            raise ValueError("steps, renders_per_class and captions_per_class must be >= 1")
        if not 0 <= self.scene_crop_fraction <= 1:
            raise ValueError(f"scene_crop_fraction must be in [0, 1], got {self.scene_crop_fraction}")
        if self.save_dtype not in ("float16", "float32"):
            raise ValueError(f"save_dtype must be 'float16' or 'float32', got {self.save_dtype!r}")


# ---------------------------------------------------------------------------------- configs

def open_clip_config(recipe: ClipRecipe) -> dict:
    """The open_clip model config (the same dict sits inline in encoders/configs/pocket.json)."""
    return {"embed_dim": recipe.embed_dim,
            "vision_cfg": dict(recipe.vision, image_size=recipe.image_size),
            "text_cfg": dict(recipe.text, vocab_size=49408)}


def encoder_modalities(recipe: ClipRecipe, logit_scale: float) -> dict:
    """The ``vision`` and ``text`` entries of the pocket encoder config."""
    cfg = open_clip_config(recipe)
    return {
        "vision": {"arch": "open_clip_vision", "open_clip_config": copy.deepcopy(cfg),
                   "preprocess": {"kind": "image", "size": recipe.image_size, "mean": list(OPENAI_MEAN),
                                  "std": list(OPENAI_STD), "interpolation": "bicubic"}},
        "text": {"arch": "open_clip_text", "open_clip_config": copy.deepcopy(cfg),
                 "scale": round(float(logit_scale), 4), "learnable_scale": True,
                 "preprocess": {"kind": "text", "context_length": recipe.text["context_length"],
                                "tokenizer": TOKENIZER}},
    }


def encoder_config(recipe: ClipRecipe, logit_scale: float, base: dict | None = None) -> dict:
    """A full pocket encoder config; ``base`` keeps the entries other stages added (audio, depth)."""
    out = copy.deepcopy(base) if base else {}
    out.setdefault("description", "rebind's embedded pocket models, trained offline on registry data "
                                  "(python -m pretrain.pocket); see encoders/weights/pocket/MODEL_CARD.md")
    out["space"] = "pocket"
    out["embed_dim"] = recipe.embed_dim
    out["weights"] = "pocket"
    out.setdefault("modalities", {})
    out["modalities"].update(encoder_modalities(recipe, logit_scale))
    return out


def build_clip(recipe: ClipRecipe):
    """A fresh open_clip ``CLIP`` from the recipe's config (seeded by the caller)."""
    import open_clip  # noqa: PLC0415

    cfg = open_clip_config(recipe)
    return open_clip.CLIP(embed_dim=cfg["embed_dim"], vision_cfg=cfg["vision_cfg"], text_cfg=cfg["text_cfg"],
                          init_logit_scale=math.log(recipe.init_logit_scale))


def tokenizer(recipe: ClipRecipe):
    import open_clip  # noqa: PLC0415

    return open_clip.get_tokenizer(TOKENIZER, context_length=recipe.text["context_length"])


def check_captions_fit(recipe: ClipRecipe, names=CLASS_NAMES) -> None:
    """Refuse captions the short context would cut (the tokenizer truncates silently)."""
    from open_clip.tokenizer import SimpleTokenizer  # noqa: PLC0415

    bpe = SimpleTokenizer()
    room = recipe.text["context_length"] - 2  # start and end tokens
    long = [c for n in names for c in training_captions(n) if len(bpe.encode(c)) > room]
    if long:
        raise ValueError(f"{len(long)} caption(s) exceed context_length {recipe.text['context_length']}: "
                         f"{long[:3]}; raise text.context_length or shorten the templates")


# ------------------------------------------------------------------------------------- data

def check_data_dir(data: Path) -> Path:
    data = Path(data).expanduser()
    need = [data / "manifests" / f"images_{s}.csv" for s in ("train", "val", "test")]
    missing = [str(p) for p in need if not p.exists()]
    if missing:
        raise PocketDataError(f"'{data}' is not a built pocket data directory (missing {missing[0]}); "
                              f"build it with `python -m pretrain.pocket data --out {data}`")
    return data


def image_rows(data: Path, split: str) -> list[dict]:
    rows = read_manifest(check_data_dir(data) / "manifests" / f"images_{split}.csv", IMAGE_COLUMNS)
    unknown = sorted({r["label"] for r in rows} - set(CLASS_NAMES))
    if unknown:
        raise PocketDataError(f"images_{split}.csv has labels {unknown} the category table does not know; "
                              f"rebuild the data with this checkout")
    return rows


def load_rgba(data: Path, rows: list[dict], size: int) -> torch.Tensor:
    """Renders -> uint8 [N, 4, size, size], resized as the public preprocessing resizes (PIL bicubic)."""
    from PIL import Image  # noqa: PLC0415

    out = []
    for r in rows:
        with Image.open(data / r["path"]) as im:
            im = im.convert("RGBA")
            if im.size != (size, size):
                im = im.resize((size, size), Image.BICUBIC)
            out.append(torch.from_numpy(np.array(im)).permute(2, 0, 1))
    return torch.stack(out)


def load_background_photos(data: Path, size: int = 128) -> torch.Tensor:
    """DIR/backgrounds/*.png -> uint8 [n, 3, size, size] (short side resized, centre square)."""
    from PIL import Image  # noqa: PLC0415

    out = []
    for p in sorted((data / "backgrounds").glob("*.png")):
        with Image.open(p) as im:
            im = im.convert("RGB")
            s = min(im.size)
            left, top = (im.width - s) // 2, (im.height - s) // 2
            im = im.crop((left, top, left + s, top + s)).resize((size, size), Image.BICUBIC)
            out.append(torch.from_numpy(np.array(im)).permute(2, 0, 1))
    return torch.stack(out) if out else torch.zeros(0, 3, size, size, dtype=torch.uint8)


def scene_crop_box(box, width: int, height: int, margin: float) -> tuple[int, int, int, int]:
    """A square around a labelled box (side = margin x its longer side), kept inside the image."""
    x0, y0, x1, y1 = box
    side = min(max(x1 - x0, y1 - y0) * margin, width, height)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = min(max(cx - side / 2, 0), width - side)
    top = min(max(cy - side / 2, 0), height - side)
    return round(left), round(top), round(left + side), round(top + side)


def scene_crops(data: Path, split: str, min_visible: float, margin: float):
    """(PIL crop, label, record) for every object of a split's scenes at least min_visible visible."""
    from PIL import Image  # noqa: PLC0415

    path = check_data_dir(data) / "manifests" / f"scenes_{split}.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        objs = [o for o in rec["objects"] if o["visible_fraction"] >= min_visible]
        if not objs:
            continue
        with Image.open(data / rec["image"]) as im:
            im = im.convert("RGB")
            for o in objs:
                out.append((im.crop(scene_crop_box(o["box"], im.width, im.height, margin)), o["label"], rec["image"]))
    return out


def crops_tensor(crops, size: int) -> torch.Tensor:
    """PIL crops -> uint8 [N, 3, size, size] (bicubic, as the public preprocessing resizes)."""
    from PIL import Image  # noqa: PLC0415

    arr = [np.asarray(c.resize((size, size), Image.BICUBIC)) for c, _, _ in crops]
    return torch.from_numpy(np.stack(arr)).permute(0, 3, 1, 2).contiguous() if arr else \
        torch.zeros(0, 3, size, size, dtype=torch.uint8)


@dataclass
class TrainingData:
    classes: tuple[str, ...]  # every text class (CLASS_NAMES)
    image_classes: list[int]  # class indices that have train renders
    renders: torch.Tensor  # uint8 [N, 4, S, S] at the model's input size
    render_labels: torch.Tensor
    crops: torch.Tensor  # uint8 [M, 3, S, S]
    crop_labels: torch.Tensor
    photos: torch.Tensor  # uint8 background photos
    by_class_renders: dict[int, torch.Tensor]
    by_class_crops: dict[int, torch.Tensor]


def load_training_data(data: Path, recipe: ClipRecipe) -> TrainingData:
    data = check_data_dir(data)
    index = {n: i for i, n in enumerate(CLASS_NAMES)}
    rows = image_rows(data, "train")
    renders = load_rgba(data, rows, recipe.image_size)
    labels = torch.tensor([index[r["label"]] for r in rows])
    crops = scene_crops(data, "train", recipe.scene_min_visible, recipe.scene_margin) \
        if recipe.scene_crop_fraction > 0 else []
    crop_x = crops_tensor(crops, recipe.image_size)
    crop_y = torch.tensor([index[lab] for _, lab, _ in crops], dtype=torch.long)
    image_classes = sorted(set(labels.tolist()))
    return TrainingData(
        CLASS_NAMES, image_classes, renders, labels, crop_x, crop_y, load_background_photos(data),
        {c: (labels == c).nonzero().flatten() for c in image_classes},
        {c: (crop_y == c).nonzero().flatten() for c in image_classes if (crop_y == c).any()})


# ------------------------------------------------------------------------------------- loss

def label_aware_clip_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor,
                          img_labels: torch.Tensor, txt_labels: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """CLIP's symmetric InfoNCE with every same-label pair a positive (mean log-prob over positives).

    With one image and one caption per label it is exactly CLIP's loss; with several views and
    captions per label, no positive is pushed away as a negative.
    """
    logits = scale * img @ txt.T  # [B, T]
    pos = (img_labels[:, None] == txt_labels[None, :]).float()
    if (pos.sum(1) == 0).any():
        raise ValueError("every image needs at least one caption of its label in the batch")
    i2t = -(F.log_softmax(logits, dim=1) * pos).sum(1) / pos.sum(1)
    has = pos.sum(0) > 0  # captions of text-only classes have no image positive
    t2i = -(F.log_softmax(logits.T[has], dim=1) * pos.T[has]).sum(1) / pos.T[has].sum(1)
    loss = (i2t.mean() + t2i.mean()) / 2
    with torch.no_grad():  # batch accuracy: class score = mean over its captions
        n_cls = int(max(img_labels.max(), txt_labels.max())) + 1
        onehot = F.one_hot(txt_labels, n_cls).float()
        per_class = (logits @ onehot) / onehot.sum(0).clamp_min(1)
        per_class[:, onehot.sum(0) == 0] = -1e9
        acc = (per_class.argmax(1) == img_labels).float().mean()
    return loss, {"loss_i2t": i2t.mean().item(), "loss_t2i": t2i.mean().item(), "batch_acc": acc.item()}


# ---------------------------------------------------------------------------------- training

def lr_at(step: int, recipe: ClipRecipe) -> float:
    return recipe.lr * warmup_cosine(step, recipe.steps, recipe.warmup_steps, recipe.min_lr_ratio)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """open_clip's split: no decay on gains, biases, norms, the logit scale."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class ClassBalancedBatches:
    """Every step: ``renders_per_class`` views of every image class, ``captions_per_class`` captions
    of every class. Draws from one seeded generator, so a run is reproducible."""

    def __init__(self, data: TrainingData, recipe: ClipRecipe, gen: torch.Generator):
        self.data, self.recipe, self.gen = data, recipe, gen
        self.strength = 1.0  # augmentation strength in [0, 1] (the training loop ramps it)
        tok = tokenizer(recipe)
        self.caption_tokens = [tok(training_captions(name)) for name in data.classes]

    def _pick(self, pool: torch.Tensor, k: int) -> torch.Tensor:
        return pool[torch.randint(0, len(pool), (k,), generator=self.gen)]

    def images(self) -> tuple[torch.Tensor, torch.Tensor]:
        d, r = self.data, self.recipe
        aug = r.augment.at_strength(self.strength)
        crop_fraction = r.scene_crop_fraction * self.strength
        render_idx, crop_idx = [], []
        for c in d.image_classes:
            from_crops = (torch.rand(r.renders_per_class, generator=self.gen) < crop_fraction) \
                if c in d.by_class_crops else torch.zeros(r.renders_per_class, dtype=torch.bool)
            n_crop = int(from_crops.sum())
            render_idx.append(self._pick(d.by_class_renders[c], r.renders_per_class - n_crop))
            if n_crop:
                crop_idx.append(self._pick(d.by_class_crops[c], n_crop))
        render_idx = torch.cat(render_idx)
        views = [augment_renders(d.renders[render_idx].float() / 255.0, OPENAI_MEAN, OPENAI_STD,
                                 d.photos, aug, self.gen)]
        labels = [d.render_labels[render_idx]]
        if crop_idx:
            crop_idx = torch.cat(crop_idx)
            views.append(augment_crops(d.crops[crop_idx], OPENAI_MEAN, OPENAI_STD, aug, self.gen))
            labels.append(d.crop_labels[crop_idx])
        return torch.cat(views), torch.cat(labels)

    def captions(self) -> tuple[torch.Tensor, torch.Tensor]:
        toks, labels = [], []
        for c, pool in enumerate(self.caption_tokens):
            toks.append(self._pick(pool, self.recipe.captions_per_class))
            labels += [c] * self.recipe.captions_per_class
        return torch.cat(toks), torch.tensor(labels)


def text_warmup(model, caption_tokens: list[torch.Tensor], recipe: ClipRecipe) -> list[float]:
    """Supervised-contrastive steps on the text tower alone (captions of a class are positives)."""
    toks = torch.cat(caption_tokens)
    labels = torch.cat([torch.full((len(t),), c) for c, t in enumerate(caption_tokens)])
    text_params = [p for n, p in model.named_parameters() if not n.startswith("visual.") and n != "logit_scale"]
    opt = torch.optim.AdamW(text_params, lr=recipe.text_warmup_lr, weight_decay=0.0)
    eye = torch.eye(len(labels), dtype=torch.bool)
    pos = ((labels[:, None] == labels[None, :]) & ~eye).float()
    losses = []
    for _ in range(recipe.text_warmup_steps):
        e = F.normalize(model.encode_text(toks), dim=-1)
        logits = (20.0 * e @ e.T).masked_fill(eye, -1e9)  # fixed temperature 0.05
        loss = (-(F.log_softmax(logits, dim=1) * pos).sum(1) / pos.sum(1).clamp_min(1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.zero_grad(set_to_none=True)
    return losses


@torch.no_grad()
def ensemble_text_embeddings(model, recipe: ClipRecipe, names=CLASS_NAMES) -> torch.Tensor:
    """In-memory twin of prompts.class_text_embeddings (used for the curves during training)."""
    tok = tokenizer(recipe)
    out = []
    for n in names:
        e = F.normalize(model.encode_text(tok(class_prompts(n))), dim=-1)
        out.append(F.normalize(e.mean(0), dim=-1))
    return torch.stack(out)


def preprocess_paths(paths: list[Path], recipe: ClipRecipe) -> torch.Tensor:
    """The public image preprocessing (encoders' ImagePreprocessor), for in-training curves."""
    from encoders.preprocess import ImageConfig, ImagePreprocessor  # noqa: PLC0415

    pre = ImagePreprocessor(ImageConfig(size=recipe.image_size, mean=list(OPENAI_MEAN), std=list(OPENAI_STD)))
    return pre([str(p) for p in paths])


def topk_accuracy(img: torch.Tensor, cls: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    top = (img @ cls.T).topk(min(k, cls.shape[0]), dim=1).indices
    return float((top == labels[:, None]).any(1).float().mean())


@dataclass
class TrainResult:
    model: Any
    recipe: ClipRecipe
    metrics: list[dict]
    seconds: float


def train_clip(data: Path, recipe: ClipRecipe, progress: bool = True,
               log: Callable[[str], None] = print, metrics_csv: Path | None = None) -> TrainResult:
    """Train the pocket CLIP; returns the in-memory open_clip model and the per-step metrics."""
    recipe.validate()
    check_captions_fit(recipe)
    torch.set_num_threads(recipe.threads)
    random.seed(recipe.seed)
    np.random.seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)

    t0 = time.time()
    td = load_training_data(data, recipe)
    log(f"clip: {len(td.renders)} train renders of {len(td.image_classes)} image classes, "
        f"{len(td.crops)} train scene crops, {len(td.photos)} background photos, "
        f"{len(td.classes)} text classes (loaded in {time.time() - t0:.1f}s)")
    val_rows = image_rows(data, "val")
    index = {n: i for i, n in enumerate(CLASS_NAMES)}
    val_x = preprocess_paths([data / r["path"] for r in val_rows], recipe)
    val_y = torch.tensor([index[r["label"]] for r in val_rows])

    model = build_clip(recipe)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"clip: open_clip CLIP, {n_params / 1e6:.2f}M parameters "
        f"(vision {sum(p.numel() for p in model.visual.parameters()) / 1e6:.2f}M)")
    opt = torch.optim.AdamW(param_groups(model, recipe.weight_decay), lr=recipe.lr, betas=(0.9, 0.98), eps=1e-6)
    batches = ClassBalancedBatches(td, recipe, gen)
    if recipe.text_warmup_steps:
        t1 = time.time()
        before = text_separation(ensemble_text_embeddings(model, recipe))["mean_offdiag_cos"]
        text_warmup(model, batches.caption_tokens, recipe)
        after = text_separation(ensemble_text_embeddings(model, recipe))["mean_offdiag_cos"]
        log(f"clip: text warm-up {recipe.text_warmup_steps} steps ({time.time() - t1:.0f}s): class text "
            f"cosine {before:.3f} -> {after:.3f}")

    metrics: list[dict] = []
    # a .partial file until the end: a stopped retrain leaves the folder's curve (the shipped one) as it was
    curve = LiveCSV(metrics_csv, ["step", "seconds", "lr", "loss", "loss_i2t", "loss_t2i", "batch_acc",
                                  "logit_scale", "val_top1", "val_top5"]) if metrics_csv is not None else None
    steps = range(recipe.steps)
    if progress:
        from tqdm import tqdm  # noqa: PLC0415
        steps = tqdm(steps, desc="clip", unit="step", dynamic_ncols=True)
    start = time.time()
    model.train()
    try:
        for step in steps:
            lr = lr_at(step, recipe)
            batches.strength = min(1.0, (step + 1) / max(1.0, recipe.augment_ramp * recipe.steps))
            for g in opt.param_groups:
                g["lr"] = lr
            x, y = batches.images()
            toks, ty = batches.captions()
            img = F.normalize(model.encode_image(x), dim=-1)
            txt = F.normalize(model.encode_text(toks), dim=-1)
            scale = model.logit_scale.exp().clamp(max=recipe.max_logit_scale)
            loss, parts = label_aware_clip_loss(img, txt, scale, y, ty)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            opt.step()
            with torch.no_grad():  # as open_clip's training loop
                model.logit_scale.clamp_(0, math.log(recipe.max_logit_scale))
            row = {"step": step + 1, "seconds": round(time.time() - start, 2), "lr": lr, "loss": loss.item(),
                   **parts, "logit_scale": model.logit_scale.exp().item(), "val_top1": "", "val_top5": ""}
            if (step + 1) % recipe.eval_every == 0 or step + 1 == recipe.steps:
                model.eval()
                with torch.no_grad():
                    cls = ensemble_text_embeddings(model, recipe)
                    vimg = F.normalize(model.encode_image(val_x), dim=-1)
                row["val_top1"] = topk_accuracy(vimg, cls, val_y, 1)
                row["val_top5"] = topk_accuracy(vimg, cls, val_y, 5)
                model.train()
                if progress:
                    steps.set_postfix(loss=f"{loss.item():.3f}", val=f"{row['val_top1']:.2f}")
            metrics.append(row)
            if curve is not None:
                curve.write(row)
    finally:
        if curve is not None:
            curve.close()
    if curve is not None:
        curve.finish()
    model.eval()
    seconds = time.time() - start
    log(f"clip: {recipe.steps} steps in {seconds / 60:.1f} min; last val top-1 "
        f"{metrics[-1]['val_top1']:.3f}")
    return TrainResult(model, recipe, metrics, seconds)


# ------------------------------------------------------------------------------- export / load

def export(model, recipe: ClipRecipe, out: Path, register: bool = False):
    """CLIP -> ``<out>/{vision,text}.safetensors`` + ``config.json`` through encoders.save_modalities.

    register: also write the registry config encoders/configs/pocket.json (keeping the modalities
    other stages put there), so ``encoders.create("pocket")`` loads these weights.
    Returns the encoder built from the written files (the public loading path).
    """
    import encoders  # noqa: PLC0415

    out = Path(out)
    logit_scale = model.logit_scale.exp().item()
    base = json.loads(REGISTRY_CONFIG.read_text()) if register and REGISTRY_CONFIG.exists() else None
    config = encoder_config(recipe, logit_scale, base)
    clip_only = dict(config, name="pocket", modalities={m: config["modalities"][m] for m in ("vision", "text")})
    enc = encoders.create(clip_only, checkpoint=model.state_dict())
    dtype = torch.float16 if recipe.save_dtype == "float16" else None
    encoders.save_modalities(enc, out, modalities=("vision", "text"), dtype=dtype)
    if register:
        REGISTRY_CONFIG.write_text(json.dumps(config, indent=2) + "\n")
    return encoders.create(str(out), modalities=("vision", "text"))


# ---------------------------------------------------------------------------------- evaluation

def text_separation(cls: torch.Tensor, names=CLASS_NAMES) -> dict:
    """Off-diagonal cosine statistics of unit class embeddings [C, D]."""
    sim = cls @ cls.T
    c = sim.shape[0]
    off = sim[~torch.eye(c, dtype=torch.bool)]
    i, j = divmod(int(torch.where(torch.eye(c, dtype=torch.bool), -2.0, sim).argmax()), c)
    return {"mean_offdiag_cos": float(off.mean()), "max_offdiag_cos": float(off.max()),
            "closest_pair": [names[i], names[j]]}


def _classify(img: torch.Tensor, cls: torch.Tensor, labels: torch.Tensor) -> dict:
    pred = (img @ cls.T).argmax(1)
    return {"n": len(labels), "top1": topk_accuracy(img, cls, labels, 1), "top5": topk_accuracy(img, cls, labels, 5),
            "pred": pred.tolist(), "true": labels.tolist()}


def evaluate(encoder, data: Path, recipe: ClipRecipe | None = None, splits=("val", "test"),
             scene_splits=("test",), progress: bool = False) -> dict:
    """Zero-shot image->text on held-out renders and held-out scene crops, via the public path.

    encoder: what ``encoders.embed_image`` accepts (the MultimodalEncoder ``export`` returns, or
    "pocket"). Classes are all of CLASS_NAMES (chance = 1/40); class embeddings from the canonical
    prompt ensemble (prompts.class_text_embeddings).
    """
    import encoders  # noqa: PLC0415

    from .prompts import class_text_embeddings  # noqa: PLC0415

    recipe = recipe or ClipRecipe()
    data = check_data_dir(data)
    index = {n: i for i, n in enumerate(CLASS_NAMES)}
    cls = class_text_embeddings(CLASS_NAMES, model=encoder)
    single = F.normalize(encoders.embed_text([class_prompts(n)[2] for n in CLASS_NAMES], model=encoder), dim=-1)
    result = {"classes": list(CLASS_NAMES), "chance_top1": 1 / len(CLASS_NAMES),
              "chance_top5": min(5, len(CLASS_NAMES)) / len(CLASS_NAMES),
              "text_separation": text_separation(cls), "renders": {}, "scene_crops": {}}
    for split in splits:
        rows = image_rows(data, split)
        img = encoders.embed_image([str(data / r["path"]) for r in rows], model=encoder, progress=progress)
        y = torch.tensor([index[r["label"]] for r in rows])
        res = _classify(img, cls, y)
        res["top1_single_template"] = topk_accuracy(img, single, y, 1)
        res["paths"] = [r["path"] for r in rows]
        res["styles"] = [r["style"] for r in rows]
        result["renders"][split] = res
    for split in scene_splits:
        crops = scene_crops(data, split, recipe.scene_min_visible, recipe.scene_margin)
        if not crops:
            continue
        img = encoders.embed_image([c for c, _, _ in crops], model=encoder, progress=progress)
        y = torch.tensor([index[lab] for _, lab, _ in crops])
        res = _classify(img, cls, y)
        res["min_visible"] = recipe.scene_min_visible
        result["scene_crops"][split] = res
    return result


def summary_lines(result: dict) -> list[str]:
    lines = []
    for split, r in result["renders"].items():
        lines.append(f"{split} renders: top-1 {r['top1']:.3f}, top-5 {r['top5']:.3f} (n={r['n']}; "
                     f"single template top-1 {r['top1_single_template']:.3f})")
    for split, r in result["scene_crops"].items():
        lines.append(f"{split} scene crops: top-1 {r['top1']:.3f}, top-5 {r['top5']:.3f} (n={r['n']})")
    s = result["text_separation"]
    lines.append(f"chance: top-1 {result['chance_top1']:.3f}, top-5 {result['chance_top5']:.3f}; class text "
                 f"cosine: mean {s['mean_offdiag_cos']:.3f}, max {s['max_offdiag_cos']:.3f} "
                 f"({' / '.join(s['closest_pair'])})")
    return lines


def mistakes(result: dict, split: str = "test") -> list[str]:
    r = result["renders"][split]
    names = result["classes"]
    return [f"{p} ({st}): {names[t]} -> {names[q]}" for p, st, t, q in
            zip(r["paths"], r["styles"], r["true"], r["pred"]) if t != q]


# ------------------------------------------------------------------------------------- figures

def plot_curves(metrics: list[dict], path: Path) -> None:
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    steps = np.array([m["step"] for m in metrics])
    loss = np.array([m["loss"] for m in metrics])
    acc = np.array([m["batch_acc"] for m in metrics])
    k = max(1, len(loss) // 50)
    smooth = lambda v: np.convolve(v, np.ones(k) / k, mode="valid")  # noqa: E731
    ev = [m for m in metrics if m["val_top1"] != ""]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.plot(steps, loss, alpha=0.25, color="C0")
    a.plot(steps[k - 1:], smooth(loss), color="C0")
    a.set_xlabel("step"), a.set_ylabel("label-aware CLIP loss"), a.set_title("training loss")
    b.plot(steps[k - 1:], smooth(acc), label="train batch (augmented)", color="C1")
    b.plot([m["step"] for m in ev], [m["val_top1"] for m in ev], "o-", label="val renders top-1", color="C2")
    b.plot([m["step"] for m in ev], [m["val_top5"] for m in ev], "s--", label="val renders top-5", color="C3")
    b.axhline(1 / len(CLASS_NAMES), color="gray", ls=":", label="chance")
    b.set_ylim(0, 1.02), b.set_xlabel("step"), b.set_title("image->text accuracy"), b.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(result: dict, path: Path) -> None:
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names = result["classes"]
    panels = [(f"test renders (top-1 {result['renders']['test']['top1']:.1%})", result["renders"]["test"])]
    if "test" in result["scene_crops"]:
        r = result["scene_crops"]["test"]
        panels.append((f"test scene crops (top-1 {r['top1']:.1%})", r))
    fig, axes = plt.subplots(1, len(panels), figsize=(9.5 * len(panels), 9))
    axes = np.atleast_1d(axes)
    for ax, (title, r) in zip(axes, panels):
        m = np.zeros((len(names), len(names)))
        for t, p in zip(r["true"], r["pred"]):
            m[t, p] += 1
        m = m / np.maximum(m.sum(1, keepdims=True), 1)
        ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_xlabel("predicted (prompt ensemble)"), ax.set_ylabel("true"), ax.set_title(title)
        for t in range(len(names)):
            for p in range(len(names)):
                if m[t, p] > 0 and t != p:
                    ax.text(p, t, f"{m[t, p]:.1f}", ha="center", va="center", fontsize=5, color="red")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------- model card

CARD_START, CARD_END = "<!-- pocket-clip:start -->", "<!-- pocket-clip:end -->"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def model_card_section(recipe: ClipRecipe, result: dict, run: dict, figures_rel: dict) -> str:
    r = result
    s = r["text_separation"]
    rend = r["renders"]
    rows = "\n".join(f"| {split} renders | {v['n']} | {v['top1']:.1%} | {v['top5']:.1%} | "
                     f"{v['top1_single_template']:.1%} |" for split, v in rend.items())
    rows += "".join(f"\n| {split} scene crops (visible >= {v['min_visible']:.0%}) | {v['n']} | {v['top1']:.1%} | "
                    f"{v['top5']:.1%} | - |" for split, v in r["scene_crops"].items())
    wrong = mistakes(r, "test")
    emoji = [st for st in run.get("styles", []) if st != "stamp"]
    styles = (f"emoji in {len(emoji)} styles: {', '.join(emoji)}; tuxpaint photo cut-outs" if emoji
              else "emoji and tuxpaint photo cut-outs")
    shown = 25  # the card stays readable; clip_recipe.json lists every mistake
    wrong_md = "\n".join(f"- {w}" for w in wrong[:shown]) or "- none"
    if len(wrong) > shown:
        wrong_md += f"\n- ... and {len(wrong) - shown} more (all in `clip_recipe.json`, `test_mistakes`)"
    return f"""{CARD_START}
## pocket CLIP (vision + text)

open_clip's own `CLIP` class from an inline config, trained from scratch on CPU by
`python -m pretrain.pocket train --data DIR --stages clip` (recipe: `pretrain/pocket/clip.py`; the
exact recipe and data fingerprints of this run: `clip_recipe.json`; curves: `clip_metrics.csv`).

- **Model:** image tower open_clip `ModifiedResNet` (layers {recipe.vision['layers']}, width
  {recipe.vision['width']}, attention pool) at {recipe.image_size} px; text tower
  {recipe.text['layers']}-layer transformer, width {recipe.text['width']}, context
  {recipe.text['context_length']} tokens, CLIP BPE tokenizer; {recipe.embed_dim}-d `pocket` space;
  {run['params_m']:.2f}M parameters ({run['vision_params_m']:.2f}M vision); learned logit scale
  {run['logit_scale']:.1f}. Weights stored as {recipe.save_dtype} ({run['size_mb']:.1f} MB).
- **Data:** the pocket world's train split only: {run['train_renders']} renders ({styles}) of
  {run['image_classes']} classes and {run['train_crops']} crops of objects in the train scenes; val/test
  hold out whole drawings/photos (the colour and line-art OpenMoji of one emoji share a split, as do
  Fluent's colour and flat ones). xylophone has no picture: it is a text-only class.
- **Recipe:** {recipe.steps} steps; each step {recipe.renders_per_class} augmented views of every
  image class (about {recipe.scene_crop_fraction:.0%} from scene crops) and {recipe.captions_per_class}
  captions of every class, label-aware CLIP loss (exact: no same-label pair is a negative); augmentation:
  random scale/aspect/rotation/flip/shift, colour jitter, grayscale, outline sketches, white / flat /
  gradient / noise / photo backgrounds under the alpha, low-resolution views; AdamW lr {recipe.lr},
  wd {recipe.weight_decay}, {recipe.warmup_steps} warmup steps then cosine; seed {recipe.seed};
  {run['minutes']:.1f} min on {recipe.threads} CPU threads.
- **Prompts:** `pretrain.pocket.prompts`: `class_prompts(name)` (the bare name + {len(class_prompts('dog')) - 1}
  templates: photo/picture/drawing/emoji/cartoon, "the sound of", "a recording of", ...), and
  `class_text_embeddings(names)` = mean of the unit prompt embeddings, re-normalised. Use these.

### Zero-shot image -> text (measured through `encoders.embed_image` / `embed_text` on the shipped files)

All {len(r['classes'])} classes are candidates: chance top-1 {r['chance_top1']:.1%}, top-5 {r['chance_top5']:.1%}.

| set | n | top-1 | top-5 | top-1, one template ("a photo of ...") |
|---|---|---|---|---|
{rows}

Class text embeddings (prompt ensembles, {len(r['classes'])} classes): mean off-diagonal cosine
**{s['mean_offdiag_cos']:.3f}**, max **{s['max_offdiag_cos']:.3f}** ({s['closest_pair'][0]} / {s['closest_pair'][1]}).

![confusion]({figures_rel['confusion']})
![curves]({figures_rel['curves']})

Test renders misclassified ({len(wrong)} of {rend['test']['n']}):
{wrong_md}

### Known weaknesses
- Trained on {run['train_renders']} pictures: it knows these {len(r['classes'])} categories in emoji / cut-out style,
  nothing else. Text outside the vocabulary of its captions reaches untrained token embeddings.
- Held-out sets are small (val {rend.get('val', {}).get('n', 0)}, test {rend['test']['n']} renders): one
  image is {1 / max(1, rend['test']['n']):.1%} of the test figure.
- Near-duplicate concepts share pictures: car / car horn, chicken / rooster, rain / thunder / wind
  (clouds), water stream / water splash (drops).
{CARD_END}"""


def write_model_card(card: Path, section: str) -> None:
    """Insert or replace the pocket CLIP section; other stages' sections are kept."""
    head = "# rebind pocket models\n\nSmall models rebind trains itself from package-registry data " \
           "(`python -m pretrain.pocket`), shipped as the `pocket` encoder config.\n\n"
    text = card.read_text() if card.exists() else head
    if CARD_START in text and CARD_END in text:
        before, rest = text.split(CARD_START, 1)
        text = before + section + rest.split(CARD_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    card.write_text(text)


# ---------------------------------------------------------------------------------- the stage

def run_clip_stage(data: Path, out: Path, recipe: ClipRecipe, progress: bool = True,
                   log: Callable[[str], None] = print) -> dict:
    """Train, export, evaluate, and write recipe, metrics, plots and the model card section."""
    data = check_data_dir(data)
    out = Path(out).expanduser().resolve()
    register = out == DEFAULT_OUT.resolve()
    figures = FIGURES if register else out / "figures"
    out.mkdir(parents=True, exist_ok=True)
    trained = train_clip(data, recipe, progress=progress, log=log, metrics_csv=out / "clip_metrics.csv")
    model = trained.model
    encoder = export(model, recipe, out, register=register)
    result = evaluate(encoder, data, recipe)
    for line in summary_lines(result):
        log("clip: " + line)
    plot_curves(trained.metrics, figures / "clip_curves.png")
    plot_confusion(result, figures / "clip_confusion.png")
    size = sum((out / f"{m}.safetensors").stat().st_size for m in ("vision", "text"))
    import open_clip  # noqa: PLC0415
    run = {"minutes": trained.seconds / 60, "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
           "vision_params_m": sum(p.numel() for p in model.visual.parameters()) / 1e6,
           "logit_scale": model.logit_scale.exp().item(), "size_mb": size / 1e6,
           "train_renders": len(image_rows(data, "train")),
           "styles": sorted({r["style"] for r in image_rows(data, "train")}), "image_classes": len({r["label"] for r in image_rows(data, "train")}),
           "train_crops": len(scene_crops(data, "train", recipe.scene_min_visible, recipe.scene_margin))
           if recipe.scene_crop_fraction > 0 else 0}
    recipe_record = {
        "stage": "clip", "recipe": asdict(recipe), "open_clip_config": open_clip_config(recipe),
        "tokenizer": TOKENIZER, "class_names": list(CLASS_NAMES),
        "data": {"dir": str(data), **{f"{m}.sha256": _sha(data / "manifests" / f"{m}")
                                      for m in ("images_train.csv", "images_val.csv", "images_test.csv",
                                                "scenes_train.jsonl")
                                      if (data / "manifests" / m).exists()}},
        "environment": {"torch": torch.__version__, "open_clip": open_clip.__version__,
                        "threads": recipe.threads},
        "run": run,
        "results": {k: v for k, v in result.items() if k not in ("renders", "scene_crops")}
        | {"renders": {s: {k: v for k, v in r.items() if k in ("n", "top1", "top5", "top1_single_template")}
                       for s, r in result["renders"].items()},
           "scene_crops": {s: {k: v for k, v in r.items() if k in ("n", "top1", "top5", "min_visible")}
                           for s, r in result["scene_crops"].items()},
           "test_mistakes": mistakes(result, "test")},
    }
    (out / "clip_recipe.json").write_text(json.dumps(recipe_record, indent=2) + "\n")
    rel = os.path.relpath(figures, out)
    write_model_card(out / "MODEL_CARD.md", model_card_section(
        recipe, result, run, {"confusion": f"{rel}/clip_confusion.png", "curves": f"{rel}/clip_curves.png"}))
    log(f"clip: wrote {out} ({size / 1e6:.1f} MB of weights)" + (" and encoders/configs/pocket.json" if register else ""))
    return recipe_record
