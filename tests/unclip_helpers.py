"""Shared bits of the unCLIP tests: tiny real pipelines, a state fingerprint, pixel comparisons."""
from __future__ import annotations

import hashlib

import numpy as np
import torch

STEPS = dict(num_inference_steps=2)


def pixels(images) -> np.ndarray:
    return np.stack([np.asarray(im, dtype=np.float32) for im in images])


def mean_abs_diff(a, b) -> float:
    return float(np.abs(pixels(a) - pixels(b)).mean())


def fingerprint(pipe) -> dict:
    """Every weight/buffer of every model component and every scheduler config of a pipeline."""
    out = {}
    for name, component in pipe.components.items():
        if isinstance(component, torch.nn.Module):
            h = hashlib.sha256()
            for key, t in sorted(component.state_dict().items()):
                h.update(key.encode())
                h.update(t.detach().float().cpu().numpy().tobytes())
            out[name] = (h.hexdigest(), str(component.dtype), str(component.device))
        elif hasattr(component, "config"):
            out[name] = repr(sorted(dict(component.config).items()))
    return out
