"""Which models the demos run, each loaded once, on first use.

    models = DemoModels()                               # the embedded default (pocket) everywhere
    models = DemoModels(encoder="imagebind_huge", checkpoint="imagebind_huge.pth",
                        unclip="/models/stable-diffusion-2-1-unclip",
                        detector="owl:/models/owlv2-base-patch16", detector_space="...",
                        device="cuda", dtype="float16")
    models.encoder("audio"), models.detector(), models.generator()

Every piece is None (the embedded default: rebind's pocket encoders, detector and unCLIP), a name or
path (what the command-line flags pass), or a ready object (what tests and notebooks pass). Defaults
and explicit models go through the same loaders in ``adapters`` / ``encoders``.
"""
from __future__ import annotations

import argparse
import json
import os
import threading
from pathlib import Path
from typing import Any

DTYPES = ("float32", "float16", "bfloat16")


class ModelsNotInstalled(RuntimeError):
    """The embedded default models are not in this checkout and no explicit model was given."""


def pocket_missing() -> list[str]:
    """The parts of the embedded default (pocket) that are not installed; empty when all are."""
    import encoders
    from adapters.detic.prompts import DEFAULT_DETECTOR_DIR
    from adapters.unclip.pipelines import DEFAULT_PIPELINE_DIR
    from encoders.factory import WEIGHTS_DIR

    missing = []
    if encoders.DEFAULT_MODEL not in encoders.list_models():
        missing.append(f"encoders: no '{encoders.DEFAULT_MODEL}' config in encoders/configs/")
    else:
        weights = encoders.get_config(encoders.DEFAULT_MODEL).get("weights")
        if not weights or not (WEIGHTS_DIR / weights).exists():
            missing.append(f"encoders: the pocket weights ({WEIGHTS_DIR / (weights or 'pocket')}) are missing")
    if not (DEFAULT_DETECTOR_DIR / "config.json").is_file():
        missing.append(f"detector: {DEFAULT_DETECTOR_DIR} is missing")
    if not (DEFAULT_PIPELINE_DIR / "model_index.json").is_file():
        missing.append(f"unCLIP: {DEFAULT_PIPELINE_DIR} is missing")
    return missing


def pocket_installed() -> bool:
    """True when the embedded default encoders, detector and unCLIP are all installed."""
    return not pocket_missing()


def _as_dtype(dtype: Any):
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if str(dtype) not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return getattr(torch, str(dtype))


def _is_folder(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike)) and Path(value).expanduser().is_dir()


