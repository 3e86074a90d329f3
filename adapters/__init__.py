"""rebind.adapters: feed audio/depth embeddings to models that consume CLIP embeddings.

    import adapters.detic
    detector = adapters.detic.from_audio("dog.wav")
    result = detector.detect("park.jpg")

Note: the import name ``adapters`` is shared with an unrelated PyPI package (adapter-transformers'
successor); install rebind in its own environment.
"""
from .embedding import Embeddings, as_embeddings, embed, mix

__all__ = ["Embeddings", "as_embeddings", "embed", "mix"]
