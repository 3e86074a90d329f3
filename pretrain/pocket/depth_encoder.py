"""The pocket depth encoder: ImageBind's depth recipe on synthetic RGB-D composites, on a CPU.

    python -m pretrain.pocket train --data /work/data/pocket --stages depth

The pocket data's scenes paste cut-outs onto backgrounds with a pinhole camera at known distances,
so every scene has an exact disparity map beside its RGB. Around every object that is at least
half visible we cut the same square from both: the DISPARITY crop goes to the student (an
AVID-style ConvNet from the encoders registry, on a 1-channel 64x64 map), the RGB crop of the same
scene to the FROZEN pocket CLIP image tower. Training is pretrain's explicit-pair InfoNCE
(``pairing: pairs``, temperature 0.2 as ImageBind's depth), no labels and no text. The encoder is
then classified through the pocket CLIP's TEXT tower on crops of HELD-OUT scenes (held-out scenes
use only held-out pictures): emergent zero-shot. The same crops' RGB through the CLIP image tower
is the reference the student can at best approach.

Augmentation (on the preprocessed batch): the disparity is multiplied by a random factor
(log-uniform in ``disparity_scale``) before the clamp at ``max_disparity``. The synthetic camera's
disparities span ~0.6-13 px, a real stereo rig's (Middlebury motorcycle, shipped with
scikit-image) 7-60 px; objects are recognised by their silhouette, so the student is taught not to
care about the absolute scale. Horizontal flips would need the teacher's view flipped too and are
left out.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]


@dataclass
class DepthRecipe:
    seed: int = 0
    # student
    channels: list = field(default_factory=lambda: [16, 32, 64, 128])
    strides: list = field(default_factory=lambda: [1, 2, 2, 2])
    fc: list = field(default_factory=lambda: [256])
    size: int = 64
    max_disparity: float = 64.0
    depth_mean: float = 0.15  # of disparity / max_disparity over the scale-jittered train crops
    depth_std: float = 0.12
    # data: square crops around objects of the scenes
    min_visible: float = 0.5
    min_box: int = 12  # px: smaller objects are a few pixels of constant disparity
    crop_margin: float = 1.3
    # teacher
    teacher: str = "rebind:pocket"
    # objective: pretrain's explicit-pair InfoNCE
    temperature: float = 0.2
    disparity_scale: list = field(default_factory=lambda: [0.5, 5.0])
    # optimisation
    steps: int = 800
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 60
    min_lr_ratio: float = 0.02
    threads: int = 1
    eval_every: int = 400
    save_dtype: str = "float16"

    @classmethod
    def from_dict(cls, data: dict) -> "DepthRecipe":
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown DepthRecipe field(s) {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**data)

    def validate(self) -> None:
        if len(self.channels) != len(self.strides):
            raise ValueError(f"channels {self.channels} and strides {self.strides} need one entry per stage")
        lo, hi = self.disparity_scale
        if not 0 < lo <= hi:
            raise ValueError(f"disparity_scale must be [lo, hi] with 0 < lo <= hi, got {self.disparity_scale}")
        if self.steps < 1 or self.batch_size < 2:
            raise ValueError("steps >= 1 and batch_size >= 2 are required")


def depth_modality_config(recipe: DepthRecipe) -> dict:
    """The ``depth`` entry of the pocket encoder config (architecture + preprocessing)."""
    return {"arch": "convnet", "channels": list(recipe.channels), "strides": list(recipe.strides),
            "fc": list(recipe.fc),
            "preprocess": {"kind": "depth", "size": recipe.size, "input": "disparity",
                           "max_disparity": recipe.max_disparity, "mean": recipe.depth_mean,
                           "std": recipe.depth_std}}


# ------------------------------------------------------------------------------------- crops

def resize_map(d: np.ndarray, size: int) -> np.ndarray:
    """A disparity crop -> [size, size] (area-weighted, as the public preprocessing's antialias)."""
    t = torch.from_numpy(np.ascontiguousarray(d, dtype=np.float32))[None, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=t.shape[-1] > size)[0, 0].numpy()


def scene_objects(data: Path, split: str, recipe: DepthRecipe) -> list[tuple[dict, dict]]:
    """(scene record, object) for every object of a split that is visible and large enough."""
    out = []
    for line in (data / "manifests" / f"scenes_{split}.jsonl").read_text().splitlines():
        rec = json.loads(line)
        for o in rec["objects"]:
            x0, y0, x1, y1 = o["box"]
            if o["visible_fraction"] >= recipe.min_visible and max(x1 - x0, y1 - y0) >= recipe.min_box:
                out.append((rec, o))
    return out


def write_crops(data: Path, work: Path, split: str, recipe: DepthRecipe, progress: bool = True) -> Path:
    """``<work>/crops_<split>/`` with paired ``<key>.npy`` (disparity) + ``<key>.png`` (RGB) and a
    manifest ``pairs.csv`` (depth,image,label,scene,instance). Rebuilt only when missing."""
    from PIL import Image

    from .clip import scene_crop_box  # the CLIP stage's scene crops: the same square around a box

    folder = work / f"crops_{split}_{recipe.size}_{recipe.crop_margin}_{recipe.min_visible}_{recipe.min_box}"
    manifest = folder / "pairs.csv"
    if manifest.exists():
        return manifest
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    objects = scene_objects(data, split, recipe)
    it = range(len(objects))
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=f"depth crops ({split})", unit="crop")
    rows, current = [], (None, None, None)
    for i in it:
        rec, o = objects[i]
        if current[0] != rec["image"]:
            with Image.open(data / rec["image"]) as im:
                rgb = im.convert("RGB")
            current = (rec["image"], rgb, np.load(data / rec["disparity"]))
        _, rgb, disp = current
        box = scene_crop_box(o["box"], rgb.width, rgb.height, recipe.crop_margin)
        key = f"{Path(rec['image']).stem}_{o['instance']}"
        rgb.crop(box).resize((recipe.size, recipe.size), Image.BICUBIC).save(tmp / f"{key}.png")
        np.save(tmp / f"{key}.npy", resize_map(disp[box[1]:box[3], box[0]:box[2]], recipe.size))
        rows.append([f"{key}.npy", f"{key}.png", o["label"], rec["image"], o["instance"]])
    with open(tmp / "pairs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["depth", "image", "label", "scene", "instance"])
        w.writerows(rows)
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return manifest


def run_config(recipe: DepthRecipe, pairs: Path, work: Path, name: str, progress: bool = True) -> dict:
    from .audio_encoder import optimisation_sections

    return {
        "out_dir": str(work / name),
        "seed": recipe.seed,
        "student": {"model": {"name": "pocket", "space": "pocket",
                              "modalities": {"depth": depth_modality_config(recipe)}},
                    "modality": "depth"},
        "teacher": {"model": recipe.teacher, "cache": str(teacher_cache_dir(work, recipe)),
                    "image_augment": "none"},
        "data": {"train": str(pairs), "pairing": "pairs", "preload": True},
        "loss": {"temperature": recipe.temperature, "positives": "pairs"},
        **optimisation_sections(recipe, progress),
    }


def teacher_cache_dir(work: Path, recipe: DepthRecipe) -> Path:
    from .. import teacher as T
    from ..config import TeacherConfig

    ident = T.teacher_identity(TeacherConfig(model=recipe.teacher))
    tag = hashlib.sha256(json.dumps([ident, recipe.size, recipe.crop_margin, recipe.min_visible,
                                     recipe.min_box], sort_keys=True).encode()).hexdigest()[:10]
    return work / f"depth_teacher_cache_{tag}"


# ------------------------------------------------------------------------------------ trainer

def scale_disparity(x: torch.Tensor, factor: torch.Tensor, recipe: DepthRecipe) -> torch.Tensor:
    """Preprocessed maps -> the maps of ``factor`` x the disparity (clamped as the preprocessing)."""
    d = (x * recipe.depth_std + recipe.depth_mean).clamp(0, 1)  # disparity / max_disparity
    d = (d * factor.view(-1, 1, 1, 1)).clamp(0, 1)
    return (d - recipe.depth_mean) / recipe.depth_std


def _make_trainer_class():
    from ..train import Trainer

    class PocketDepthTrainer(Trainer):
        """pretrain's Trainer with disparity-scale jitter on the student's input."""

        def __init__(self, config: dict, recipe: DepthRecipe):
            super().__init__(config)
            self.recipe = recipe
            self.jitter_gen = torch.Generator().manual_seed(recipe.seed * 7919 + 29)

        def model_input(self, batch: dict) -> torch.Tensor:
            x = super().model_input(batch)
            lo, hi = self.recipe.disparity_scale
            u = torch.rand(x.shape[0], generator=self.jitter_gen)
            factor = torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))).to(x.device)
            return scale_disparity(x, factor, self.recipe)

    return PocketDepthTrainer


