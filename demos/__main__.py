"""``python -m demos``: the mission end to end on the bundled examples, offline.

1. embed a bundled sound (the dog, by default) in CLIP space;
2. detect what sounds like it in a bundled scene at score threshold 0.9 -> overlay PNG + JSON;
3. paint images from the same sound with the unCLIP model -> PNGs;
then print a summary with the output paths (``--out``, default ``./rebind-demo/``).

With no model flags it runs the embedded default (pocket) models; the same flags as
``python -m demos.app`` select others (``--encoder/--checkpoint``, ``--detector``, ``--unclip``, ...).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from . import offline_environment
from .bundled import example_scene, example_scenes, example_sound, example_sounds
from .models import DemoModels, ModelsNotInstalled, add_model_arguments

DEFAULT_OUT = "rebind-demo"
DEFAULT_STEPS = 20


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m demos",
        description="Run rebind end to end on the bundled examples: sound -> boxes at 0.9, sound -> images.")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default ./{DEFAULT_OUT}/)")
    parser.add_argument("--sound", default="dog", choices=sorted(example_sounds()), help="bundled sound (default dog)")
    parser.add_argument("--scene", default="scene_dog_drums", choices=sorted(example_scenes()),
                        help="bundled scene to search (default scene_dog_drums)")
    parser.add_argument("--threshold", type=float, default=0.9, help="detection score threshold (default 0.9)")
    parser.add_argument("--images", type=int, default=2, help="images to paint (default 2)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"denoising steps (default {DEFAULT_STEPS})")
    parser.add_argument("--seed", type=int, default=0, help="seed for the images (default 0)")
    add_model_arguments(parser)
    return parser


def run(models: DemoModels, out: Path, sound: str = "dog", scene: str = "scene_dog_drums",
        threshold: float = 0.9, images: int = 2, steps: int | None = DEFAULT_STEPS, seed: int = 0,
        say=print) -> dict:
    """The three steps; returns the summary (also written to ``out/summary.json``)."""
    import adapters

    from .detect import best_box, detect_sounds, overlay_record, summary_line, write_overlay
    from .generate import images_from_sound
    from .inputs import check_image, check_sound

    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    sound_path, scene_path = Path(example_sound(sound)), Path(example_scene(scene))
    checked = check_sound(sound_path)

    started = time.perf_counter()
    encoder = models.encoder("audio")
    embedding = adapters.embed(str(sound_path), "audio", encoder, labels=[checked.name])
    timings["embed"] = time.perf_counter() - started
    say(f"1/3 embedded {sound_path.name} ({checked.seconds:.1f} s) -> {embedding.space} "
        f"in {timings['embed']:.1f} s (loading included)")

    started = time.perf_counter()
    found = detect_sounds(models, [checked], [scene_path], threshold)[0]
    overlay_path = out / f"overlay_{scene_path.stem}.png"
    overlay_png, overlay_json = write_overlay(found, check_image(scene_path), overlay_path,
                                              overlay_record(found, scene_path, threshold, [checked], overlay_path))
    best = best_box(models, [checked], scene_path) if len(found) == 0 else None
    timings["detect"] = time.perf_counter() - started
    say(f"2/3 {summary_line(scene_path, found, threshold, overlay_png, best)} in {timings['detect']:.1f} s")

    started = time.perf_counter()
    pictures = images_from_sound(models, checked, seed=seed, steps=steps, num_images=images)
    image_paths = []
    for i, picture in enumerate(pictures, start=1):
        path = out / f"painted_{checked.name}_{i}.png"
        picture.save(path)
        image_paths.append(path)
    timings["generate"] = time.perf_counter() - started
    size = f"{pictures[0].width}x{pictures[0].height}" if pictures else "-"
    say(f"3/3 painted {len(pictures)} {size} image{'s' if len(pictures) != 1 else ''} from {sound_path.name} "
        f"({steps} steps, seed {seed}) in {timings['generate']:.1f} s")

    summary = {
        "models": models.describe(), "space": embedding.space.name, "sound": str(sound_path), "scene": str(scene_path),
        "threshold": threshold, "detections": found.to_dict()["detections"],
        "overlay": str(overlay_png), "overlay_json": str(overlay_json), "images": [str(p) for p in image_paths],
        "seconds": {k: round(v, 2) for k, v in timings.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: Sequence[str] | None = None, models: DemoModels | None = None) -> int:
    offline_environment()
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        models = models or DemoModels.from_args(args)
        models.check_installed()
        summary = run(models, Path(args.out).expanduser(), args.sound, args.scene, args.threshold, args.images,
                      args.steps, args.seed)
    except ModelsNotInstalled as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    print(f"\nDone in {time.perf_counter() - started:.1f} s. Models: "
          + "; ".join(f"{k} {v}" for k, v in summary["models"].items()))
    print(f"  overlay: {summary['overlay']}  (detections: {summary['overlay_json']})")
    print(f"  images:  {', '.join(summary['images'])}")
    print(f"  summary: {out / 'summary.json'}")
    print("Next: python -m demos.app  (the Gradio app),  python -m demos.detect --help  (your own files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
