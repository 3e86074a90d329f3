"""Peak memory and time to get an audio encoder out of a full-size imagebind_huge.pth.

rebind memory-maps the checkpoint and builds only the asked modality; the reference builds all six
towers (1.2B parameters) and loads the whole file. Each way runs in its own subprocess so peak RSS
is its own. A random checkpoint in the official key layout is written once (4.8 GB) from the
reference model with random weights (the official weights are never downloaded here).

    python benchmarks/bench_load_memory.py --checkpoint /tmp/imagebind_huge_random.pth
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WRITE = """
import sys, torch; sys.path.insert(0, {tests!r})
import reference_imagebind as ref
m = ref.reference_model_module().imagebind_huge(pretrained=False)
torch.save(m.state_dict(), {path!r})
"""
REBIND = """
import resource, time, json, torch, encoders
t = time.perf_counter()
model = encoders.create("imagebind_huge", modalities=({modality!r},), checkpoint={path!r})
n = sum(p.numel() for p in model.parameters())
print(json.dumps(dict(seconds=time.perf_counter() - t, params=n,
                      peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
"""
REFERENCE = """
import resource, time, json, sys, torch; sys.path.insert(0, {tests!r})
import reference_imagebind as ref
t = time.perf_counter()
m = ref.reference_model_module().imagebind_huge(pretrained=False)
m.load_state_dict(torch.load({path!r}, map_location="cpu", weights_only=True))
n = sum(p.numel() for p in m.parameters())
print(json.dumps(dict(seconds=time.perf_counter() - t, params=n,
                      peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
"""


def run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="/tmp/imagebind_huge_random.pth")
    args = p.parse_args()
    path, tests = str(Path(args.checkpoint)), str(ROOT / "tests")
    if not Path(path).exists():
        print(f"writing a random full-size checkpoint to {path} (once) ...", flush=True)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", WRITE.format(tests=tests, path=path)], check=True)
        print(f"  done in {time.perf_counter() - t:.0f} s, {Path(path).stat().st_size / 1e9:.2f} GB")
    rows = [("reference: all towers + full load", run(REFERENCE.format(tests=tests, path=path)))]
    for m in ("audio", "depth", "vision"):
        rows.append((f"rebind: {m} only (mmap)", run(REBIND.format(modality=m, path=path))))
    base = rows[0][1]
    print(f"\n{'way':36s} {'params':>12s} {'peak RSS':>10s} {'seconds':>8s} {'memory ratio':>13s}")
    for name, r in rows:
        print(f"{name:36s} {r['params'] / 1e6:10.1f} M {r['peak_mb']:8.0f} MB {r['seconds']:8.1f} "
              f"{base['peak_mb'] / r['peak_mb']:12.1f}x")


if __name__ == "__main__":
    main()