class DemoModels:
    """The audio (+ text, vision) encoder, the detector and the unCLIP generator of the demos.

    encoder: None (pocket), a config name (``encoders.list_models()``) or a saved-encoder folder,
        with ``checkpoint`` (a weights file, e.g. the official imagebind_huge.pth); or an
        ``encoders.MultimodalEncoder`` / ``ModalityEncoder`` object. Text and vision towers are only
        built when a text or image is mixed in.
    detector: None (pocket), a folder (a rebind detector from ``save_detector``, or an OWLv2 /
        OWL-ViT checkpoint), ``"owl:NAME_OR_FOLDER"``, ``"detic:CONFIG.yaml"`` (real Detic on
        detectron2, with ``detector_weights`` / ``detic_root``), or a detector object.
    unclip: None (pocket), a diffusers folder or hub name (offline: from the local cache only),
        or a pipeline / ``adapters.unclip.UnclipGenerator``.
    device / dtype: where the encoder and unCLIP run (the detector runs on ``device`` in float32).
    names: how ``describe()`` shows parts given as objects, e.g. ``{"unclip": "my pipeline"}``.
    detector_bridge / unclip_bridge: a ``Bridge`` file when the encoder's CLIP space is not the
        detector's / the pipeline's (``python -m pretrain bridge``).
    """

    PARTS = ("encoder", "detector", "unclip")

    def __init__(self, encoder: Any = None, checkpoint: Any = None, detector: Any = None, unclip: Any = None,
                 device: Any = None, dtype: Any = None, detector_space: str | None = None,
                 detector_weights: Any = None, detic_root: Any = None, unclip_space: str | None = None,
                 detector_bridge: Any = None, unclip_bridge: Any = None, names: dict[str, str] | None = None):
        self.encoder_spec, self.checkpoint = encoder, checkpoint
        self.detector_spec, self.detector_space = detector, detector_space
        self.detector_weights, self.detic_root = detector_weights, detic_root
        self.unclip_spec, self.unclip_space = unclip, unclip_space
        self.device = None if device is None else str(device)
        self.dtype = _as_dtype(dtype)
        self.detector_bridge, self.unclip_bridge = detector_bridge, unclip_bridge
        self.names = dict(names or {})  # how describe() shows objects, e.g. {"unclip": "tiny (random weights)"}
        self._encoders: dict[str, Any] = {}
        self._detector = None
        self._generator = None
        self._lock = threading.RLock()
        # a diffusers pipeline keeps per-call state (the scheduler's timesteps): one call at a time
        self.generation_lock = threading.Lock()
        # a prompt swaps the shared detector's classes until it is restored: one prompt at a time
        self.detection_lock = threading.Lock()

    # ------------------------------------------------------------------------------ what is used

    def uses_default(self, part: str) -> bool:
        """Whether ``part`` ("encoder", "detector" or "unclip") is the embedded default."""
        return getattr(self, f"{part}_spec") is None

    def describe(self, with_state: bool = True) -> dict[str, str]:
        """One line per part for people: which model (and, ``with_state``, whether it is loaded yet)."""
        def name(spec: Any, extra: str = "", part: str = "") -> str:
            if part in self.names:
                return self.names[part]
            if spec is None:
                return "pocket (embedded default)"
            if isinstance(spec, (str, os.PathLike)):
                return f"{spec}{extra}"
            return type(spec).__name__

        ckpt = f" + {self.checkpoint}" if self.checkpoint not in (None, False) else ""
        later = " (not loaded yet)" if with_state else ""
        return {
            "encoder": name(self.encoder_spec, ckpt, "encoder") + ("" if self._encoders else later),
            "detector": name(self.detector_spec, part="detector") + ("" if self._detector is not None else later),
            "unclip": name(self.unclip_spec, part="unclip") + ("" if self._generator is not None else later),
        }

    def check_installed(self, parts: tuple[str, ...] = PARTS) -> None:
        """Raise ``ModelsNotInstalled`` (a message naming what is missing and the flags that replace it)
        when one of ``parts`` is the embedded default and the pocket weights are not installed.
        Cheap: looks at files only, loads nothing."""
        wanted = [p for p in parts if self.uses_default(p)]
        if not wanted:
            return
        missing = [m for m in pocket_missing() if m.split(":")[0].lower().startswith(
            tuple({"encoder": "encoders", "detector": "detector", "unclip": "unclip"}[p] for p in wanted))]
        if missing:
            flags = {"encoder": "--encoder CONFIG --checkpoint FILE", "detector": "--detector FOLDER",
                     "unclip": "--unclip FOLDER"}
            raise ModelsNotInstalled(
                "the embedded default models (pocket) are not installed in this checkout:\n  - "
                + "\n  - ".join(missing)
                + "\nInstall a rebind release that ships them, or pass explicit models: "
                + " ".join(flags[p] for p in wanted) + " (see --help).")

    def is_loaded(self, part: str, modality: str = "audio") -> bool:
        if part == "encoder":
            return modality in self._encoders
        return (self._detector if part == "detector" else self._generator) is not None

    # ----------------------------------------------------------------------------------- loading

    def encoder(self, modality: str = "audio"):
        """The ``ModalityEncoder`` of ``modality`` ("audio", "text", "vision"), built on first use."""
        with self._lock:
            if modality not in self._encoders:
                self._encoders[modality] = self._load_encoder(modality)
            return self._encoders[modality]

    def _load_encoder(self, modality: str):
        import encoders

        spec = self.encoder_spec
        if spec is None:
            self.check_installed(("encoder",))
        if isinstance(spec, encoders.MultimodalEncoder):
            if modality not in spec.encoders:
                raise ValueError(f"the encoder {spec.name!r} has no {modality} tower (it has "
                                 f"{', '.join(spec.encoders)}); a {modality} input cannot be used with it")
            return spec[modality]
        if isinstance(spec, encoders.ModalityEncoder):
            return encoders.resolve_encoder(spec, modality)
        if spec is None or (self.checkpoint is None and not _is_folder(spec)):
            if spec is not None and str(spec) not in encoders.list_models():
                raise FileNotFoundError(f"--encoder {spec!r} is neither an encoder config "
                                        f"({', '.join(encoders.list_models())}) nor a saved encoder folder")
            _check_has_modality(spec, modality)
            return encoders.resolve_encoder(spec, modality, device=self.device, dtype=self.dtype)
        _check_has_modality(spec, modality)
        built = encoders.create(str(spec), modalities=(modality,), checkpoint=self.checkpoint,
                                device=self.device, dtype=self.dtype)
        return built[modality]

    def detector(self):
        """The promptable detector, built on first use."""
        with self._lock:
            if self._detector is None:
                self._detector = self._load_detector()
            return self._detector

    def _load_detector(self):
        import adapters.detic as detic

        spec = self.detector_spec
        device = self.device
        if spec is None:
            self.check_installed(("detector",))
            return detic.load_detector(None, device=device)
        if not isinstance(spec, (str, os.PathLike)):
            return detic.load_detector(spec, space=self.detector_space)
        text = str(spec)
        if text.startswith("owl:"):
            return detic.load_owl(text[4:], space=self.detector_space, device=device or "cpu")
        if text.startswith("detic:"):
            return detic.load_detectron2_detic(text[6:], weights=self.detector_weights, detic_root=self.detic_root,
                                               device=device or "cpu")
        folder = Path(text).expanduser()
        config = folder / "config.json"
        if folder.is_dir() and config.is_file():
            meta = json.loads(config.read_text())
            if meta.get("model_type") in ("owlv2", "owlvit"):
                return detic.load_owl(str(folder), space=self.detector_space, device=device or "cpu")
        return detic.load_detector(folder, device=device)

    def generator(self):
        """The ``adapters.unclip.UnclipGenerator``, built on first use."""
        with self._lock:
            if self._generator is None:
                import adapters.unclip as unclip

                if self.unclip_spec is None:
                    self.check_installed(("unclip",))
                gen = unclip.load_pipeline(self.unclip_spec, space=self.unclip_space, device=self.device,
                                           dtype=self.dtype)
                if hasattr(gen.pipe, "set_progress_bar_config"):
                    gen.pipe.set_progress_bar_config(disable=True)
                self._generator = gen
            return self._generator

    def load_all(self, with_mixing: bool = False) -> None:
        """Load everything now (the app's ``--preload``)."""
        self.encoder("audio")
        if with_mixing:
            for modality in ("text", "vision"):
                try:
                    self.encoder(modality)
                except ValueError:
                    pass  # this encoder has no such tower: mixing that kind stays unavailable
        self.detector()
        self.generator()

    # ---------------------------------------------------------------------------------- CLI flags

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "DemoModels":
        """The models named by ``add_model_arguments``'s flags."""
        checkpoint = args.checkpoint
        if isinstance(checkpoint, str) and checkpoint.lower() == "none":
            checkpoint = False  # random weights, on purpose
        return cls(encoder=args.encoder, checkpoint=checkpoint, detector=args.detector, unclip=args.unclip,
                   device=args.device, dtype=args.dtype, detector_space=args.detector_space,
                   detector_weights=args.detector_weights, detic_root=args.detic_root,
                   unclip_space=args.unclip_space, detector_bridge=args.detector_bridge,
                   unclip_bridge=args.unclip_bridge)