# ---------------------------------------------------------------------------------- evaluation

@dataclass
class HeldOutCrops:
    x: torch.Tensor  # preprocessed disparity [N, 1, S, S]
    images: list[str]  # RGB crop paths
    labels: list[str]
    keys: list[str]


def load_heldout(pairs: Path, recipe: DepthRecipe) -> HeldOutCrops:
    from encoders.config import from_dict
    from encoders.preprocess import DepthConfig, DepthPreprocessor

    with open(pairs, newline="") as f:
        rows = list(csv.DictReader(f))
    pre = DepthPreprocessor(from_dict(DepthConfig, depth_modality_config(recipe)["preprocess"], "depth"))
    x = pre([str(pairs.parent / r["depth"]) for r in rows])
    return HeldOutCrops(x, [str(pairs.parent / r["image"]) for r in rows], [r["label"] for r in rows],
                        [f"{r['scene']}#{r['instance']}" for r in rows])


@torch.no_grad()
def embed_crops(student, held: HeldOutCrops, batch: int = 128) -> torch.Tensor:
    was = student.training
    student.eval()
    out = torch.cat([student(held.x[i: i + batch], output="unit") for i in range(0, len(held.x), batch)])
    student.train(was)
    return out


@dataclass
class DepthRun:
    seed: int
    seconds: float
    curves: list[dict]
    final: dict
    trainer: Any = None
    history: list = field(default_factory=list)  # pretrain's metrics.csv rows (loss, lr, ...)


