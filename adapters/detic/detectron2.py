"""Real Detic models (facebookresearch/Detic, on detectron2), made promptable.

detectron2 and Detic are optional: nothing here imports them until a function needs them.
Install them the way those projects document (detectron2: build from source; Detic: clone with
its CenterNet2 submodule) and either put ``Detic`` and ``Detic/third_party/CenterNet2`` on
``PYTHONPATH`` or pass ``detic_root=``.

    detector = load_detectron2_detic("configs/Detic_LCOCOI21k_CLIP_SwinB_896b32_4x_ft4x_max-size.yaml",
                                     weights="models/Detic_LCOCOI21k_CLIP_SwinB_896b32_4x_ft4x_max-size.pth",
                                     detic_root="~/Detic")
    with adapters.detic.from_audio("dog.wav", detector=detector, bridge="imagebind_to_vitb32.safetensors") as d:
        d.detect("park.jpg").draw("park.jpg").save("dog.png")

The swap: every zero-shot classifier is found by structure (a module with a 2-D ``zs_weight`` of
shape D x (C+1) and a ``linear`` projecting to D: all cascade stages), its ``zs_weight`` is
replaced by a registered buffer holding the unit embeddings plus Detic's zero background column,
and ``num_classes`` is set on the box predictors and ROI heads. On restore the modules get back
the very tensors (Parameter or buffer) and registrations they had. Detic's own
``reset_cls_test`` is not used: it deletes the registered tensor and leaves ``num_classes`` stale.
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from encoders.spaces import ClipSpace, get_space

from .base import PromptableDetector

log = logging.getLogger(__name__)

PUBLIC_DETIC_SPACE = "openai-vit-b-32"  # Detic's classifiers are CLIP ViT-B/32 text embeddings (512-d)

INSTALL_HELP = (
    "The real-Detic backend needs detectron2 and the Detic source. Install detectron2 as its docs say "
    "(https://detectron2.readthedocs.io/en/latest/tutorials/install.html, e.g. "
    "`pip install 'git+https://github.com/facebookresearch/detectron2.git'`), then "
    "`git clone --recursive https://github.com/facebookresearch/Detic` and "
    "`pip install -r Detic/requirements.txt`, and pass detic_root='path/to/Detic' (or put Detic and "
    "Detic/third_party/CenterNet2 on PYTHONPATH). Without them, use rebind's own detector "
    "(adapters.detic.DeticStyleDetector) or OWLv2 (adapters.detic.load_owl)."
)


def _import_detic(detic_root: "str | os.PathLike | None" = None):
    """Import detectron2 + CenterNet2 + Detic configs (adding ``detic_root`` to sys.path)."""
    if detic_root is not None:
        root = Path(detic_root).expanduser().resolve()
        if not (root / "detic").is_dir():
            raise FileNotFoundError(f"'{root}' is not a Detic checkout (no detic/ package inside). {INSTALL_HELP}")
        for path in (root / "third_party" / "CenterNet2", root):
            if str(path) not in sys.path:
                sys.path.insert(0, str(path))
    try:
        import detectron2  # noqa: F401
    except ImportError as e:
        raise ImportError(f"detectron2 is not installed ({e}). {INSTALL_HELP}") from None
    try:
        from centernet.config import add_centernet_config
        from detic.config import add_detic_config
    except ImportError as e:
        raise ImportError(f"the Detic source is not importable ({e}). {INSTALL_HELP}") from None
    return add_centernet_config, add_detic_config


def detic_config(config_file: "str | os.PathLike", opts: Sequence[Any] = (), detic_root=None, device: str = "cpu"):
    """A frozen detectron2 CfgNode for a Detic config file, relative paths resolved against
    ``detic_root``. Like Detic's demo, a zero-shot weight file that is not there becomes 'rand'
    (the classes are swapped in anyway)."""
    add_centernet_config, add_detic_config = _import_detic(detic_root)
    from detectron2.config import get_cfg

    root = Path(detic_root).expanduser().resolve() if detic_root is not None else Path.cwd()
    config_file = Path(config_file).expanduser()
    if not config_file.is_absolute() and not config_file.exists():
        config_file = root / config_file
    if not config_file.exists():
        raise FileNotFoundError(f"Detic config '{config_file}' does not exist")
    cfg = get_cfg()
    add_centernet_config(cfg)
    add_detic_config(cfg)
    cfg.merge_from_file(str(config_file))
    cfg.merge_from_list(["MODEL.DEVICE", str(device), *[str(o) if isinstance(o, Path) else o for o in opts]])
    box = cfg.MODEL.ROI_BOX_HEAD
    for key in ("CAT_FREQ_PATH", "ZEROSHOT_WEIGHT_PATH"):
        value = box[key]
        if value and value != "rand" and not Path(value).is_absolute() and not Path(value).exists():
            box[key] = str(root / value)
    if box.ZEROSHOT_WEIGHT_PATH != "rand" and not Path(box.ZEROSHOT_WEIGHT_PATH).exists():
        log.info("zero-shot weights %s not found; using 'rand' (rebind swaps classes in)", box.ZEROSHOT_WEIGHT_PATH)
        box.ZEROSHOT_WEIGHT_PATH = "rand"
    cfg.freeze()
    return cfg


def load_detectron2_detic(config_file: "str | os.PathLike", weights: "str | os.PathLike | None" = None,
                          opts: Sequence[Any] = (), detic_root: "str | os.PathLike | None" = None,
                          device: str = "cpu", space: "str | ClipSpace" = PUBLIC_DETIC_SPACE,
                          names: Sequence[str] | None = None,
                          one_class_per_proposal: bool | None = True) -> "Detectron2Detic":
    """Build a Detic model from its config (+ weights) and wrap it for prompting.

    weights: a checkpoint path; None uses the config's MODEL.WEIGHTS (relative to ``detic_root``).
    space: the CLIP space of its classifier (public Detic models: openai-vit-b-32).
    one_class_per_proposal: keep only each box's best class, as Detic's demo does (None: the config's).
    """
    cfg = detic_config(config_file, opts, detic_root, device)
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    model = build_model(cfg)
    path = str(weights) if weights is not None else cfg.MODEL.WEIGHTS
    if path:
        if not Path(path).exists() and detic_root is not None and (Path(detic_root).expanduser() / path).exists():
            path = str(Path(detic_root).expanduser() / path)
        DetectionCheckpointer(model).load(path)
    return Detectron2Detic(model.eval(), space=space, names=names, min_size_test=cfg.INPUT.MIN_SIZE_TEST,
                           max_size_test=cfg.INPUT.MAX_SIZE_TEST, one_class_per_proposal=one_class_per_proposal)


def find_zero_shot_classifiers(model: nn.Module) -> list[nn.Module]:
    """Every Detic-style zero-shot classifier in ``model``: a module with a 2-D ``zs_weight``
    [D, C+1] and a ``linear`` layer projecting to D (one per cascade stage)."""
    found = []
    for module in model.modules():
        weight = getattr(module, "zs_weight", None)
        linear = getattr(module, "linear", None)
        if isinstance(weight, torch.Tensor) and weight.ndim == 2 and isinstance(linear, nn.Linear) \
                and linear.out_features == weight.shape[0]:
            found.append(module)
    return found


@dataclass
class _Registration:
    parameters: dict
    buffers: dict
    non_persistent: set
    attribute: Any


_NO_ATTRIBUTE = object()


class Detectron2Detic(PromptableDetector):
    """A detectron2 Detic model behind rebind's detector interface (inference only).

    Images are resized as detectron2's DefaultPredictor does (shortest edge ``min_size_test``, long
    edge at most ``max_size_test``); scores, NMS and top-k are Detic's own. While it detects, the
    box predictors' SCORE_THRESH_TEST is the requested threshold (as Detic's demo sets it) and, unless
    ``one_class_per_proposal`` is None, the ROI heads' ONE_CLASS_PER_PROPOSAL too; both are put back.
    """

    has_masks = True

    def __init__(self, model: nn.Module, space: "str | ClipSpace" = PUBLIC_DETIC_SPACE,
                 names: Sequence[str] | None = None, min_size_test: int = 800, max_size_test: int = 1333,
                 one_class_per_proposal: bool | None = True):
        self.model = model
        self.one_class_per_proposal = one_class_per_proposal
        self.classifiers = find_zero_shot_classifiers(model)
        if not self.classifiers:
            raise TypeError(f"found no Detic zero-shot classifier in {type(model).__name__} (no module with a "
                            f"'zs_weight' [D, C+1] and a 'linear' to D): was it built with "
                            f"MODEL.ROI_BOX_HEAD.USE_ZEROSHOT_CLS=True?")
        self.space = get_space(space)
        dims = {int(c.zs_weight.shape[0]) for c in self.classifiers}
        if dims != {self.space.dim}:
            raise ValueError(f"this Detic model's zero-shot classifier is {sorted(dims)}-d but space {self.space} "
                             f"was declared; pass the space its class embeddings live in (space=...)")
        self._check_class_agnostic()
        # modules whose num_classes follows the vocabulary: box predictors and the ROI heads
        ids = {id(c) for c in self.classifiers}
        self.class_count_owners = [m for m in model.modules() if isinstance(getattr(m, "num_classes", None), int)
                                   and (id(getattr(m, "cls_score", None)) in ids or self._owns_predictor(m, ids))]
        count = int(self.classifiers[0].zs_weight.shape[1]) - 1
        self.class_names = list(names) if names is not None else [f"class{i}" for i in range(count)]
        if len(self.class_names) != count:
            raise ValueError(f"got {len(self.class_names)} names for the model's {count} classes")
        self.min_size_test, self.max_size_test = int(min_size_test), int(max_size_test)

    @staticmethod
    def _owns_predictor(module: nn.Module, ids: set) -> bool:
        predictor = getattr(module, "box_predictor", None)
        predictors = predictor if isinstance(predictor, nn.ModuleList) else [predictor]
        return any(id(getattr(p, "cls_score", None)) in ids for p in predictors if p is not None)

    def _check_class_agnostic(self) -> None:
        """New classes only make sense when nothing else in the model is per-class."""
        for module in self.model.modules():
            cls_score = getattr(module, "cls_score", None)
            bbox_pred = getattr(module, "bbox_pred", None)
            if cls_score in self.classifiers and bbox_pred is not None:
                out = bbox_pred[-1].out_features if isinstance(bbox_pred, nn.Sequential) else bbox_pred.out_features
                if out != 4:
                    raise ValueError("this Detic model regresses boxes per class (CLS_AGNOSTIC_BBOX_REG=False); "
                                     "its box head cannot take a new vocabulary")
        mask_head = getattr(getattr(self.model, "roi_heads", None), "mask_head", None)
        predictor = getattr(mask_head, "predictor", None)
        if isinstance(predictor, nn.Conv2d) and predictor.out_channels != 1:
            raise ValueError("this Detic model predicts masks per class (CLS_AGNOSTIC_MASK=False); its mask "
                             "head cannot take a new vocabulary")

    # ------------------------------------------------------------------- class-embedding swap
    def get_class_embeddings(self) -> torch.Tensor:
        return self.classifiers[0].zs_weight[:, :-1].T.detach().float().cpu().clone()

    def _classifier_state(self):
        registrations = [
            _Registration(dict(c._parameters), dict(c._buffers), set(c._non_persistent_buffers_set),
                          c.__dict__.get("zs_weight", _NO_ATTRIBUTE))
            for c in self.classifiers]
        counts = [m.num_classes for m in self.class_count_owners]
        return registrations, counts, list(self.class_names)

    def _restore_classifier_state(self, state) -> None:
        registrations, counts, names = state
        for c, reg in zip(self.classifiers, registrations):
            device = c.linear.weight.device  # follow the model if it was moved meanwhile
            for current, before in ((c._parameters, reg.parameters), (c._buffers, reg.buffers)):
                # zs_weight back as the very tensor it was, at its old position; other entries as they are now
                merged = {k: (v if k == "zs_weight" else current.get(k, v)) for k, v in before.items()}
                merged.update({k: v for k, v in current.items() if k not in merged and k != "zs_weight"})
                current.clear()
                current.update(merged)
            c._non_persistent_buffers_set.discard("zs_weight")
            if "zs_weight" in reg.non_persistent:
                c._non_persistent_buffers_set.add("zs_weight")
            c.__dict__.pop("zs_weight", None)
            if reg.attribute is not _NO_ATTRIBUTE:  # a plain attribute, as Detic's reset_cls_test leaves it
                c.__dict__["zs_weight"] = reg.attribute
            weight = c.zs_weight
            if weight.device != device:
                if isinstance(weight, nn.Parameter) or "zs_weight" not in c._buffers:
                    weight.data = weight.data.to(device)
                else:
                    c._buffers["zs_weight"] = weight.to(device)
        for m, n in zip(self.class_count_owners, counts):
            m.num_classes = n
        self.class_names = names

    def _classifier_token(self) -> tuple:
        return tuple(c.zs_weight for c in self.classifiers)

    def _install_class_embeddings(self, vectors: torch.Tensor, names: list[str]) -> None:
        unit = F.normalize(vectors.float(), dim=-1)
        matrix = torch.cat([unit.T, unit.new_zeros(unit.shape[1], 1)], dim=1)  # D x (C+1), zero background
        shared: dict[tuple, torch.Tensor] = {}
        for c in self.classifiers:
            old = c.zs_weight
            key = (old.device, old.dtype)
            if key not in shared:
                shared[key] = matrix.to(old.device, old.dtype)
            c._parameters.pop("zs_weight", None)
            c._buffers.pop("zs_weight", None)
            c.__dict__.pop("zs_weight", None)
            c.register_buffer("zs_weight", shared[key], persistent=False)
        for m in self.class_count_owners:
            m.num_classes = len(unit)
        self.class_names = list(names)

    # ------------------------------------------------------------------------------ detect
    def _detect_images(self, images: list, threshold: float) -> list[dict]:
        from detectron2.data import transforms as T

        resize = T.ResizeShortestEdge([self.min_size_test, self.min_size_test], self.max_size_test)
        device = self.classifiers[0].zs_weight.device
        inputs = []
        for img in images:
            rgb = np.asarray(img)
            array = rgb[:, :, ::-1] if getattr(self.model, "input_format", "BGR") == "BGR" else rgb
            resized = resize.get_transform(array).apply_image(array)
            inputs.append({"image": torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1))).to(device),
                           "height": img.height, "width": img.width})
        # settings Detic's demo changes per run; (module, attribute, value while detecting)
        settings = [(m, "test_score_thresh", threshold) for m in self.model.modules()
                    if hasattr(m, "test_score_thresh")]  # applied before NMS, as SCORE_THRESH_TEST
        if self.one_class_per_proposal is not None:
            settings += [(m, "one_class_per_proposal", self.one_class_per_proposal) for m in self.model.modules()
                         if hasattr(m, "one_class_per_proposal")]
        saved = [getattr(m, name) for m, name, _ in settings]
        was_training = self.model.training
        try:
            for m, name, value in settings:
                setattr(m, name, value)
            self.model.eval()
            with torch.inference_mode():
                outputs = self.model(inputs)
        finally:
            for (m, name, _), value in zip(settings, saved):
                setattr(m, name, value)
            self.model.train(was_training)
        results = []
        for out in outputs:
            inst = out["instances"]
            results.append({"boxes": inst.pred_boxes.tensor, "scores": inst.scores, "labels": inst.pred_classes,
                            "masks": inst.pred_masks if inst.has("pred_masks") else None})
        return results
