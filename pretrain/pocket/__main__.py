"""`python -m pretrain.pocket <step>`: the pocket world's command line.

Steps register in STEPS (name -> (add_arguments, run)); `data` builds the data set. Later steps
(e.g. `train`) add themselves the same way without touching the others.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _add_data_arguments(p: argparse.ArgumentParser) -> None:
    from .sources import DEFAULT_CACHE  # light import
    p.add_argument("--out", type=Path, required=True, help="data directory to (re)build")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                   help=f"downloads and unpacked packages (default {DEFAULT_CACHE})")
    p.add_argument("--categories", default="",
                   help="comma-separated subset of categories (default: all)")
    p.add_argument("--scenes", type=int, default=2000,
                   help="training scenes; val and test get a tenth each (default 2000, 0 = none)")
    p.add_argument("--seed", type=int, default=0, help="seed for splits and scenes")


def _run_data(args: argparse.Namespace) -> int:
    from .categories import select
    from .data import build
    from .sources import SourceError
    try:
        categories = select([c.strip() for c in args.categories.split(",") if c.strip()])
    except ValueError as err:
        print(f"error: --categories: {err}", file=sys.stderr)
        return 2
    if args.scenes < 0:
        print("error: --scenes must be >= 0", file=sys.stderr)
        return 2
    try:
        table = build(args.out, args.cache, categories, args.scenes, args.seed)
    except SourceError as err:  # a download, pin or missing library: the message says the fix
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(table)
    print(f"\nwrote {args.out} (README.md, ATTRIBUTION.md, manifests/)")
    return 0


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    from .train import add_arguments
    add_arguments(p)


def _run_train(args: argparse.Namespace) -> int:
    from .train import run
    return run(args)


def _add_detector_eval_arguments(p: argparse.ArgumentParser) -> None:
    from .detector_eval import add_arguments
    add_arguments(p)


def _run_detector_eval(args: argparse.Namespace) -> int:
    from .detector_eval import run
    return run(args)


STEPS = {
    "data": ("download pinned packages and build clips, images, scenes and manifests",
             _add_data_arguments, _run_data),
    "train": ("train the pocket models (stages: clip, ...) into encoders/weights/pocket",
              _add_train_arguments, _run_train),
    "detector-eval": ("AP of the pocket detector on held-out scenes, prompted with text, image and "
                      "audio embeddings; overlays at threshold 0.9", _add_detector_eval_arguments,
                      _run_detector_eval),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pretrain.pocket", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    for name, (help_text, add_arguments, _) in STEPS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    return STEPS[args.step][2](args)


if __name__ == "__main__":
    sys.exit(main())
