"""Tiny random-weight stand-ins for the demo models (CLIP space ``test-32``): for tests, load checks and
working on the UI without the pocket weights. They run the real code paths in seconds on a CPU, but
their images are noise and their boxes are arbitrary -- never use them to judge results.

    models = tiny_models()                               # objects, in memory
    flags = save_tiny_models("/tmp/tiny")                # folders, for the command-line flags:
    # python -m demos.app --encoder /tmp/tiny/encoder --detector /tmp/tiny/detector --unclip /tmp/tiny/unclip
"""
from __future__ import annotations

from pathlib import Path

from .models import DemoModels

SPACE = "test-32"


def tiny_encoder(seed: int = 0):
    """The ``imagebind_test`` audio + text + vision encoders with random weights (seeded)."""
    import torch

    import encoders

    torch.manual_seed(seed)
    return encoders.create("imagebind_test", modalities=("audio", "text", "vision"), checkpoint=False)


def tiny_detector(seed: int = 0, confident: bool = True):
    """rebind's Detic-style detector (MobileNetV3-small + FPN), random weights.

    confident: with random weights every box scores far below 0.9, so the threshold-0.9 path would
        draw nothing. This sets the class temperature to 1 and the class and objectness biases to 6,
        so every box scores 0.99-1.0 whatever the sounds (the label is still each box's best class),
        and keeps the 8 best boxes.
    """
    import torch

    from adapters.detic import DeticStyleConfig, DeticStyleDetector

    torch.manual_seed(seed)
    extra = dict(norm_temperature=1.0, detections_per_image=8) if confident else {}
    config = DeticStyleConfig(space=SPACE, backbone="mobilenet_v3_small", fpn_channels=16,
                              representation_size=32, min_size=[128], max_size=160, **extra)
    model = DeticStyleDetector(config).eval()
    if confident:
        with torch.no_grad():
            model.roi_heads.box_predictor.cls_score.bias.fill_(6.0)
            model.rpn.head.cls_logits.bias.fill_(6.0)
    return model


def tiny_unclip(seed: int = 0):
    """A tiny ``StableUnCLIPImg2ImgPipeline`` (32 px images) wrapped as an ``UnclipGenerator`` in test-32."""
    import adapters.unclip as unclip
    from adapters.unclip.configs import stable_unclip_pipeline

    pipe = stable_unclip_pipeline("tiny", seed=seed)
    pipe.set_progress_bar_config(disable=True)
    return unclip.load_pipeline(pipe, space=SPACE)


def tiny_models(**kwargs) -> DemoModels:
    """``DemoModels`` holding the three tiny stand-ins as objects."""
    names = {"encoder": "tiny imagebind_test (random weights)", "detector": "tiny Detic-style (random weights)",
             "unclip": "tiny Stable unCLIP (random weights)"}
    return DemoModels(encoder=tiny_encoder(), detector=tiny_detector(), unclip=tiny_unclip(),
                      **{"names": names, **kwargs})


def save_tiny_models(folder: "str | Path") -> dict[str, str]:
    """Write the tiny stand-ins as the folders the model flags take; returns {flag: folder}."""
    import encoders
    from adapters.detic import save_detector

    folder = Path(folder)
    paths = {"encoder": folder / "encoder", "detector": folder / "detector", "unclip": folder / "unclip"}
    encoders.save_modalities(tiny_encoder(), paths["encoder"])
    save_detector(tiny_detector(), paths["detector"])
    tiny_unclip().save(paths["unclip"])
    return {k: str(v) for k, v in paths.items()}
