"""The ONE place pocket models get their class names, prompts and class text embeddings.

    from pretrain.pocket.prompts import CLASS_NAMES, class_prompts, class_text_embeddings
    weights = class_text_embeddings(CLASS_NAMES)          # [40, 256], unit norm, pocket space

The pocket CLIP was trained on captions made from TEMPLATES (plus each category's own phrases
from categories.py), so every later step -- audio zero-shot, detector classifier, unCLIP judge --
should classify with ``class_text_embeddings`` (the mean of the unit embeddings of all templates,
re-normalised) rather than build its own prompt strings. One template alone also works
(``class_prompts(name)[k]``), just a little less well.

Light module: importing it pulls in neither torch nor open_clip.
"""

from __future__ import annotations

from .categories import CATEGORIES, BY_NAME

# Every category, in table order. xylophone has no picture (audio only) but keeps a text class, so
# image/audio classifiers see it as a candidate and the CLIP learns to keep it apart.
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES)

# Names that read as mass nouns or plurals: no indefinite article ("a photo of rain").
_NO_ARTICLE = frozenset({"rain", "fire", "footsteps", "drums", "applause", "thunder", "wind",
                         "glass breaking", "brass"})

# Caption templates; "{}" receives the name with its article ("a dog", "an owl", "rain").
# Visual templates for the image tower, sound templates because the audio step classifies
# through the same text tower, and the bare forms detectors and users type.
TEMPLATES: tuple[str, ...] = (
    "{}",
    "a photo of {}",
    "a picture of {}",
    "a drawing of {}",
    "an emoji of {}",
    "a cartoon of {}",
    "a close-up photo of {}",
    "a small photo of {}",
    "{} in a scene",
    "the sound of {}",
    "a recording of {}",
)


def with_article(name: str) -> str:
    """'dog' -> 'a dog', 'owl' -> 'an owl', 'rain' -> 'rain'."""
    name = name.strip()
    if name in _NO_ARTICLE:
        return name
    return ("an " if name[:1].lower() in "aeiou" else "a ") + name


def class_prompts(name: str) -> list[str]:
    """The canonical prompt ensemble for a class: the bare name, then every template."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"class name must be a non-empty string, got {name!r}")
    name = name.strip()
    return [name] + [t.format(with_article(name)) for t in TEMPLATES]


def training_captions(name: str) -> list[str]:
    """Captions the CLIP trains on for a class: the ensemble plus the category's own phrases.

    The category phrases ("a barking dog", "cattle", "a saxophone", "crickets chirping") teach the
    text tower synonyms the ensemble does not contain.
    """
    captions = class_prompts(name)
    category = BY_NAME.get(name)
    if category is not None:
        captions += [p for p in category.prompts if p not in captions]
    return captions


def class_text_embeddings(names=CLASS_NAMES, model="pocket"):
    """[len(names), D] unit class embeddings: mean of each class's prompt embeddings, re-normalised.

    model: an encoder config name (default: the shipped pocket CLIP), a MultimodalEncoder or its
    text ModalityEncoder -- anything ``encoders.embed_text`` accepts.
    """
    import torch  # noqa: PLC0415
    import torch.nn.functional as F  # noqa: PLC0415

    import encoders  # noqa: PLC0415

    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError("class_text_embeddings needs at least one class name")
    prompts = [class_prompts(n) for n in names]
    flat = [p for group in prompts for p in group]
    emb = encoders.embed_text(flat, model=model)
    out, start = [], 0
    for group in prompts:
        out.append(F.normalize(emb[start: start + len(group)].mean(0), dim=-1))
        start += len(group)
    return torch.stack(out)
