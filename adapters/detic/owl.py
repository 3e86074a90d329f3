"""OWLv2 / OWL-ViT (transformers) behind rebind's detector interface.

OWL's class head is a dot product between each image patch's class embedding and the query
embeddings (normally its own CLIP text embeddings). rebind keeps the queries in a buffer and calls
``image_embedder`` -> ``class_predictor(feats, queries, mask)`` + ``box_predictor`` itself, which
reproduces ``forward()`` exactly with any query embeddings.

The queries live in OWL's OWN CLIP space (its text/image towers were fine-tuned for detection), not
in OpenAI's or ImageBind's: to prompt OWL with sounds, use an audio encoder trained against OWL's
image tower, or a bridge fitted on images from another space into OWL's.

    owl = load_owl("google/owlv2-base-patch16-ensemble")        # a local folder when offline
    with adapters.detic.from_text(["a dog", "a ball"], detector=owl) as d:
        d.detect("park.jpg")
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from encoders.spaces import ClipSpace, get_space, register_space

from ..embedding import Embeddings
from .base import PromptableDetector
from .detections import select_detections

# The public OWL checkpoints, each its own CLIP space (query width = text hidden size).
OWL_SPACES = {
    "owlv2-base-patch16": (512, "OWLv2 base/16 (google/owlv2-base-patch16*): its own detection-tuned CLIP space"),
    "owlv2-large-patch14": (768, "OWLv2 large/14 (google/owlv2-large-patch14*): its own detection-tuned CLIP space"),
    "owlvit-base-patch32": (512, "OWL-ViT base/32 (google/owlvit-base-patch32): its own detection-tuned CLIP space"),
    "owlvit-base-patch16": (512, "OWL-ViT base/16 (google/owlvit-base-patch16): its own detection-tuned CLIP space"),
    "owlvit-large-patch14": (768, "OWL-ViT large/14 (google/owlvit-large-patch14): its own detection-tuned CLIP space"),
}
for _name, (_dim, _about) in OWL_SPACES.items():
    register_space(ClipSpace(_name, _dim, None, None, _about))


def owl_space_of(model: nn.Module) -> ClipSpace | None:
    """The registered space of a public OWL checkpoint, from the name it was loaded under."""
    name = str(getattr(model.config, "_name_or_path", "") or getattr(model, "name_or_path", "")).lower()
    for space in OWL_SPACES:
        if space in name:
            return get_space(space)
    return None


def load_owl(name_or_path: str, space: "str | ClipSpace | None" = None, device: str = "cpu") -> "OwlDetector":
    """``from_pretrained`` an OWLv2 / OWL-ViT checkpoint (hub id or local folder) with its processor."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(name_or_path)
    v2 = config.model_type == "owlv2"
    model_cls = transformers.Owlv2ForObjectDetection if v2 else transformers.OwlViTForObjectDetection
    processor_cls = transformers.Owlv2Processor if v2 else transformers.OwlViTProcessor
    model = model_cls.from_pretrained(name_or_path).to(device).eval()
    processor = processor_cls.from_pretrained(name_or_path)
    return OwlDetector(model, space=space, image_processor=processor.image_processor, tokenizer=processor.tokenizer)


