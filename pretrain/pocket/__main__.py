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


def _add_pool_arguments(p: argparse.ArgumentParser) -> None:
    from .sources import DEFAULT_CACHE  # light import
    p.add_argument("--data", type=Path, required=True, help="pocket data directory (python -m pretrain.pocket data)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                   help=f"downloads and unpacked packages (default {DEFAULT_CACHE})")
    p.add_argument("--seed", type=int, default=0, help="seed for which files a source keeps past its cap")


def _run_pool(args: argparse.Namespace) -> int:
    from .data import check_build_dependencies
    from .pool import PoolError, build_pool
    from .sources import SourceError, fetch_sources
    try:
        check_build_dependencies()
        fetched = fetch_sources(None, args.cache)
        log: list[str] = []
        rows = build_pool(args.data, fetched, seed=args.seed, log=log)
    except (SourceError, PoolError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n".join(line for line in log if line.startswith("pool: ") and "files no category" in line))
    hours = sum(float(r["duration"]) for r in rows) / 3600
    print(f"wrote {len(rows)} unlabelled clips ({hours:.2f} h) to {args.data}/audio_unlabelled")
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


def _add_unclip_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="pocket data directory (python -m pretrain.pocket data)")
    p.add_argument("--pipeline", type=Path, default=None,
                   help="saved pocket unCLIP folder (default: the shipped adapters/weights/pocket_unclip)")
    p.add_argument("--kinds", default="audio", help="comma-separated conditions: image, text, audio (default audio)")
    p.add_argument("--samples", type=int, default=None, help="images per condition (default: the recipe's)")
    p.add_argument("--split", default="test", choices=("val", "test"))
    p.add_argument("--no-update", action="store_true",
                   help="only print; by default a TEST run rewrites the folder's record, card and grids")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")


def _run_unclip_eval(args: argparse.Namespace) -> int:
    import json

    import torch

    from .unclip import evaluate_shipped
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    unknown = sorted(set(kinds) - {"image", "text", "audio"})
    if unknown or not kinds:
        print(f"error: --kinds {args.kinds!r}: expected a comma-separated subset of image, text, audio",
              file=sys.stderr)
        return 2
    if not (args.data / "manifests").is_dir():
        print(f"error: --data {args.data}: no manifests/ folder; build it with "
              f"'python -m pretrain.pocket data --out {args.data}'", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    summary = evaluate_shipped(args.data, args.pipeline, split=args.split, kinds=kinds, samples=args.samples,
                               update_record=not args.no_update)
    print(json.dumps({k: {f: v for f, v in s.items() if f != "per_class"} for k, s in summary.items()}, indent=1))
    return 0


STEPS = {
    "data": ("download pinned packages and build clips, images, scenes and manifests",
             _add_data_arguments, _run_data),
    "pool": ("add the unlabelled sound pool (sounds no category names, for self-supervised "
             "pretraining) to a data directory; 'data' builds it too", _add_pool_arguments, _run_pool),
    "train": ("train the pocket models (stages: clip, ...) into encoders/weights/pocket",
              _add_train_arguments, _run_train),
    "detector-eval": ("AP of the pocket detector on held-out scenes, prompted with text, image and "
                      "audio embeddings; overlays at threshold 0.9", _add_detector_eval_arguments,
                      _run_detector_eval),
    "unclip-eval": ("fraction of pocket unCLIP images the pocket CLIP assigns to the intended class, "
                    "conditioned on held-out sounds (and/or images, text); updates the card",
                    _add_unclip_eval_arguments, _run_unclip_eval),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pretrain.pocket", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    for name, (help_text, add_arguments, _) in STEPS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    try:
        return STEPS[args.step][2](args)
    except KeyboardInterrupt as err:  # Ctrl-C / SIGTERM: say where it stopped, no traceback
        print(f"stopped: {err}" if str(err) else "stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
