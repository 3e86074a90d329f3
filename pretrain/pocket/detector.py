"""The pocket detector: rebind's Detic-style detector trained from scratch on the pocket scenes,
classifying in the pocket CLIP space, so that any pocket embedding (text, image, audio) prompts it.

    python -m pretrain.pocket train --data /work/data/pocket --stages detector

Recipe (defaults of ``DetectorRecipe``; measured choices are in the model card):
- model: ``DeticStyleDetector`` (torchvision Faster R-CNN + Detic's zero-shot head) with a small
  random-init backbone + FPN at the scenes' native 256 px (no pretrained weights exist offline);
- data: the train scenes (``manifests/scenes_train.jsonl``: boxes + labels), decoded once into
  memory; horizontal flips, per-batch scale jitter (the detector's ``min_size`` list), colour
  jitter;
- classifier: the pocket CLIP's TEXT embeddings of ALL categories (prompts.class_text_embeddings),
  with per-step jitter: each class's column is, with probability ``embedding_mix_prob``, replaced by
  a mix of its text embedding and the IMAGE embedding of one of its train renders. Audio encoders
  are trained to hit image embeddings, so the head must score both ends of that segment;
- AdamW, linear warmup then cosine decay, one seed for init, batches and augmentation.

The stage writes the detector with ``adapters.detic.save_detector`` (weights in float16; its default
vocabulary is the text embeddings of the categories) plus ``recipe.json``, ``metrics.csv`` and a
loss plot, then evaluates the saved files on the held-out test scenes (detector_eval.py).
"""

from __future__ import annotations

import csv
import json
import random
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import LiveCSV
from .categories import CATEGORIES

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DETECTOR_OUT = REPO / "adapters" / "weights" / "pocket_detector"
FIGURES = REPO / "docs" / "figures" / "pocket"

# Every category, in table order (the same as prompts.CLASS_NAMES); labels index this tuple.
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES)


class SceneDataError(FileNotFoundError):
    """The pocket data directory has no (or broken) scenes."""


# ------------------------------------------------------------------------------------- recipe

