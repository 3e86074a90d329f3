"""`python -m pretrain.pocket train`: train the pocket models, stage by stage.

    python -m pretrain.pocket train --data /work/data/pocket --stages clip

STAGES maps a stage name to how it runs. Stages run in registry order (a later stage may need
what an earlier one wrote: the audio encoder trains against the frozen CLIP image tower), each
writing into the same ``--out`` folder (default ``encoders/weights/pocket``, the folder the
``pocket`` encoder config loads). Later stages (audio, depth, detector, unclip) add themselves with
``register_stage`` without touching the others.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class Stage:
    name: str
    help: str
    run: Callable[[argparse.Namespace, Path, Path], dict]  # (args, data dir, out dir) -> record
    needs: tuple[str, ...] = ()  # stages whose outputs must exist in --out first


STAGES: dict[str, Stage] = {}
# the folder the ``pocket`` encoder config loads its weights from
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "encoders" / "weights" / "pocket"


def warmup_cosine(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Learning-rate multiplier of every pocket recipe: linear warmup, then cosine down to ``min_ratio``."""
    import math  # noqa: PLC0415

    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def register_stage(stage: Stage) -> Stage:
    if stage.name in STAGES:
        raise ValueError(f"pocket train stage {stage.name!r} is already registered")
    STAGES[stage.name] = stage
    return stage


def _saved_recipe(args: argparse.Namespace, stage: str) -> dict | None:
    """The ``recipe`` of a saved record (``--recipe``) when it belongs to ``stage``."""
    if not args.recipe:
        return None
    record = json.loads(Path(args.recipe).read_text())
    return record.get("recipe", {}) if record.get("stage", stage) == stage else None


