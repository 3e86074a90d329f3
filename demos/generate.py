"""Paint from a sound: the sound's embedding (optionally mixed with a text or an image) conditions
the unCLIP model in place of a CLIP image embedding."""
from __future__ import annotations

import math
from typing import Any

from .inputs import DemoInputError, Sound, check_image, check_sound
from .models import DemoModels

MAX_IMAGES = 4
MAX_STEPS = 100
MAX_SEED = 2**31 - 1


def images_from_sound(models: DemoModels, sound: Any, mix_text: str | None = None, mix_image: Any = None,
                      mix_weight: float = 0.3, seed: int | None = 0, steps: int | None = None,
                      num_images: int = 1, **generate_kwargs) -> list:
    """Sound (path or ``Sound``) -> ``num_images`` PIL images.

    mix_text / mix_image: mixed into the sound's embedding with ``mix_weight`` (the sound keeps
    ``1 - mix_weight``; with both, they share the weight equally) -- the paper's embedding arithmetic.
    seed: the same seed and inputs give the same images. steps: denoising steps (None: the pipeline's
    default). Other keywords go to ``UnclipGenerator.generate`` (guidance_scale, noise_level, ...).
    """
    import adapters
    import adapters.unclip as unclip

    checked = sound if isinstance(sound, Sound) else check_sound(sound)
    num_images = _whole(num_images, "number of images", 1, MAX_IMAGES)
    steps = None if steps is None else _whole(steps, "number of steps", 1, MAX_STEPS)
    seed = None if seed is None or seed == "" else _whole(seed, "seed", 0, MAX_SEED)
    text = (mix_text or "").strip()
    picture = None if mix_image is None or mix_image == "" else check_image(mix_image, "image to mix in")
    parts = [p for p in (text or None, picture) if p is not None]
    weight = float(mix_weight or 0.0)
    if parts and not 0.0 <= weight < 1.0:
        raise DemoInputError(f"The mix weight must be at least 0 and below 1 (the sound keeps the rest), "
                             f"got {weight:g}.")

    embedding = adapters.embed(str(checked.path), "audio", models.encoder("audio"), labels=[checked.name])
    if parts and weight > 0:
        mixed = [(embedding, 1.0 - weight)]
        if text:
            mixed.append((adapters.embed(text, "text", models.encoder("text")), weight / len(parts)))
        if picture is not None:
            mixed.append((adapters.embed([picture], "vision", models.encoder("vision"), labels=["image"]),
                          weight / len(parts)))
        embedding = adapters.mix(mixed)
    generator = models.generator()
    with models.generation_lock:
        return unclip.from_embeddings(embedding, pipeline=generator, bridge=models.unclip_bridge,
                                      num_images_per_prompt=num_images, num_inference_steps=steps, seed=seed,
                                      **generate_kwargs)


def _whole(value: Any, what: str, low: int, high: int) -> int:
    try:
        number = value if isinstance(value, int) and not isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        raise DemoInputError(f"The {what} must be a whole number, got {value!r}.") from None
    if not math.isfinite(number) or number != int(number) or not low <= number <= high:
        raise DemoInputError(f"The {what} must be a whole number from {low} to {high}, got {value!r}.")
    return int(number)
