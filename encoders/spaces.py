"""CLIP embedding spaces.

An embedding is only meaningful next to the space it lives in: a 1024-d ImageBind audio vector and
a 1024-d vector from some other CLIP are not interchangeable. Every encoder config names its space,
and every consumer (detector, diffusion pipeline) declares the space it expects, so a mismatch can be
refused with a message that names both.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ClipSpace:
    """A CLIP embedding space: the frozen image tower whose outputs define it.

    name: registry key, e.g. ``"openclip-vit-h-14"``.
    dim: embedding width.
    open_clip_model / open_clip_pretrained: how to build the image tower that defines the space
        with open_clip (``pretrained`` may be a tag or a local weights file; None for spaces whose
        tower ships with rebind or is built by the tests).
    description: one line for humans.
    """

    name: str
    dim: int
    open_clip_model: str | None = None
    open_clip_pretrained: str | None = None
    description: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)

    def __str__(self) -> str:
        return f"{self.name} ({self.dim}-d)"


_SPACES: dict[str, ClipSpace] = {}
_ALIASES: dict[str, str] = {}


def register_space(space: ClipSpace, overwrite: bool = False) -> ClipSpace:
    """Add a space to the registry (tests and users may register their own)."""
    existing = _SPACES.get(space.name)
    if existing is not None and existing != space and not overwrite:
        raise ValueError(
            f"CLIP space {space.name!r} is already registered as {existing}; "
            f"pass overwrite=True to replace it or pick another name."
        )
    _SPACES[space.name] = space
    for alias in space.aliases:
        _ALIASES[alias] = space.name
    return space


def get_space(space: "str | ClipSpace") -> ClipSpace:
    """Look a space up by name or alias; a ClipSpace passes through."""
    if isinstance(space, ClipSpace):
        return space
    key = _ALIASES.get(space, space)
    if key not in _SPACES:
        known = ", ".join(sorted(_SPACES))
        raise KeyError(f"unknown CLIP space {space!r}; known spaces: {known}. "
                       f"Register new ones with encoders.register_space(ClipSpace(...)).")
    return _SPACES[key]


def list_spaces() -> list[str]:
    return sorted(_SPACES)


def check_same_space(got: "str | ClipSpace", expected: "str | ClipSpace", what: str = "embedding") -> None:
    """Raise a ValueError naming both spaces (and the way across) when they differ."""
    got_s, exp_s = get_space(got), get_space(expected)
    if got_s.name == exp_s.name:
        return
    raise ValueError(
        f"{what} lives in CLIP space {got_s} but the target expects {exp_s}. "
        f"Use an encoder trained against the {exp_s.name} image tower "
        f"(python -m pretrain train ... --teacher {exp_s.open_clip_model or exp_s.name}), "
        f"or fit a bridge between the spaces on images alone "
        f"(python -m pretrain bridge --source {got_s.name} --target {exp_s.name}) "
        f"and pass it as bridge=."
    )


# The spaces the real-scale models live in.
register_space(ClipSpace(
    "openclip-vit-h-14", 1024, "ViT-H-14", "laion2b_s32b_b79k",
    "OpenCLIP ViT-H/14 (LAION-2B): ImageBind's space; Stable unCLIP (-h) conditions on it",
    aliases=("imagebind", "ViT-H-14"),
))
register_space(ClipSpace(
    "openai-vit-l-14", 768, "ViT-L-14", "openai",
    "OpenAI CLIP ViT-L/14: Stable unCLIP small (-l) conditions on it",
    aliases=("ViT-L-14",),
))
register_space(ClipSpace(
    "openai-vit-b-32", 512, "ViT-B-32", "openai",
    "OpenAI CLIP ViT-B/32: the text embeddings public Detic models classify with",
    aliases=("ViT-B-32", "detic"),
))
register_space(ClipSpace(
    "pocket", 256, None, None,
    "rebind's embedded pocket CLIP, trained offline on registry data (see MODEL_CARD.md)",
))
# Tiny spaces for tests and smoke runs: the models in them have random or test-trained weights.
register_space(ClipSpace("test-32", 32, None, None, "tiny test space (random weights)"))
register_space(ClipSpace("test-16", 16, None, None, "second tiny test space, for mismatch tests"))
