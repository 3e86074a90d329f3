"""The example sounds and scenes shipped in ``demos/examples/`` (held-out pocket test data; sources and
licences in ``demos/examples/ATTRIBUTION.md``)."""
from __future__ import annotations

from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
SOUNDS_DIR = EXAMPLES_DIR / "sounds"
SCENES_DIR = EXAMPLES_DIR / "scenes"


def example_sounds() -> dict[str, Path]:
    """{name: path} of the bundled sounds (the name is the category: dog, drums, ...)."""
    return {p.stem: p for p in sorted(SOUNDS_DIR.glob("*.wav"))}


def example_scenes() -> dict[str, Path]:
    """{name: path} of the bundled scenes."""
    return {p.stem: p for p in sorted(SCENES_DIR.glob("*.png"))}


def example_sound(name: str) -> str:
    """Path of the bundled sound ``name`` (e.g. "dog")."""
    return str(_pick(example_sounds(), name, "sound"))


def example_scene(name: str) -> str:
    """Path of the bundled scene ``name`` (e.g. "scene_dog_drums")."""
    return str(_pick(example_scenes(), name, "scene"))


def _pick(found: dict[str, Path], name: str, what: str) -> Path:
    if name not in found:
        raise KeyError(f"no bundled example {what} {name!r}; there are {', '.join(found) or 'none'} "
                       f"in {EXAMPLES_DIR}")
    return found[name]
