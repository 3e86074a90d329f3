"""rebind demos: the mission end to end on bundled examples, a Gradio app, and overlay scripts.

    python -m demos                                  # sound -> boxes + images on the bundled examples
    python -m demos.app                              # the Gradio app on http://127.0.0.1:7860
    python -m demos.detect --audio dog.wav --image scene.png --out overlay.png

With no model flags everything runs on the embedded default (the pocket models); every command
takes ``--encoder/--checkpoint``, ``--detector``, ``--unclip``, ``--device``, ``--dtype`` for others.
From Python: ``DemoModels`` (which models), ``detect_sounds``, ``images_from_sound``, ``build_app``.
"""
from __future__ import annotations

import os

# Nothing here reaches a model hub or analytics server: say so before any library looks.
OFFLINE_ENVIRONMENT = {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_ANALYTICS_ENABLED": "False"}


def offline_environment() -> None:
    """Set the variables that keep huggingface_hub and gradio from calling out (unless already set)."""
    for key, value in OFFLINE_ENVIRONMENT.items():
        os.environ.setdefault(key, value)


def __getattr__(name: str):
    lazy = {"DemoModels": "models", "pocket_installed": "models", "pocket_missing": "models",
            "detect_sounds": "detect", "images_from_sound": "generate", "build_app": "app", "launch": "app"}
    if name in lazy:
        import importlib

        return getattr(importlib.import_module(f".{lazy[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