def train_depth(data: Path, work: Path, recipe: DepthRecipe, text_emb: torch.Tensor, class_names: list[str],
                val_pairs: Path | None, name: str | None = None, progress: bool = True,
                log: Callable[[str], None] = print) -> DepthRun:
    import pretrain

    from .audio_encoder import run_with_curves
    from .evaluate import zero_shot

    recipe.validate()
    torch.set_num_threads(recipe.threads)
    name = name or f"depth_seed{recipe.seed}"
    pairs = write_crops(data, work, "train", recipe, progress)
    cfg = run_config(recipe, pairs, work, name, progress)
    out = Path(cfg["out_dir"])
    if out.exists():
        shutil.rmtree(out)
    pretrain.cache_teacher(pretrain.load_config(cfg, check_files=False), views=1, progress=progress)
    trainer = _make_trainer_class()(cfg, recipe)
    val = load_heldout(val_pairs, recipe) if val_pairs is not None else None

    def evaluate_now(step: int) -> dict:
        row = {"step": step}
        if val is not None:
            zs = zero_shot(embed_crops(trainer.student, val), val.labels, class_names, text_emb)
            row.update(val_text_top1=zs["top1"], val_text_top5=zs["top5"])
        return row

    result, seconds, curves, final = run_with_curves(trainer, recipe.eval_every, evaluate_now, f"depth {name}", log)
    return DepthRun(recipe.seed, seconds, curves, final, trainer, result.history)


# ---------------------------------------------------------------------------------- the stage

CARD_START, CARD_END = "<!-- pocket-depth:start -->", "<!-- pocket-depth:end -->"