@dataclass
class DetectorRecipe:
    seed: int = 0
    steps: int = 6000  # val AP50 flat from ~4000 (0.22 / 0.17 / 0.33 / 0.39 / 0.36 / 0.38 every 1000)
    batch_size: int = 4
    threads: int = 2  # 2.0 steps/s on 2 idle cores (1 thread beats 2 only when the cores are shared)
    channels_last: bool = True  # backbone weights in NHWC: measured 1.15x per step on CPU
    optimizer: str = "sgd"  # or "adamw"; SGD gave the better AP50 in a 500-step comparison
    lr: float = 0.02
    momentum: float = 0.9
    min_lr_ratio: float = 0.02
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    grad_clip: float = 10.0
    # DeticStyleConfig fields; ``space`` is always the CLIP's
    detector: dict = field(default_factory=lambda: {
        "backbone": "mobilenet_v3_large", "norm": "batch", "fpn_channels": 64, "representation_size": 256,
        "min_size": [224, 256, 288], "max_size": 288,
        "rpn_pre_nms_top_n_train": 1000, "rpn_post_nms_top_n_train": 500,
        "box_batch_size_per_image": 128})
    test_size: int = 256  # the scenes' native size: min/max size at inference
    # augmentation
    hflip_prob: float = 0.5
    brightness: float = 0.3  # factors drawn in [1 - x, 1 + x]
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.03
    # freshly composited train scenes (scenes.make_scene on train renders, class-balanced): more
    # objects per image than the stored scenes, for the same compute per step
    synthetic_fraction: float = 0.5  # of each batch
    synthetic_max_objects: int = 8
    bn_recompute_images: int = 256  # precise BN over this many train scenes before every evaluation
    # classifier jitter toward image embeddings (see the module docstring)
    embedding_mix_prob: float = 0.5
    embedding_mix_max: float = 1.0  # mixing weight of the image embedding drawn in [0, this]
    prompt_variant_prob: float = 0.3  # a single prompt's text embedding instead of the ensemble
    # bookkeeping
    clip: str = "pocket"  # encoder config whose text/image towers give the class embeddings
    eval_every: int = 1000  # text-prompted AP50 on val scenes (0: never)
    eval_scenes: int = 60
    save_dtype: str = "float16"

    @classmethod
    def from_dict(cls, data: dict) -> "DetectorRecipe":
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown DetectorRecipe field(s) {sorted(unknown)}; "
                             f"known: {sorted(cls.__dataclass_fields__)}")
        return cls(**data)

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.threads < 1:
            raise ValueError("steps, batch_size and threads must be >= 1")
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        for name in ("hflip_prob", "embedding_mix_prob", "embedding_mix_max", "prompt_variant_prob",
                     "synthetic_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.save_dtype not in ("float16", "float32"):
            raise ValueError(f"save_dtype must be 'float16' or 'float32', got {self.save_dtype!r}")
        if "space" in self.detector:
            raise ValueError("detector.space comes from the CLIP (recipe.clip); drop it from the recipe")
        self.detector_config("pocket")  # the DeticStyleConfig validates its own fields

    def detector_config(self, space: str):
        from adapters.detic.model import DeticStyleConfig  # noqa: PLC0415

        return DeticStyleConfig.from_dict({**self.detector, "space": space}, "recipe.detector")

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------- data

def scenes_path(data: Path, split: str) -> Path:
    path = Path(data).expanduser() / "manifests" / f"scenes_{split}.jsonl"
    if not path.exists():
        raise SceneDataError(f"'{path}' is missing; build the pocket data with "
                             f"`python -m pretrain.pocket data --out {data}` (scenes > 0)")
    return path


def read_scenes(data: Path, split: str, limit: int | None = None) -> list[dict]:
    """Scene records of a split (``manifests/scenes_<split>.jsonl``), first ``limit`` of them."""
    lines = scenes_path(data, split).read_text().splitlines()
    records = [json.loads(line) for line in lines[:limit] if line.strip()]
    unknown = sorted({o["label"] for r in records for o in r["objects"]} - set(CLASS_NAMES))
    if unknown:
        raise SceneDataError(f"scenes_{split}.jsonl has labels {unknown} the category table does not know")
    return records


def scene_targets(record: dict) -> dict[str, torch.Tensor]:
    """A scene record -> {"boxes": float [K, 4] xyxy px, "labels": int64 [K] into CLASS_NAMES}."""
    boxes = [o["box"] for o in record["objects"]]
    labels = [CLASS_NAMES.index(o["label"]) for o in record["objects"]]
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64)}


def load_scene_images(data: Path, records: list[dict]) -> torch.Tensor:
    """uint8 [N, 3, H, W] (scenes share one size): decoded once, so a step never waits on PNGs."""
    from PIL import Image  # noqa: PLC0415

    out = []
    for r in records:
        with Image.open(Path(data) / r["image"]) as im:
            out.append(torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1))
    return torch.stack(out)


@dataclass
class SceneSet:
    records: list[dict]
    images: torch.Tensor  # uint8 [N, 3, H, W]
    targets: list[dict[str, torch.Tensor]]

    @classmethod
    def load(cls, data: Path, split: str, limit: int | None = None) -> "SceneSet":
        records = read_scenes(data, split, limit)
        return cls(records, load_scene_images(data, records), [scene_targets(r) for r in records])

    def __len__(self) -> int:
        return len(self.records)


