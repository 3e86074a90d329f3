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


def register_stage(stage: Stage) -> Stage:
    if stage.name in STAGES:
        raise ValueError(f"pocket train stage {stage.name!r} is already registered")
    STAGES[stage.name] = stage
    return stage


def _run_clip(args: argparse.Namespace, data: Path, out: Path) -> dict:
    from .clip import ClipRecipe, run_clip_stage  # noqa: PLC0415

    recipe = ClipRecipe()
    if args.recipe:
        recipe = ClipRecipe.from_dict(json.loads(Path(args.recipe).read_text()).get("recipe", {}))
    if args.seed is not None:
        recipe.seed = args.seed
    if args.steps is not None:
        recipe.steps = args.steps
        recipe.warmup_steps = min(recipe.warmup_steps, max(1, args.steps // 10))
        recipe.eval_every = min(recipe.eval_every, args.steps)
    if args.threads is not None:
        recipe.threads = args.threads
    return run_clip_stage(data, out, recipe, progress=not args.quiet)


register_stage(Stage("clip", "the pocket CLIP (image + text towers); every later stage uses it", _run_clip))


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
    p.add_argument("--steps", type=int, default=None, help="override the steps (short smoke runs)")
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
    for name in stages:
        STAGES[name].run(args, data, args.out)
    return 0