def _check_has_modality(spec: Any, modality: str) -> None:
    import encoders

    name = encoders.DEFAULT_MODEL if spec is None else str(spec)
    if _is_folder(name):
        data = json.loads((Path(name).expanduser() / "config.json").read_text()) \
            if (Path(name).expanduser() / "config.json").is_file() else {}
    elif name in encoders.list_models():
        data = encoders.get_config(name)
    else:
        return
    have = list(data.get("modalities", {}))
    if have and modality not in have:
        raise ValueError(f"the encoder {name!r} has no {modality} tower (it has {', '.join(have)}); "
                         f"a {modality} input cannot be used with it")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model flags every demo command shares (all optional: none = the embedded default)."""
    group = parser.add_argument_group("models (default: the embedded pocket models)")
    group.add_argument("--encoder", metavar="CONFIG_OR_FOLDER",
                       help="encoder config name (e.g. imagebind_huge) or a saved encoder folder")
    group.add_argument("--checkpoint", metavar="FILE",
                       help="encoder weights for --encoder CONFIG (e.g. imagebind_huge.pth); "
                            "'none' = random weights (testing only)")
    group.add_argument("--detector", metavar="FOLDER_OR_NAME",
                       help="a saved rebind detector folder, an OWLv2/OWL-ViT folder, owl:NAME_OR_FOLDER, "
                            "or detic:CONFIG.yaml (real Detic; needs detectron2)")
    group.add_argument("--detector-space", metavar="SPACE", help="CLIP space of an OWL checkpoint that is not public")
    group.add_argument("--detector-weights", metavar="FILE", help="weights for --detector detic:CONFIG.yaml")
    group.add_argument("--detic-root", metavar="DIR", help="the Detic source folder, for --detector detic:...")
    group.add_argument("--detector-bridge", metavar="FILE",
                       help="bridge from the encoder's CLIP space to the detector's, when they differ")
    group.add_argument("--unclip", metavar="FOLDER_OR_NAME",
                       help="a diffusers unCLIP folder (e.g. stable-diffusion-2-1-unclip) or a hub name "
                            "already in the local cache")
    group.add_argument("--unclip-space", metavar="SPACE", help="CLIP space of the unCLIP pipeline, if not recorded")
    group.add_argument("--unclip-bridge", metavar="FILE",
                       help="bridge from the encoder's CLIP space to the pipeline's, when they differ")
    group.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps ... (default: cpu)")
    group.add_argument("--dtype", default=None, choices=DTYPES,
                       help="encoder/unCLIP precision (default: as saved, float32 on CPU)")