def motorcycle_top5(depth_model, clip_vision, names: list[str], text: torch.Tensor) -> dict:
    """The real Middlebury motorcycle (scikit-image): top-5 classes of its disparity through the depth
    encoder, and of its RGB through the CLIP image tower (what the teacher would say)."""
    import encoders
    import skimage.data

    left, _, disparity = skimage.data.stereo_motorcycle()  # unknown pixels are inf
    out = {"unknown_fraction": float(np.isinf(disparity).mean()),
           "disparity_range": [float(disparity[np.isfinite(disparity)].min()), float(disparity[np.isfinite(disparity)].max())]}
    for key, emb in (("depth", encoders.embed_depth(disparity, model=depth_model)),
                     ("rgb", encoders.embed_image(left, model=clip_vision))):
        sim = (F.normalize(emb.float(), dim=-1) @ text.T)[0]
        top = sim.topk(5)
        out[key] = [[names[i], float(v)] for v, i in zip(top.values.tolist(), top.indices.tolist())]
    return out


def plot_motorcycle(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import skimage.data

    left, _, disparity = skimage.data.stereo_motorcycle()
    d = np.where(np.isfinite(disparity), disparity, 0)
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.2), gridspec_kw={"width_ratios": [1.5, 1.5, 1, 1]})
    axes[0].imshow(left), axes[0].set_title("RGB (left view)")
    axes[1].imshow(d, cmap="gray"), axes[1].set_title("disparity (unknown = 0)")
    for ax in axes[:2]:
        ax.axis("off")
    for ax, key, title in ((axes[2], "depth", "depth encoder (disparity only)"), (axes[3], "rgb", "pocket CLIP on the RGB")):
        labels = [n for n, _ in result[key]][::-1]
        ax.barh(labels, [v for _, v in result[key]][::-1], color="C0" if key == "depth" else "C1")
        ax.set_title(f"{title}: top-5", fontsize=9), ax.set_xlabel("cosine to class prompts")
    fig.suptitle("Middlebury motorcycle (not a pocket class: nearest pocket classes)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_examples(held: HeldOutCrops, pred: list[str], path: Path, n: int = 12) -> None:
    """RGB crop / disparity crop / prediction for the first n held-out test crops."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    n = min(n, len(held.labels))
    fig, axes = plt.subplots(2, n, figsize=(1.3 * n, 3.1))
    for i in range(n):
        with Image.open(held.images[i]) as im:
            axes[0, i].imshow(im.convert("RGB"))
        axes[1, i].imshow(held.x[i, 0].numpy(), cmap="gray")
        ok = pred[i] == held.labels[i]
        axes[0, i].set_title(held.labels[i], fontsize=7)
        axes[1, i].set_title(pred[i], fontsize=7, color="green" if ok else "red")
        axes[0, i].axis("off"), axes[1, i].axis("off")
    fig.suptitle("held-out test scene crops: RGB (true class) / disparity (depth encoder's zero-shot class)", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_depth_stage(data: Path, out: Path, recipe: DepthRecipe, work: Path | None = None, progress: bool = True,
                    log: Callable[[str], None] = print) -> dict:
    """Train, ship, evaluate (public path) and document the pocket depth encoder."""
    import copy
    import os

    import encoders

    from .audio_encoder import DEFAULT_WEIGHTS, FIGURES, _sha, export_modality, plot_confusion, write_card_section
    from .evaluate import zero_shot
    from .prompts import CLASS_NAMES, class_text_embeddings

    recipe.validate()
    data, out = Path(data), Path(out).expanduser().resolve()
    register = out == DEFAULT_WEIGHTS.resolve()
    figures = FIGURES if register else out / "figures"
    work = Path(work) if work else REPO / "runs" / "pocket_depth"
    recipe = copy.deepcopy(recipe)
    recipe.teacher = "rebind:pocket" if register else f"rebind:{out}"
    names = list(CLASS_NAMES)
    t0 = time.time()
    text = class_text_embeddings(names, model=encoders.create(str(out), modalities=("text",)))
    val_pairs = write_crops(data, work, "val", recipe, progress)
    test_pairs = write_crops(data, work, "test", recipe, progress)
    run = train_depth(data, work, recipe, text, names, val_pairs, "depth", progress, log)
    entry = depth_modality_config(recipe)
    weights = export_modality(run.trainer.student, "depth", entry, out, recipe.save_dtype)
    depth_model = encoders.create(str(out), modalities=("depth",))
    clip_vision = encoders.create(str(out), modalities=("vision",))
    result: dict[str, Any] = {"classes": names, "chance_top1": 1 / len(names), "chance_top5": 5 / len(names)}
    for split, pairs in (("val", val_pairs), ("test", test_pairs)):
        held = load_heldout(pairs, recipe)
        emb = encoders.embed_depth([str(pairs.parent / Path(p).name) for p in _depth_paths(pairs)], model=depth_model)
        zs = zero_shot(F.normalize(emb.float(), dim=-1), held.labels, names, text)
        rgb = encoders.embed_image(held.images, model=clip_vision)
        ref = zero_shot(F.normalize(rgb.float(), dim=-1), held.labels, names, text)
        result[split] = {"depth_zero_shot": zs, "rgb_zero_shot": {k: ref[k] for k in ("n", "top1", "top5")},
                         "scenes": len({k.split("#")[0] for k in held.keys})}
        if split == "test":
            plot_confusion(zs, names, figures / "depth_confusion.png",
                           f"pocket depth encoder, emergent zero-shot on {zs['n']} crops of held-out scenes: "
                           f"top-1 {zs['top1']:.1%} (chance {1 / len(names):.1%})")
            plot_examples(held, zs["pred"], figures / "depth_examples.png")
    result["motorcycle"] = motorcycle_top5(depth_model, clip_vision, names, text)
    plot_motorcycle(result["motorcycle"], figures / "depth_motorcycle.png")
    minutes = (time.time() - t0) / 60
    with open(out / "depth_metrics.csv", "w", newline="") as f:
        keys = ["step", "loss", "acc", "lr", "grad_norm", "samples_per_s", "val_text_top1", "val_text_top5"]
        w = csv.DictWriter(f, keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(run.history)
        w.writerows(run.curves)
    record = {
        "stage": "depth", "recipe": {k: v for k, v in vars(recipe).items()}, "encoder_config": entry,
        "data": {"dir": str(data), **{f"{m}.sha256": _sha(data / "manifests" / m)
                                      for m in ("scenes_train.jsonl", "scenes_val.jsonl", "scenes_test.jsonl")}},
        "teacher": {"clip_vision.sha256": _sha(out / "vision.safetensors")},
        "environment": {"torch": torch.__version__, "threads": recipe.threads},
        "run": {"stage_minutes": minutes, "train_minutes": run.seconds / 60,
                "params": sum(p.numel() for p in run.trainer.student.parameters()),
                "size_mb": weights.stat().st_size / 1e6, "train_pairs": len(run.trainer.dataset)},
        "results": result,
    }
    (out / "depth_recipe.json").write_text(json.dumps(record, indent=1) + "\n")
    write_card_section(out / "MODEL_CARD.md", CARD_START, CARD_END,
                       model_card_section(record, os.path.relpath(figures, out)))
    log(f"depth: test zero-shot top-1 {result['test']['depth_zero_shot']['top1']:.3f} "
        f"(rgb {result['test']['rgb_zero_shot']['top1']:.3f}); motorcycle {result['motorcycle']['depth']}")
    return record


def _depth_paths(pairs: Path) -> list[str]:
    with open(pairs, newline="") as f:
        return [r["depth"] for r in csv.DictReader(f)]


def model_card_section(record: dict, figures_rel: str) -> str:
    r, res, run = record["recipe"], record["results"], record["run"]
    t, v = res["test"], res["val"]
    moto = res["motorcycle"]
    return f"""{CARD_START}
## pocket depth encoder (emergent: trained against the RGB of the same scene, classified through text)

`python -m pretrain.pocket train --data DIR --stages depth` (recipe: `pretrain/pocket/depth_encoder.py`;
this run: `depth_recipe.json`, `depth_metrics.csv`).

- **Model:** `encoders/convnet.py` ConvNet, channels {r['channels']}, strides {r['strides']}, FC {r['fc']} -> 256-d
  `pocket` space; {run['params'] / 1e6:.2f}M parameters, {run['size_mb']:.2f} MB ({r['save_dtype']}). Input: a disparity
  map (pixels; `encoders.embed_depth`, unknown = NaN/inf -> 0), clamped at {r['max_disparity']}, divided by it,
  short side resized to {r['size']} and centre-cropped, standardised (mean {r['depth_mean']}, std {r['depth_std']}).
- **Data:** synthetic RGB-D composites of the pocket data (cut-outs and emoji pasted at known distances on
  photo / texture backgrounds, exact disparity from the pinhole camera). Around each object at least
  {r['min_visible']:.0%} visible and {r['min_box']} px large, the same square (side {r['crop_margin']} x the box) is cut from
  the disparity (student) and the RGB (teacher): {run['train_pairs']} train pairs from 2000 train scenes.
  Held-out scenes use only held-out pictures.
- **Training (no text, no labels):** rebind `pretrain`, explicit pairs, symmetric InfoNCE at temperature
  {r['temperature']} against the frozen pocket CLIP image embedding of the paired RGB crop (cached, exact);
  disparity-scale jitter x[{r['disparity_scale'][0]}, {r['disparity_scale'][1]}] (log-uniform) so absolute disparity does not matter;
  AdamW lr {r['lr']}, wd {r['weight_decay']}, {r['warmup_steps']} warmup steps then cosine, batch {r['batch_size']},
  {r['steps']} steps, {r['threads']} CPU threads; {run['train_minutes']:.1f} min of training, {run['stage_minutes']:.1f} min for the
  whole stage (crops, teacher cache, training, evaluation).

### Held-out figures (through `encoders.embed_depth` on the shipped float16 file)

All {len(res['classes'])} pocket classes are candidates (chance top-1 {res['chance_top1']:.1%}, top-5 {res['chance_top5']:.1%}).

| split | crops (scenes) | depth zero-shot top-1 | top-5 | reference: pocket CLIP on the RGB crops, top-1 | top-5 |
|---|---|---|---|---|---|
| val | {v['depth_zero_shot']['n']} ({v['scenes']}) | {v['depth_zero_shot']['top1']:.1%} | {v['depth_zero_shot']['top5']:.1%} | {v['rgb_zero_shot']['top1']:.1%} | {v['rgb_zero_shot']['top5']:.1%} |
| test | {t['depth_zero_shot']['n']} ({t['scenes']}) | **{t['depth_zero_shot']['top1']:.1%}** | **{t['depth_zero_shot']['top5']:.1%}** | {t['rgb_zero_shot']['top1']:.1%} | {t['rgb_zero_shot']['top5']:.1%} |

**Real depth, qualitative:** `skimage.data.stereo_motorcycle()` ground-truth disparity (Middlebury,
{moto['unknown_fraction']:.1%} unknown pixels, {moto['disparity_range'][0]:.0f}-{moto['disparity_range'][1]:.0f} px). "motorcycle" is not a pocket class;
nearest classes from the disparity alone: {', '.join(f'{n} ({s:.2f})' for n, s in moto['depth'])};
the pocket CLIP on the RGB says: {', '.join(f'{n} ({s:.2f})' for n, s in moto['rgb'])}.

![confusion]({figures_rel}/depth_confusion.png)
![examples]({figures_rel}/depth_examples.png)
![motorcycle]({figures_rel}/depth_motorcycle.png)

### Known weaknesses
- Synthetic depth: pasted objects are flat (one disparity each), so the encoder reads silhouettes; it has
  never seen the continuous depth of real objects or sensor noise. The motorcycle result is qualitative.
- The teacher is the pocket CLIP: the depth encoder can at best reach the CLIP's own accuracy on the RGB crops.
{CARD_END}"""