class OwlDetector(nn.Module, PromptableDetector):
    """An ``Owlv2ForObjectDetection`` / ``OwlViTForObjectDetection`` prompted with query embeddings.

    space: the CLIP space of its queries; inferred for the public checkpoints, else required.
    image_processor: the model's processor (default: built from the model config, no download).
    tokenizer: only for ``embed_text`` (OWL's own text tower).
    Scores are OWL's own, sigmoid(class logit); boxes get one class each, NMS 0.5 and top 300, as Detic.
    """

    has_masks = False

    def __init__(self, model: nn.Module, space: "str | ClipSpace | None" = None, image_processor: Any = None,
                 tokenizer: Any = None, names: Sequence[str] | None = None, nms_threshold: float = 0.5,
                 detections_per_image: int = 300):
        super().__init__()
        if not hasattr(model, "class_predictor") or not hasattr(model, "image_embedder"):
            raise TypeError(f"expected a transformers Owlv2ForObjectDetection / OwlViTForObjectDetection, "
                            f"got {type(model).__name__}")
        self.model = model
        self.is_v2 = hasattr(model, "objectness_predictor")
        query_dim = model.class_head.dense0.out_features
        space = get_space(space) if space is not None else owl_space_of(model)
        if space is None:
            raise ValueError(f"cannot tell which CLIP space this OWL model's {query_dim}-d queries live in; pass "
                             f"space=... (public checkpoints: {', '.join(OWL_SPACES)}; register others with "
                             f"encoders.register_space(ClipSpace(name, {query_dim})))")
        if space.dim != query_dim:
            raise ValueError(f"this OWL model takes {query_dim}-d queries but space {space} was declared")
        self.space = space
        self.image_processor = image_processor or self._default_image_processor()
        self.tokenizer = tokenizer
        self.nms_threshold, self.detections_per_image = nms_threshold, detections_per_image
        self.register_buffer("class_embeddings", torch.zeros(0, query_dim), persistent=False)  # [C, D] queries
        self.class_names: list[str] = []
        if names is not None:
            raise ValueError("OWL has no built-in classes; set them with prompt()/set_class_embeddings()")

    def _default_image_processor(self):
        import transformers

        size = self.model.config.vision_config.image_size
        cls = transformers.Owlv2ImageProcessor if self.is_v2 else transformers.OwlViTImageProcessor
        if self.is_v2:
            return cls(size={"height": size, "width": size})
        return cls(size={"height": size, "width": size}, crop_size={"height": size, "width": size})

    # ------------------------------------------------------------------- class-embedding swap
    def get_class_embeddings(self) -> torch.Tensor:
        return self.class_embeddings.detach().float().cpu().clone()

    def _classifier_state(self):
        return self.class_embeddings, list(self.class_names)

    def _restore_classifier_state(self, state) -> None:
        queries, names = state
        current = self.class_embeddings
        self.class_embeddings = queries.to(current.device) if queries.device != current.device else queries
        self.class_names = names

    def _classifier_token(self) -> tuple:
        return (self.class_embeddings,)

    def _install_class_embeddings(self, vectors: torch.Tensor, names: list[str]) -> None:
        device = next(self.model.parameters()).device
        self.class_embeddings = F.normalize(vectors.float(), dim=-1).to(device)
        self.class_names = list(names)

    # ------------------------------------------------------------------------- text queries
    @torch.inference_mode()
    def embed_text(self, texts: Sequence[str]) -> Embeddings:
        """OWL's own text tower: strings -> unit query ``Embeddings`` in this detector's space."""
        if self.tokenizer is None:
            raise RuntimeError("this OwlDetector has no tokenizer; build it with load_owl(...) or pass "
                               "tokenizer= (the checkpoint's processor.tokenizer)")
        texts = [texts] if isinstance(texts, str) else list(texts)
        tokens = self.tokenizer(texts, padding="max_length", truncation=True, return_tensors="pt")
        device = next(self.model.parameters()).device
        owl = self.model.owlv2 if self.is_v2 else self.model.owlvit
        out = owl.get_text_features(input_ids=tokens["input_ids"].to(device),
                                    attention_mask=tokens["attention_mask"].to(device))
        features = out if isinstance(out, torch.Tensor) else out.pooler_output
        return Embeddings(F.normalize(features.float(), dim=-1).cpu(), self.space, texts, "text")

    # ------------------------------------------------------------------------------- detect
    def predict(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Preprocessed images -> (class logits [B, P, C] against the installed queries,
        boxes [B, P, 4] cxcywh in [0, 1] of the processed (padded) image)."""
        feature_map = self.model.image_embedder(pixel_values=pixel_values)[0]
        b, h, w, d = feature_map.shape
        feats = feature_map.reshape(b, h * w, d)
        queries = self.class_embeddings.to(feats.dtype)[None].expand(b, -1, -1)
        mask = torch.ones(queries.shape[:2], dtype=torch.bool, device=feats.device)
        logits = self.model.class_predictor(feats, queries, mask)[0]
        return logits, self.model.box_predictor(feats, feature_map)

    def _detect_images(self, images: list, threshold: float) -> list[dict]:
        from torchvision.ops import box_convert

        device = next(self.model.parameters()).device
        pixels = self.image_processor(images=[np.array(img) for img in images], return_tensors="pt")["pixel_values"]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                logits, boxes = self.predict(pixels.to(device, next(self.model.parameters()).dtype))
        finally:
            self.model.train(was_training)
        results = []
        for img, lg, bx in zip(images, logits, boxes):
            w, h = img.size
            # OWLv2 pads to a square at the bottom/right: boxes are fractions of the padded side.
            # OWL-ViT stretches the image: fractions of each side.
            scale = torch.tensor([max(w, h)] * 2 if self.is_v2 else [w, h], device=bx.device, dtype=torch.float32)
            xyxy = box_convert(bx.float(), "cxcywh", "xyxy") * scale.repeat(2)
            xyxy[:, 0::2] = xyxy[:, 0::2].clamp(0, w)
            xyxy[:, 1::2] = xyxy[:, 1::2].clamp(0, h)
            b, s, l = select_detections(xyxy, lg.float().sigmoid(), threshold, self.nms_threshold,
                                        self.detections_per_image, one_class_per_box=True)
            results.append({"boxes": b, "scores": s, "labels": l})
        return results
