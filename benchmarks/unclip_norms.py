"""How much of an embedding's direction survives Stable unCLIP's own noise augmentation, per norm.

    python benchmarks/unclip_norms.py [--dim 1024] [--samples 512]

Stable unCLIP noises its conditioning embedding before the UNet sees it: standardise with the
normalizer (identity in the -h release), ``DDPMScheduler(squaredcos_cap_v2).add_noise`` at
``noise_level``, unstandardise. The noise has unit variance per dimension, i.e. norm ~sqrt(D) = 32 for
D = 1024, calibrated for raw-scale CLIP image embeddings. This script runs that exact code path
(the pipeline's ``noise_image_embeddings``, tiny pipeline with a D-wide identity normalizer) on random
unit directions scaled to several norms and prints the mean cosine between the clean direction and
what reaches the UNet. It measures the pipeline's arithmetic, not image quality: it shows why
rebind's encoders' unit vectors must be rescaled before they go in (``norm="stats"``).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--samples", type=int, default=512)
    p.add_argument("--norms", type=float, nargs="+", default=[1.0, 5.0, 20.0, 32.0])
    p.add_argument("--levels", type=int, nargs="+", default=[0, 50, 100, 200, 400, 600, 800])
    args = p.parse_args(argv)

    from adapters.unclip.configs import stable_unclip_pipeline

    pipe = stable_unclip_pipeline("tiny", dim=args.dim)
    g = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(args.samples, args.dim, generator=g), dim=-1)
    print(f"# D={args.dim}, identity normalizer, mean cosine(clean direction, noised embedding) "
          f"over {args.samples} random directions")
    print("noise_level  alpha_bar  " + "  ".join(f"norm={n:g}" for n in args.norms))
    ac = pipe.image_noising_scheduler.alphas_cumprod
    with torch.no_grad():
        for level in args.levels:
            cells = []
            for n in args.norms:
                out = pipe.noise_image_embeddings(x * n, noise_level=level, generator=g)[:, : args.dim]
                cells.append(F.cosine_similarity(out, x, dim=-1).mean().item())
            print(f"{level:11d}  {ac[level].item():9.4f}  " + "  ".join(f"{c:{len(f'norm={n:g}')}.3f}"
                                                                       for c, n in zip(cells, args.norms)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
