"""Real-size Stable unCLIP shape check with random weights (no downloads), with timings.

    python benchmarks/unclip_real_size.py                         # -h and -l on cuda, fp16, 2 steps
    python benchmarks/unclip_real_size.py --variant l --device cpu --dtype bf16 --size 64 --steps 1

Builds the geometry of stabilityai/stable-diffusion-2-1-unclip (-h, 1024-d) and -unclip-small (-l,
768-d) from configs (adapters/unclip/configs.py), optionally a real-size ImageBind audio tower (random
weights) for -h, runs adapters.unclip end to end and prints one JSON line per variant.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", nargs="+", default=["h", "l"], choices=["h", "l"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="fp16", choices=sorted(DTYPES))
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--size", type=int, default=None, help="height=width in pixels (default: the pipeline's 768)")
    p.add_argument("--batch", type=int, default=2, help="embeddings per call")
    p.add_argument("--no-audio", action="store_true", help="skip the real-size audio tower (-h only)")
    args = p.parse_args(argv)

    import adapters.unclip as unclip
    import encoders
    from adapters.unclip.configs import stable_unclip_pipeline

    dtype = DTYPES[args.dtype]
    cuda = args.device.startswith("cuda")
    for variant in args.variant:
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        pipe = stable_unclip_pipeline(variant, device=args.device, dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
        gen = unclip.UnclipGenerator(pipe)
        build_s = time.perf_counter() - t0
        params = {name: sum(p.numel() for p in m.parameters()) for name, m in pipe.components.items()
                  if isinstance(m, torch.nn.Module)}
        size = {} if args.size is None else dict(height=args.size, width=args.size)
        kw = dict(num_inference_steps=args.steps, guidance_scale=3.0, noise_level=100, seed=0, **size)
        gen.generate(torch.randn(1, gen.dim), **dict(kw, num_inference_steps=1))  # warm-up
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        images = unclip.from_embeddings(torch.randn(args.batch, gen.dim), pipeline=gen, **kw)
        if cuda:
            torch.cuda.synchronize()
        gen_s = time.perf_counter() - t0
        row = dict(variant=variant, space=gen.space.name, dim=gen.dim, device=args.device, dtype=args.dtype,
                   params_m={k: round(v / 1e6, 1) for k, v in params.items()}, build_s=round(build_s, 1),
                   steps=args.steps, batch=args.batch, generate_s=round(gen_s, 2),
                   image_sizes=sorted({im.size for im in images}),
                   pixels_finite=bool(np.isfinite(np.stack([np.asarray(im, np.float32) for im in images])).all()),
                   target_norm=gen.target_norm())
        if variant == "h" and not args.no_audio:
            enc = encoders.create("imagebind_huge", modalities=("audio",), checkpoint=False, device=args.device)
            rng = np.random.default_rng(0)
            sounds = [(0.1 * rng.standard_normal(16000 * 3).astype(np.float32), 16000) for _ in range(args.batch)]
            t0 = time.perf_counter()
            audio_images = unclip.from_audio(sounds, pipeline=gen, encoder=enc, **kw)
            if cuda:
                torch.cuda.synchronize()
            row.update(audio_generate_s=round(time.perf_counter() - t0, 2),
                       audio_image_sizes=sorted({im.size for im in audio_images}))
            del enc
        if cuda:
            row["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)
        print(json.dumps(row), flush=True)
        del gen, pipe
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