def _common(recipe, args: argparse.Namespace, steps_fields=("steps",)):
    """--seed / --steps / --threads overrides, the same for every stage."""
    if args.seed is not None:
        recipe.seed = args.seed
        if hasattr(recipe, "seeds"):
            recipe.seeds = [args.seed]
    if args.steps is not None:
        for name in steps_fields:
            owner, _, attr = name.rpartition(".")
            target = getattr(recipe, owner) if owner else recipe
            setattr(target, attr, args.steps)
            if hasattr(target, "warmup_steps"):
                target.warmup_steps = min(target.warmup_steps, max(1, args.steps // 10))
        if hasattr(recipe, "eval_every"):
            recipe.eval_every = min(recipe.eval_every, args.steps)
    if args.threads is not None:
        recipe.threads = args.threads
    return recipe


def _work_folder(out: Path, stage: str) -> Path:
    """Caches and run folders (not shipped): runs/pocket_<stage> for the shipped models, else beside --out."""
    if out.resolve() == DEFAULT_OUT.resolve():
        return DEFAULT_OUT.parents[2] / "runs" / f"pocket_{stage}"
    return out.parent / f".{out.name}_work" / stage


def _adapter_folder(out: Path, name: str) -> Path:
    """Detector and unCLIP live under adapters/weights/ for the shipped models; beside a custom --out."""
    if out.resolve() == DEFAULT_OUT.resolve():
        return DEFAULT_OUT.parents[2] / "adapters" / "weights" / f"pocket_{name}"
    return out / name


def _run_clip(args: argparse.Namespace, data: Path, out: Path) -> dict:
    from .clip import ClipRecipe, run_clip_stage  # noqa: PLC0415

    saved = _saved_recipe(args, "clip")
    recipe = _common(ClipRecipe.from_dict(saved) if saved is not None else ClipRecipe(), args)
    return run_clip_stage(data, out, recipe, progress=not args.quiet)


def _run_audio(args: argparse.Namespace, data: Path, out: Path) -> dict:
    from .audio_encoder import AudioRecipe, run_audio_stage  # noqa: PLC0415

    saved = _saved_recipe(args, "audio")
    recipe = _common(AudioRecipe.from_dict(saved) if saved is not None else AudioRecipe(), args)
    if args.steps is not None and recipe.ssl_steps:  # a smoke run shortens the SSL start too
        recipe.ssl_steps = args.steps
    return run_audio_stage(data, out, recipe, work=_work_folder(out, "audio"),
                           progress=not args.quiet)


def _run_depth(args: argparse.Namespace, data: Path, out: Path) -> dict:
    from .depth_encoder import DepthRecipe, run_depth_stage  # noqa: PLC0415

    saved = _saved_recipe(args, "depth")
    recipe = _common(DepthRecipe.from_dict(saved) if saved is not None else DepthRecipe(), args)
    return run_depth_stage(data, out, recipe, work=_work_folder(out, "depth"),
                           progress=not args.quiet)


def _run_detector(args: argparse.Namespace, data: Path, out: Path) -> dict:
    from .detector import FIGURES, DetectorRecipe, run_detector_stage  # noqa: PLC0415

    saved = _saved_recipe(args, "detector")
    recipe = _common(DetectorRecipe.from_dict(saved) if saved is not None else DetectorRecipe(), args)
    folder = _adapter_folder(out, "detector")
    figures = FIGURES if out.resolve() == DEFAULT_OUT.resolve() else folder / "figures"
    return run_detector_stage(data, folder, recipe, clip=str(out), figures=figures, progress=not args.quiet)


def _run_unclip(args: argparse.Namespace, data: Path, out: Path) -> dict:
    import encoders  # noqa: PLC0415

    from .unclip import UnclipRecipe, run_unclip_stage  # noqa: PLC0415

    saved = _saved_recipe(args, "unclip")
    recipe = _common(UnclipRecipe.from_dict(saved) if saved is not None else UnclipRecipe(), args,
                     steps_fields=("vae.steps", "unet.steps"))
    try:
        audio = encoders.create(str(out), modalities=("audio",))
    except (KeyError, ValueError, FileNotFoundError):  # no audio stage yet: image and text only
        audio = None
    return run_unclip_stage(data, _adapter_folder(out, "unclip"), recipe, clip=str(out), audio_encoder=audio,
                            progress=not args.quiet)


register_stage(Stage("clip", "the pocket CLIP (image + text towers); every later stage uses it", _run_clip))
register_stage(Stage("audio", "the audio encoder, trained against the frozen CLIP image tower (never text)",
                     _run_audio, needs=("clip",)))
register_stage(Stage("depth", "the depth encoder, trained on RGB-D scene crops against the CLIP image tower",
                     _run_depth, needs=("clip",)))
register_stage(Stage("detector", "the Detic-style detector, classifying with CLIP text embeddings",
                     _run_detector, needs=("clip",)))
register_stage(Stage("unclip", "the small unCLIP (VAE + UNet) conditioned on CLIP image embeddings",
                     _run_unclip, needs=("clip",)))


def parse_stages(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()] if text else list(STAGES)
    unknown = [n for n in names if n not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; known: {', '.join(STAGES)}")
    return [n for n in STAGES if n in names]  # registry order


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="pocket data directory (python -m pretrain.pocket data)")
    p.add_argument("--stages", default="", help=f"comma-separated stages (default: all of {', '.join(STAGES)})")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help=f"weights folder (default {DEFAULT_OUT}: also updates encoders/configs/pocket.json)")
    p.add_argument("--seed", type=int, default=None, help="override the recipes' seed")
    p.add_argument("--steps", type=int, default=None, help="override every stage's steps (short smoke runs)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (recipe default 2)")
    p.add_argument("--recipe", type=Path, default=None,
                   help="re-run a saved recipe (e.g. encoders/weights/pocket/clip_recipe.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import sys  # noqa: PLC0415

    try:
        stages = parse_stages(args.stages)
    except ValueError as err:
        print(f"error: --stages: {err}", file=sys.stderr)
        return 2
    if args.steps is not None and args.steps < 1:
        print("error: --steps must be >= 1", file=sys.stderr)
        return 2
    from .clip import check_data_dir  # noqa: PLC0415
    try:
        data = check_data_dir(args.data)
    except FileNotFoundError as err:
        print(f"error: --data: {err}", file=sys.stderr)
        return 2
    for name in stages:  # a later stage alone reuses what the earlier ones left in --out
        missing = [n for n in STAGES[name].needs if n not in stages and not (args.out / "vision.safetensors").exists()]
        if missing:
            print(f"error: --stages {name} needs the {', '.join(missing)} stage's weights in {args.out}; "
                  f"run --stages {','.join(missing + [name])}", file=sys.stderr)
            return 2
    for name in stages:
        STAGES[name].run(args, data, args.out)
    return 0
