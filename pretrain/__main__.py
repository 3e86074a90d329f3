"""Command line of rebind's pretrain package.

    python -m pretrain train --config run.yaml [--resume] [--set optim.lr=1e-3 ...]
    torchrun --standalone --nproc_per_node 8 -m pretrain train --config run.yaml
    python -m pretrain cache-teacher --config run.yaml --views 4
    python -m pretrain eval --encoder runs/a/encoder --manifest esc50.csv --root audio/ --config run.yaml
    python -m pretrain eval --encoder imagebind_huge --checkpoint imagebind_huge.pth --text-encoder same \\
        --manifest ESC-50/meta/esc50.csv --root ESC-50/audio --probe-fold 1
    python -m pretrain bridge --source-model ViT-H-14 --source-pretrained vit_h.bin --source-space openclip-vit-h-14 \\
        --target-model ViT-B-32 --target-pretrained vit_b32.bin --target-space openai-vit-b-32 \\
        --images coco_val/ --out h14_to_b32.safetensors
    python -m pretrain write-shards --manifest train.csv --root data/ --out shards/ --maxcount 1000
    python -m pretrain plot runs/a
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (main() may run inside a captured session)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _setup_logging() -> None:
    rank = int(os.environ.get("RANK", "0"))
    handler = _Stderr()
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s [%(name)s{'' if rank == 0 else f' rank {rank}'}] %(message)s", datefmt="%H:%M:%S"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, handlers=[handler], force=True)
    # open_clip logs every step of model creation on the root logger at INFO: keep the root at
    # WARNING and let rebind's own loggers speak
    logging.getLogger().setLevel(logging.WARNING)
    for name in ("pretrain", "encoders"):
        logging.getLogger(name).setLevel(logging.INFO if rank == 0 else logging.WARNING)


def _tower_args(p: argparse.ArgumentParser, prefix: str, what: str) -> None:
    g = p.add_argument_group(f"{prefix} tower ({what})")
    g.add_argument(f"--{prefix}-model", help="open_clip model name or local-dir:/folder")
    g.add_argument(f"--{prefix}-pretrained", help="open_clip pretrained tag or weights file")
    g.add_argument(f"--{prefix}-config", help="JSON file with an inline open_clip model config")
    g.add_argument(f"--{prefix}-space", help="CLIP space name (registered, or new for this tower)")
    g.add_argument(f"--{prefix}-encoder", help="instead: a rebind encoder (name or folder) with this modality")
    g.add_argument(f"--{prefix}-checkpoint", help="checkpoint for --%s-encoder" % prefix)


def _tower(args, prefix: str):
    get = lambda k: getattr(args, f"{prefix}_{k}")  # noqa: E731
    if get("encoder"):
        return get("encoder"), get("checkpoint")
    if not (get("model") or get("config")):
        return None, None
    spec = {"model": get("model"), "pretrained": get("pretrained"), "space": get("space")}
    if get("config"):
        spec = {"config": json.loads(open(get("config")).read()), "pretrained": get("pretrained"),
                "space": get("space")}
    return spec, None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pretrain", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train a modality encoder against a frozen CLIP image tower")
    t.add_argument("--config", required=True, help="run config (YAML)")
    t.add_argument("--resume", action="store_true", help="continue from <out_dir>/checkpoints/last.pt")
    t.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config values")
    t.add_argument("--on-bad-file", choices=["skip", "fail"], help="override data.on_bad_file")
    t.add_argument("--check", action="store_true", help="validate the config and exit")

    c = sub.add_parser("cache-teacher", help="precompute teacher image embeddings (resumable)")
    c.add_argument("--config", required=True)
    c.add_argument("--out", help="cache folder (default: teacher.cache of the config)")
    c.add_argument("--views", type=int, default=1, help="embeddings per image: the center crop + views-1 crops")
    c.add_argument("--batch-size", type=int, default=64)
    c.add_argument("--chunk", type=int, default=512, help="images per resumable chunk")
    c.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    c.add_argument("--device", default="auto")
    c.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")

    e = sub.add_parser("eval", help="zero-shot, retrieval and few-shot evaluation with chance levels")
    e.add_argument("--encoder", required=True, help="saved encoder folder, or a config name with --checkpoint")
    e.add_argument("--checkpoint")
    e.add_argument("--modality", default="audio")
    e.add_argument("--manifest", required=True, help="labelled manifest (.csv/.jsonl); ESC-50's csv works as is")
    e.add_argument("--root", help="folder the manifest's paths resolve from")
    e.add_argument("--config", help="take the teacher (text + image towers) from this run config")
    e.add_argument("--text-encoder", help="text side from a rebind encoder's text modality ('same': --encoder's)")
    e.add_argument("--text-checkpoint")
    e.add_argument("--prompts", nargs="*", help="prompt templates with {} for the class name")
    e.add_argument("--path-column")
    e.add_argument("--label-column")
    e.add_argument("--caption-column")
    e.add_argument("--images", help="image manifest (image,label) for modality<->image retrieval")
    e.add_argument("--shots", type=int, nargs="*", default=[1, 2, 4, 8])
    e.add_argument("--probe-fold", help="few-shot test fold (column 'fold'); default: stratified halves")
    e.add_argument("--bridge", help="a bridge file mapping the encoder's space into the text side's")
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--on-bad-file", choices=["skip", "fail"], default="skip")
    e.add_argument("--out", help="write the report as JSON")
    _tower_args(e, "teacher", "text/image side, instead of --config")

    b = sub.add_parser("bridge", help="fit a linear map between two CLIP image spaces on images")
    _tower_args(b, "source", "the space embeddings come from")
    _tower_args(b, "target", "the space they go to")
    b.add_argument("--images", required=True, help="a folder of images or an image manifest")
    b.add_argument("--method", choices=["procrustes", "ridge"], default="procrustes",
                   help="procrustes keeps angles and carries other modalities best; ridge fits images closest")
    b.add_argument("--alpha", type=float, help="ridge penalty (default: chosen on held-out images)")
    b.add_argument("--out", required=True, help="bridge file (.safetensors)")
    b.add_argument("--eval-manifest", help="labelled manifest to measure zero-shot before/after")
    b.add_argument("--eval-root")
    b.add_argument("--encoder", help="encoder (in the source space) for the evaluation")
    b.add_argument("--checkpoint")
    b.add_argument("--modality", default="audio")

    w = sub.add_parser("write-shards", help="write webdataset tar shards from a manifest")
    w.add_argument("--manifest", required=True)
    w.add_argument("--out", required=True)
    w.add_argument("--root")
    w.add_argument("--modality", default="audio")
    w.add_argument("--path-column")
    w.add_argument("--label-column")
    w.add_argument("--image-column", default="image")
    w.add_argument("--maxcount", type=int, default=1000)
    w.add_argument("--prefix", default="train")
    w.add_argument("--on-bad-file", choices=["skip", "fail"], default="skip")

    pl = sub.add_parser("plot", help="(re)draw <run>/metrics.png from <run>/metrics.csv")
    pl.add_argument("run")

    args = p.parse_args(argv)
    _setup_logging()
    from encoders.config import ConfigError

    from .data import DataError

    try:
        return _run(args)
    except (ConfigError, DataError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _run(args) -> int:
    import pretrain

    if args.cmd == "train":
        overrides = list(args.set)
        if args.on_bad_file:
            overrides.append(f"data.on_bad_file={args.on_bad_file}")
        if args.check:
            cfg = pretrain.load_config(args.config, overrides)
            print(f"config OK: out_dir={cfg.path(cfg.out_dir)}")
            return 0
        result = pretrain.train(args.config, resume=args.resume, overrides=overrides)
        if result.encoder_dir is not None:
            print(f"step {result.step}/{result.total_steps}  loss {result.loss}  encoder: {result.encoder_dir}  "
                  f"metrics: {result.metrics_csv}")
        return 128 + result.signal if result.interrupted else 0
    if args.cmd == "cache-teacher":
        cfg = pretrain.load_config(args.config, args.set)
        out = pretrain.cache_teacher(cfg, args.out, views=args.views, batch_size=args.batch_size, chunk=args.chunk,
                                     device=args.device, dtype=args.dtype)
        print(f"teacher cache: {out}")
        return 0
    if args.cmd == "eval":
        teacher, _ = _tower(args, "teacher")
        base_dir = None
        if args.config:
            cfg = pretrain.load_config(args.config, check_files=False)
            teacher, base_dir = cfg.teacher, cfg.base_dir
        report = pretrain.evaluate(
            args.encoder, args.manifest, args.root, modality=args.modality, checkpoint=args.checkpoint,
            teacher=teacher, text_encoder=args.text_encoder, text_checkpoint=args.text_checkpoint,
            prompts=args.prompts, path_column=args.path_column, label_column=args.label_column,
            caption_column=args.caption_column, images=args.images, shots=args.shots, probe_fold=args.probe_fold,
            bridge=args.bridge, batch_size=args.batch_size, on_bad_file=args.on_bad_file, base_dir=base_dir)
        print(report.table())
        if args.out:
            report.save(args.out)
        return 0
    if args.cmd == "bridge":
        source, source_ckpt = _tower(args, "source")
        target, target_ckpt = _tower(args, "target")
        if source is None or target is None:
            print("error: give a source and a target tower (--source-model/--source-encoder, --target-...)",
                  file=sys.stderr)
            return 2
        bridge = pretrain.fit_bridge(source, target, args.images, method=args.method, alpha=args.alpha,
                                     source_checkpoint=source_ckpt, target_checkpoint=target_ckpt)
        bridge.save(args.out)
        print(f"bridge {bridge.source.name} -> {bridge.target.name} ({bridge.method}) saved to {args.out}: "
              f"{json.dumps(bridge.info.get('heldout', bridge.info.get('train')))}")
        if args.eval_manifest and args.encoder:
            report = pretrain.evaluate_bridge(
                bridge, args.encoder, args.eval_manifest, args.eval_root, modality=args.modality,
                checkpoint=args.checkpoint, source_text=source if source_ckpt is None else source,
                target_text=target, source_text_checkpoint=source_ckpt, target_text_checkpoint=target_ckpt)
            print(report.table())
        return 0
    if args.cmd == "write-shards":
        paths = pretrain.write_shards(args.manifest, args.out, args.modality, args.root, args.path_column,
                                      args.label_column, args.image_column, args.maxcount, args.prefix,
                                      args.on_bad_file)
        print(f"{len(paths)} shard(s) in {args.out}")
        return 0
    if args.cmd == "plot":
        from pathlib import Path

        from .train import plot_metrics

        run = Path(args.run)
        print(plot_metrics(run / "metrics.csv", run / "metrics.png"))
        return 0
    raise AssertionError(args.cmd)


if __name__ == "__main__":
    sys.exit(main())
