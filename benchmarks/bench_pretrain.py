"""Training-step throughput of rebind's pretrain, with and without the cached teacher, side by side.

    python benchmarks/bench_pretrain.py                              # CPU: tiny + pocket presets
    python benchmarks/bench_pretrain.py --preset vitb --device cuda  # ViT-B audio student, bf16, compiled

One process builds a real ``pretrain.Trainer`` on real files it writes (B clips, a few images) and
times ``Trainer.step`` on the same prepared global batch two ways: with images, so the frozen
teacher tower runs inside the step, and with the teacher's embeddings of those images, as the
teacher cache supplies them. The student, optimizer, fbank-on-device and loss are the production
code. FLOPs per sample come from ``torch.utils.flop_counter`` (student forward + backward; teacher
forward when it runs); MFU is reported against the GPU's dense bf16 peak (or ``--peak-tflops``).
The data pipeline (decode, augment, collate; ``--workers``) is timed separately.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "GH200": 989.4, "A100": 312.0, "L40S": 362.1, "A10": 125.0}

FBANK_1S = {"kind": "audio_fbank", "mel_bins": 64, "clip_seconds": 1.0, "target_frames": 100}
PRESETS = {
    # the test-size pair
    "tiny": {
        "student": {"arch": "vit", "width": 32, "layers": 2, "heads": 4, "drop_path": 0.0,
                    "stem": {"kind": "patch2d", "kernel": 16, "stride": 10, "input_size": [64, 100]},
                    "preprocess": FBANK_1S},
        "teacher": {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32,
                                                    "patch_size": 8},
                    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}},
        "batch": 64,
    },
    # what the pocket trainer runs on CPU: a ~1.2M-parameter ConvNet on 2 s clips, a small CLIP teacher
    "pocket": {
        "student": {"arch": "convnet", "channels": [32, 64, 128, 256], "strides": [1, 2, 2, 2], "fc": [256],
                    "preprocess": {"kind": "audio_fbank"}},
        "teacher": {"embed_dim": 256, "vision_cfg": {"image_size": 64, "layers": 4, "width": 128, "head_width": 32,
                                                     "patch_size": 8},
                    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 2, "layers": 2}},
        "batch": 64,
    },
    # the pocket student against a real-size teacher tower (ViT-B/32 at 224 px): where a cache pays
    "pocket-b32": {"student": "pocket", "teacher": "ViT-B-32", "batch": 16},
    # ImageBind's audio ViT-B against an OpenCLIP ViT-H/14 image tower (random weights: speed only)
    "vitb": {
        "student": {"arch": "vit", "width": 768, "layers": 12, "heads": 12, "drop_path": 0.1,
                    "stem": {"kind": "patch2d", "kernel": 16, "stride": 10, "input_size": [128, 204]},
                    "preprocess": {"kind": "audio_fbank"}},
        "teacher": "ViT-H-14",
        "batch": 256,
    },
    # the same student against the 512-d ViT-B/32 space Detic uses
    "vitb-b32": {"student": "vitb", "teacher": "ViT-B-32", "batch": 256},
}


def write_data(folder: Path, n: int, seconds: float, image_size: int) -> tuple[Path, Path]:
    import soundfile as sf
    from PIL import Image

    rng = np.random.default_rng(0)
    (folder / "audio").mkdir(parents=True)
    (folder / "images").mkdir()
    labels = ["a", "b", "c", "d"]
    rows = []
    for i in range(n):
        t = np.arange(int(seconds * 16000)) / 16000
        x = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 2000) * t) + 0.05 * rng.standard_normal(len(t))
        sf.write(folder / "audio" / f"{i}.wav", x.astype(np.float32), 16000)
        rows.append(f"audio/{i}.wav,{labels[i % 4]}")
    (folder / "train.csv").write_text("audio,label\n" + "\n".join(rows) + "\n")
    irows = []
    for j in range(8):
        arr = (rng.random((image_size, image_size, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / "images" / f"{j}.png")
        irows.append(f"images/{j}.png,{labels[j % 4]}")
    (folder / "images.csv").write_text("image,label\n" + "\n".join(irows) + "\n")
    return folder / "train.csv", folder / "images.csv"


def build(preset: str, args, folder: Path):
    import pretrain

    p = PRESETS[preset]
    student = p["student"] if isinstance(p["student"], dict) else PRESETS[p["student"]]["student"]
    student = dict(student)
    if args.drop_path is not None and student["arch"] == "vit":
        student["drop_path"] = args.drop_path
    teacher = p["teacher"]
    batch = args.batch or p["batch"]
    if isinstance(teacher, str):
        import open_clip

        dim = open_clip.get_model_config(teacher)["embed_dim"]
        size = open_clip.get_model_config(teacher)["vision_cfg"]["image_size"]
        tcfg = {"model": teacher, "space": f"bench-{teacher.lower()}"}
    else:
        dim, size = teacher["embed_dim"], teacher["vision_cfg"]["image_size"]
        tcfg = {"config": teacher, "space": f"bench-{preset}"}
    seconds = student["preprocess"].get("clip_seconds", 2.0) * 1.5
    train_csv, images_csv = write_data(folder, batch, seconds, size)
    cfg = {"out_dir": str(folder / "run"), "student": {"model": {"space": "test-32", "modalities": {"audio": student}}},
           "teacher": tcfg, "data": {"train": str(train_csv), "images": str(images_csv), "preload": True,
                                     "num_workers": args.workers},
           "loss": {"positives": "labels"}, "optim": {"warmup_steps": 1},
           "train": {"batch_size": batch, "steps": 10 ** 6, "device": args.device, "precision": args.precision,
                     "compile": args.compile, "progress": False, "threads": args.threads}}
    return pretrain.Trainer(cfg), dim


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(trainer, a, b, steps: int, warmup: int) -> tuple[float, float]:
    """Median seconds per step of batches ``a`` and ``b``, timed alternately (drift hits both alike)."""
    for _ in range(warmup):
        trainer.step(a)
        trainer.step(b)
    ta, tb = [], []
    for _ in range(steps):
        for batch, out in ((a, ta), (b, tb)):
            sync(trainer.device)
            t = time.perf_counter()
            trainer.step(batch)
            sync(trainer.device)
            out.append(time.perf_counter() - t)
    return float(np.median(ta)), float(np.median(tb))


def flops_per_sample(trainer, batch) -> tuple[float, float]:
    from torch.utils.flop_counter import FlopCounterMode

    x = trainer.model_input(batch)
    n = x.shape[0]
    student = trainer.student  # eager module: the counter sees every op
    with FlopCounterMode(display=False) as fc:
        with trainer.autocast():
            s = student(x, output="raw")
        s.float().square().sum().backward()
    student.zero_grad(set_to_none=True)
    train_flops = fc.get_total_flops() / n
    with FlopCounterMode(display=False) as fc:
        trainer.targets_of(batch)
    return train_flops, fc.get_total_flops() / n


def bench(preset: str, args) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-pretrain-") as tmp:
        trainer, dim = build(preset, args, Path(tmp))
        it = iter(trainer.loader())
        next(it)  # worker start-up
        t = time.perf_counter()
        for _ in range(args.data_batches):
            live = next(it)
        data_rate = trainer.cfg.train.batch_size * args.data_batches / (time.perf_counter() - t)
        with torch.no_grad():
            emb = trainer.teacher.encode_images(live["images"].to(trainer.device)).float().cpu()
        cached = {"x": live["x"], "teacher": emb, "labels": live["labels"]}
        b = trainer.cfg.train.batch_size
        train_flops, teacher_flops = flops_per_sample(trainer, live)
        t_live, t_cached = time_interleaved(trainer, live, cached, args.steps, args.warmup)
        dev = trainer.device
        name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
        peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
        out = {"preset": preset, "device": name, "precision": trainer.precision,
               "compiled": trainer.forward is not trainer.student and hasattr(trainer.forward, "_orig_mod"),
               "threads": torch.get_num_threads(), "batch": b,
               "student_params": sum(p.numel() for p in trainer.student.parameters()),
               "teacher_params": sum(p.numel() for p in trainer.teacher.visual.parameters()),
               "student_train_gflop_per_sample": train_flops / 1e9,
               "teacher_fwd_gflop_per_sample": teacher_flops / 1e9,
               "samples_per_s_teacher_in_step": b / t_live, "samples_per_s_cached_teacher": b / t_cached,
               "speedup_from_cache": t_live / t_cached, "data_pipeline_samples_per_s": data_rate,
               "data_workers": args.workers}
        out["achieved_gflops_cached"] = train_flops * b / t_cached / 1e9
        out["achieved_gflops_teacher_in_step"] = (train_flops + teacher_flops) * b / t_live / 1e9
        if peak:
            out["peak_bf16_tflops"] = peak
            out["mfu_cached"] = train_flops * b / t_cached / (peak * 1e12)
            out["mfu_teacher_in_step"] = (train_flops + teacher_flops) * b / t_live / (peak * 1e12)
        return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", nargs="*", default=None, choices=sorted(PRESETS),
                    help="default: tiny pocket on CPU, vitb on CUDA")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    ap.add_argument("--compile", default="auto", choices=["auto", "on", "off"])
    ap.add_argument("--batch", type=int, default=None, help="global batch (default per preset)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--drop-path", type=float, default=None, help="override the ViT student's drop path")
    ap.add_argument("--workers", type=int, default=0, help="data loader workers for the pipeline timing")
    ap.add_argument("--data-batches", type=int, default=3)
    ap.add_argument("--peak-tflops", type=float, default=None, help="bf16 dense peak for MFU (default: known GPUs)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    presets = args.preset or (["vitb"] if args.device.startswith("cuda") else ["tiny", "pocket"])
    results = []
    print(f"{'preset':10s} {'device':12s} {'prec':5s} {'batch':>5s} {'GFLOP/s.':>9s} {'teacher':>8s} "
          f"{'teacher in step':>16s} {'cached teacher':>15s} {'ratio':>6s} {'data pipe':>10s} {'GFLOP/s':>8s} "
          f"{'MFU (cached)':>12s}")
    for preset in presets:
        r = bench(preset, args)
        results.append(r)
        mfu = f"{100 * r['mfu_cached']:.1f}%" if "mfu_cached" in r else "n/a"
        print(f"{preset:10s} {r['device'][:12]:12s} {r['precision']:5s} {r['batch']:5d} "
              f"{r['student_train_gflop_per_sample']:9.3f} {r['teacher_fwd_gflop_per_sample']:8.3f} "
              f"{r['samples_per_s_teacher_in_step']:12.1f} s/s {r['samples_per_s_cached_teacher']:11.1f} s/s "
              f"{r['speedup_from_cache']:5.2f}x {r['data_pipeline_samples_per_s']:6.0f} s/s "
              f"{r['achieved_gflops_cached']:8.1f} {mfu:>12s}", flush=True)
    print("median samples/s of one full training step (global batch, both variants timed alternately); GFLOP/s. = student forward+backward FLOPs per "
          "sample, teacher = its forward per image; GFLOP/s achieved with the cache; MFU vs the dense bf16 peak")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