def augment(image: torch.Tensor, target: dict[str, torch.Tensor], recipe: DetectorRecipe,
            gen: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """uint8 [3, H, W] + target -> float [3, H, W] in [0, 1] + target: flip, colour jitter.
    (Scale jitter happens in the detector's transform: one ``min_size`` per batch.)"""
    import torchvision.transforms.v2.functional as TF  # noqa: PLC0415

    def draw(spread: float) -> float:
        return 1.0 + spread * (2 * torch.rand((), generator=gen).item() - 1)

    x = image.float() / 255.0
    boxes = target["boxes"].clone()
    if torch.rand((), generator=gen).item() < recipe.hflip_prob:
        x = x.flip(-1)
        width = x.shape[-1]
        boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
    # colour jitter in a random order of its three parts, hue last (it is the slow one)
    for k in torch.randperm(3, generator=gen).tolist():
        if k == 0 and recipe.brightness:
            x = TF.adjust_brightness(x, draw(recipe.brightness))
        elif k == 1 and recipe.contrast:
            x = TF.adjust_contrast(x, draw(recipe.contrast))
        elif k == 2 and recipe.saturation:
            x = TF.adjust_saturation(x, draw(recipe.saturation))
    if recipe.hue:
        x = TF.adjust_hue(x, recipe.hue * (2 * torch.rand((), generator=gen).item() - 1))
    return x.clamp(0, 1), {"boxes": boxes, "labels": target["labels"]}


class BatchSampler:
    """Epochs of seeded random permutations, cut into batches (the last short batch rolls over)."""

    def __init__(self, size: int, batch_size: int, gen: torch.Generator):
        self.size, self.batch_size, self.gen = size, batch_size, gen
        self.order: list[int] = []

    def next(self) -> list[int]:
        while len(self.order) < self.batch_size:
            self.order += torch.randperm(self.size, generator=self.gen).tolist()
        batch, self.order = self.order[:self.batch_size], self.order[self.batch_size:]
        return batch


class SceneSynthesizer:
    """Fresh train scenes from the pocket data's own compositor (scenes.make_scene): each object's
    class drawn uniformly, then one of its train renders; backgrounds as in the stored scenes."""

    def __init__(self, data: Path, max_objects: int, seed: int, split: str = "train"):
        from PIL import Image  # noqa: PLC0415

        from .images import BACKGROUNDS  # noqa: PLC0415
        from .scenes import Camera, SceneItem  # noqa: PLC0415

        data = Path(data)
        self.backgrounds = [Image.open(data / "backgrounds" / f"{n}.png").convert("RGB") for n in BACKGROUNDS]
        self.by_class: dict[str, list] = {}
        for r in render_rows(data, split):
            with Image.open(data / r["path"]) as im:
                self.by_class.setdefault(r["label"], []).append(SceneItem(r["label"], im.convert("RGBA"), r["path"]))
        if not self.by_class or not self.backgrounds:
            raise SceneDataError(f"'{data}' has no {split} renders or no backgrounds to composite scenes from")
        self.classes = sorted(self.by_class)
        self.camera = Camera()
        self.max_objects = max_objects
        self.rng = np.random.default_rng([seed, 7])

    def next(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        from .scenes import make_scene  # noqa: PLC0415

        items = []
        for _ in range(self.max_objects):
            pool = self.by_class[self.classes[int(self.rng.integers(len(self.classes)))]]
            items.append(pool[int(self.rng.integers(len(pool)))])
        rgb, _, _, record = make_scene(items, self.backgrounds, self.camera, self.rng, max_objects=self.max_objects)
        return torch.from_numpy(np.array(rgb)).permute(2, 0, 1), scene_targets(record)


# ------------------------------------------------------------------------ class embeddings

@dataclass
class ClassEmbeddings:
    """What the classifier trains with: text embeddings of every class, image embeddings of the
    train renders of the classes that have pictures (all unit, in the CLIP's space)."""

    names: tuple[str, ...]
    space: str
    text: torch.Tensor  # [C, D] prompt-ensemble embeddings
    render_images: dict[int, torch.Tensor]  # class index -> [k, D]
    text_variants: dict[int, torch.Tensor] = field(default_factory=dict)  # class -> [T, D] single prompts

    def jittered(self, recipe: DetectorRecipe, gen: torch.Generator) -> torch.Tensor:
        """[C, D]: each class, with probability ``prompt_variant_prob``, swaps its ensemble text
        embedding for one single prompt's (users type one prompt: "dog"); then each class with a
        picture, with probability ``embedding_mix_prob``, moves toward one of its render
        embeddings: normalize((1 - a) text + a image), a ~ U(0, mix_max)."""
        out = self.text.clone()
        for c, variants in self.text_variants.items():
            if torch.rand((), generator=gen).item() < recipe.prompt_variant_prob:
                out[c] = variants[torch.randint(len(variants), (), generator=gen)]
        if recipe.embedding_mix_prob <= 0:
            return out
        for c, images in self.render_images.items():
            if torch.rand((), generator=gen).item() >= recipe.embedding_mix_prob:
                continue
            a = recipe.embedding_mix_max * torch.rand((), generator=gen).item()
            image = images[torch.randint(len(images), (), generator=gen)]
            out[c] = F.normalize((1 - a) * out[c] + a * image, dim=-1)
        return out


def class_text_embeddings(names, clip: Any = "pocket") -> torch.Tensor:
    """[C, D] unit text embeddings through the CLIP's canonical prompt ensemble when the pocket
    prompt helper is there (pretrain/pocket/prompts.py), else the bare names."""
    try:
        from .prompts import class_text_embeddings as ensemble  # noqa: PLC0415
    except ImportError:  # before the pocket CLIP's prompt helper exists
        import encoders  # noqa: PLC0415

        return encoders.embed_text(list(names), model=clip)
    return ensemble(list(names), model=clip)


def class_prompt_variants(names, clip: Any = "pocket") -> dict[int, torch.Tensor]:
    """class index -> [T, D] unit text embeddings of each single prompt of the class's canonical
    ensemble (empty before the pocket prompt helper exists)."""
    try:
        from .prompts import class_prompts  # noqa: PLC0415
    except ImportError:
        return {}
    import encoders  # noqa: PLC0415

    groups = [class_prompts(n) for n in names]
    emb = encoders.embed_text([p for g in groups for p in g], model=clip).float()
    out, start = {}, 0
    for c, g in enumerate(groups):
        out[c] = emb[start:start + len(g)]
        start += len(g)
    return out


def render_rows(data: Path, split: str) -> list[dict]:
    with open(Path(data) / "manifests" / f"images_{split}.csv", newline="") as f:
        return list(csv.DictReader(f))


def class_render_embeddings(data: Path, split: str, clip: Any = "pocket") -> dict[int, torch.Tensor]:
    """class index -> [k, D] unit image embeddings of that class's renders of ``split`` (through the
    public path: ``encoders.embed_image`` composites RGBA on white as it does for any user)."""
    import encoders  # noqa: PLC0415

    rows = [r for r in render_rows(data, split) if r["label"] in CLASS_NAMES]
    if not rows:
        return {}
    emb = encoders.embed_image([str(Path(data) / r["path"]) for r in rows], model=clip)
    labels = torch.tensor([CLASS_NAMES.index(r["label"]) for r in rows])
    return {int(c): emb[labels == c] for c in labels.unique()}


def clip_space(clip: Any) -> str:
    import encoders  # noqa: PLC0415

    return encoders.resolve_encoder(clip, "text").space.name


def load_class_embeddings(data: Path, clip: Any = "pocket") -> ClassEmbeddings:
    return ClassEmbeddings(CLASS_NAMES, clip_space(clip), class_text_embeddings(CLASS_NAMES, clip).float(),
                           {c: e.float() for c, e in class_render_embeddings(data, "train", clip).items()},
                           class_prompt_variants(CLASS_NAMES, clip))


# ----------------------------------------------------------------------------------- training

def set_inference_size(model, size: int) -> None:
    """Make the detector test at ``size`` (torchvision's transform tests at the LAST min_size of the
    training list, which would upscale 256-px scenes to the largest jitter size)."""
    model.config.min_size = [size]
    model.config.max_size = max(size, model.config.max_size)
    model.transform.min_size = (size,)
    model.transform.max_size = model.config.max_size


@torch.no_grad()
def recompute_batchnorm_statistics(model, images: torch.Tensor, batch_size: int = 8) -> int:
    """Precise BN: replace the running mean/var of every BatchNorm layer by their exact average over
    ``images`` (uint8 [N, 3, H, W]) at the inference size. Measured: after a short run from scratch,
    the momentum averages lag the weights so far that eval-mode proposals miss most objects.
    Returns how many layers were reset."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not layers:
        return 0
    momenta = [m.momentum for m in layers]
    was_training = model.training
    model.eval()
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
        m.train()
    try:
        for k in range(0, len(images), batch_size):
            batch = [img.float() / 255.0 for img in images[k:k + batch_size]]
            model.backbone(model.transform(batch)[0].tensors)
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
        model.train(was_training)
    return len(layers)


@contextmanager
def inference_size(model, size: int):
    saved = (list(model.config.min_size), model.config.max_size, model.transform.min_size, model.transform.max_size)
    set_inference_size(model, size)
    try:
        yield model
    finally:
        model.config.min_size, model.config.max_size, model.transform.min_size, model.transform.max_size = saved


def lr_at(step: int, recipe: DetectorRecipe) -> float:
    from .train import warmup_cosine  # noqa: PLC0415

    return recipe.lr * warmup_cosine(step, recipe.steps, recipe.warmup_steps, recipe.min_lr_ratio)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No decay on norms, biases and the classifier's logit bias."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@dataclass
class TrainResult:
    model: Any
    recipe: DetectorRecipe
    metrics: list[dict]
    seconds: float


def train_detector(train: SceneSet, classes: ClassEmbeddings, recipe: DetectorRecipe,
                   val: SceneSet | None = None, progress: bool = True, log: Callable[[str], None] = print,
                   metrics_csv: Path | None = None, synthesizer: SceneSynthesizer | None = None) -> TrainResult:
    """Train a fresh ``DeticStyleDetector``; returns it (eval mode, text classes installed)."""
    from adapters.detic.model import DeticStyleDetector  # noqa: PLC0415

    from .detector_eval import evaluate_detector  # noqa: PLC0415

    recipe.validate()
    torch.set_num_threads(recipe.threads)
    random.seed(recipe.seed)
    np.random.seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)

    model = DeticStyleDetector(recipe.detector_config(classes.space))
    model.set_class_embeddings(classes.text, list(classes.names))
    if recipe.channels_last:
        model.backbone.to(memory_format=torch.channels_last)
    groups = param_groups(model, recipe.weight_decay)
    opt = torch.optim.AdamW(groups, lr=recipe.lr) if recipe.optimizer == "adamw" else \
        torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum)
    synthetic = round(recipe.synthetic_fraction * recipe.batch_size)
    if synthetic and synthesizer is None:
        raise ValueError("recipe.synthetic_fraction > 0 needs a SceneSynthesizer (the data directory's renders)")
    sampler = BatchSampler(len(train), recipe.batch_size - synthetic, gen)
    bn_images = train.images[torch.randperm(len(train), generator=torch.Generator().manual_seed(recipe.seed))
                             [:recipe.bn_recompute_images]]
    metrics: list[dict] = []
    # a .partial file until the end: a stopped run leaves the folder's metrics.csv (the shipped one) as it was
    curve = LiveCSV(metrics_csv) if metrics_csv is not None else None
    bar = None
    if progress:
        from tqdm.auto import tqdm  # noqa: PLC0415
        bar = tqdm(total=recipe.steps, desc="pocket detector", unit="step")
    start = time.time()
    try:
        for step in range(recipe.steps):
            model.train()
            lr = lr_at(step, recipe)
            for g in opt.param_groups:
                g["lr"] = lr
            pairs = [(train.images[i], train.targets[i]) for i in sampler.next()]
            pairs += [synthesizer.next() for _ in range(synthetic)]
            batch = [augment(image, target, recipe, gen) for image, target in pairs]
            model.set_class_embeddings(classes.jittered(recipe, gen), list(classes.names))
            losses = model([b[0] for b in batch], [b[1] for b in batch])
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(f"step {step}: loss is {loss.item()} ({ {k: v.item() for k, v in losses.items()} }); "
                                         f"lower recipe.lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            opt.step()
            row = {"step": step + 1, "lr": lr, "loss": loss.item(), **{k: v.item() for k, v in losses.items()},
                   "grad_norm": float(grad_norm), "seconds": round(time.time() - start, 2), "val_ap50": ""}
            last = step + 1 == recipe.steps
            if val is not None and recipe.eval_every and ((step + 1) % recipe.eval_every == 0 or last):
                model.set_class_embeddings(classes.text, list(classes.names))
                with inference_size(model, recipe.test_size):
                    recompute_batchnorm_statistics(model, bn_images)  # training uses batch statistics
                    report = evaluate_detector(model, val, {"text": classes.text}, list(classes.names))
                row["val_ap50"] = round(report["text"]["ap50"], 4)
                log(f"step {step + 1}: val AP50 (text-prompted) {row['val_ap50']:.3f}")
            metrics.append(row)
            if curve is not None:
                curve.write(row)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.1e}")
    finally:
        if bar is not None:
            bar.close()
        if curve is not None:
            curve.close()
    if curve is not None:
        curve.finish()
    model.set_class_embeddings(classes.text, list(classes.names))
    set_inference_size(model, recipe.test_size)
    recompute_batchnorm_statistics(model, bn_images)
    model.eval()
    return TrainResult(model, recipe, metrics, time.time() - start)


def plot_losses(metrics: list[dict], path: Path, window: int = 25) -> Path:
    """Running means of the four losses and the total, plus val AP50 where measured."""
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    steps = np.array([m["step"] for m in metrics])
    fig, (ax, ax_ap) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key in ("loss", "loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"):
        values = np.array([m[key] for m in metrics], dtype=float)
        w = max(1, min(window, len(values)))
        smooth = np.convolve(values, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1:], smooth, label=key)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(f"training losses (running mean of {window})")
    ax.legend(fontsize=7)
    evals = [(m["step"], m["val_ap50"]) for m in metrics if m.get("val_ap50") not in ("", None)]
    if evals:
        ax_ap.plot(*zip(*evals), marker="o")
    ax_ap.set_ylim(0, 1)
    ax_ap.set_xlabel("step")
    ax_ap.set_title("val AP50, text-prompted")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_trained_detector(model, recipe: DetectorRecipe, out: Path, extra: dict | None = None) -> Path:
    """``save_detector`` in the recipe's dtype (the in-memory model stays float32) + recipe.json."""
    from adapters.detic.model import save_detector  # noqa: PLC0415

    if recipe.save_dtype == "float16":
        model.half()
    try:
        save_detector(model, out)
    finally:
        model.float()
    (Path(out) / "recipe.json").write_text(json.dumps({"recipe": recipe.to_dict(), **(extra or {})}, indent=2) + "\n")
    return Path(out)


# -------------------------------------------------------------------------------------- stage

def run_detector_stage(data: Path, out: Path, recipe: DetectorRecipe, clip: Any = "pocket",
                       progress: bool = True, evaluate: bool = True, figures: Path | None = FIGURES,
                       log: Callable[[str], None] = print) -> dict:
    """Train, save (``out``: config.json, model.safetensors, classes.safetensors, recipe.json,
    metrics.csv, loss.png), then evaluate the SAVED files on the held-out test scenes (eval.json)."""
    from .detector_eval import evaluate_pocket_detector  # noqa: PLC0415

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    classes = load_class_embeddings(data, clip)
    train = SceneSet.load(data, "train")
    val = SceneSet.load(data, "val", recipe.eval_scenes) if recipe.eval_every else None
    prep_seconds = time.time() - t0
    log(f"pocket detector: {len(train)} train scenes, {len(classes.names)} classes in space {classes.space}, "
        f"{sum(len(v) for v in classes.render_images.values())} render embeddings ({prep_seconds:.0f} s)")
    synthesizer = SceneSynthesizer(data, recipe.synthetic_max_objects, recipe.seed) \
        if recipe.synthetic_fraction > 0 else None
    result = train_detector(train, classes, recipe, val=val, progress=progress, log=log,
                            metrics_csv=out / "metrics.csv", synthesizer=synthesizer)
    record = {"train_seconds": round(result.seconds, 1), "prepare_seconds": round(prep_seconds, 1),
              "train_scenes": len(train), "classes": list(classes.names), "space": classes.space,
              "threads": recipe.threads, "torch": torch.__version__}
    save_trained_detector(result.model, recipe, out, extra=record)
    plot_losses(result.metrics, out / "loss.png")
    if figures is not None:
        plot_losses(result.metrics, Path(figures) / "detector_loss.png")
    log(f"saved the pocket detector to {out} ({result.seconds / 60:.1f} min training)")
    if evaluate:
        report = evaluate_pocket_detector(data, out, clip, log=log)
        (out / "eval.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
        record["eval"] = {k: v.get("ap50") for k, v in report.items() if isinstance(v, dict)}
    return record
