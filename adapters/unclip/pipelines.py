"""unCLIP pipelines as rebind sees them: a diffusers pipeline + the CLIP space its embedding slot expects.

``UnclipGenerator`` wraps one pipeline (never copies or modifies it) and knows
* its kind: ``"stable-unclip"`` (``StableUnCLIPImg2ImgPipeline``, the embedding goes in as
  ``image_embeds``) or ``"karlo"`` (``UnCLIPPipeline``, the embedding replaces the prompt embedding at
  the prior's input, as the ImageBind paper did with DALL-E 2);
* its space: recorded in the folder (``rebind_space.json``), given as ``space=``, or inferred from the
  embedding width (1024 -> openclip-vit-h-14, 768 -> openai-vit-l-14);
* the norm its slot was trained on (see ``target_norm``).
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from encoders.inputs import InputError
from encoders.spaces import ClipSpace, get_space, list_spaces, register_space

from ..embedding import Embeddings, as_embeddings

log = logging.getLogger(__name__)

DEFAULT_PIPELINE_DIR = Path(__file__).resolve().parent.parent / "weights" / "pocket_unclip"
NOTE_FILE = "rebind_space.json"

# Embedding width -> the space released pipelines of that kind condition on.
KNOWN_DIMS = {
    "stable-unclip": {1024: "openclip-vit-h-14", 768: "openai-vit-l-14"},
    "karlo": {768: "openai-vit-l-14"},
}

# When a Stable unCLIP pipeline carries no embedding statistics (its normalizer is the identity, as in
# the -h release, whose training used no clip_stats_path) and none were recorded, "stats" falls back to
# this norm: the typical norm of raw (unnormalised) CLIP image embeddings. Evidence, not a measurement
# of ViT-H here: OpenAI ViT-L/14@336 raw vs unit features differ by x20.8 in the public example of
# rom1504/clip-retrieval#290; BindDiffusion (on unclip-h) rescales ImageBind audio to norm 20 ("typically
# gives better result"); Anything2Image feeds ImageBind audio at its fixed x20 scale.
FALLBACK_IMAGE_NORM = 20.0

# Captions whose mean text-embedding norm stands for "what Karlo's prior is fed" (norm="stats").
REFERENCE_CAPTIONS = (
    "a photo", "a photo of a dog", "a painting of a mountain landscape", "a close-up photo of an object",
    "people walking in a city street", "an animal in the wild", "a musical instrument on a stage",
    "a red car on a road",
)

# Keys a folder note may set as generation defaults (rebind_space.json "generation_defaults").
GENERATION_DEFAULT_KEYS = ("num_inference_steps", "guidance_scale", "noise_level")

GENERATION_KWARGS_REFUSED = ("image", "image_embeds", "prompt_embeds", "negative_prompt_embeds",
                             "text_model_output", "text_attention_mask", "output_type", "return_dict")


def pipeline_kind(pipe: Any) -> str:
    from diffusers import StableUnCLIPImg2ImgPipeline, UnCLIPPipeline

    if isinstance(pipe, StableUnCLIPImg2ImgPipeline):
        return "stable-unclip"
    if isinstance(pipe, UnCLIPPipeline):
        return "karlo"
    raise TypeError(
        f"cannot use a {type(pipe).__name__} as an unCLIP pipeline; supported are diffusers' "
        f"StableUnCLIPImg2ImgPipeline (stabilityai/stable-diffusion-2-1-unclip[-small], rebind's pocket "
        f"unCLIP) and UnCLIPPipeline (kakaobrain/karlo-v1-alpha)")


def embedding_dim(pipe: Any, kind: str) -> int:
    """Width of the embedding slot rebind fills."""
    if kind == "stable-unclip":
        return int(pipe.image_normalizer.config.embedding_dim)
    return int(pipe.prior.config.embedding_dim)


def read_note(folder: "str | os.PathLike | None") -> dict:
    if not folder:
        return {}
    path = Path(folder) / NOTE_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"'{path}' is not valid JSON ({e}); rewrite it with UnclipGenerator.save()") from None


def _space_from_note(note: dict, where: str) -> ClipSpace | None:
    name = note.get("space")
    if not name:
        return None
    try:
        return get_space(name)
    except KeyError:
        if not isinstance(note.get("dim"), int):
            raise InputError(f"{where} records the unknown CLIP space {name!r} without its dim; "
                             f"register it with encoders.register_space(ClipSpace({name!r}, DIM))") from None
        log.info("registering CLIP space %r (%d-d) recorded in %s", name, note["dim"], where)
        return register_space(ClipSpace(name, note["dim"], None, None, note.get("space_description", "")))


def infer_space(pipe: Any, kind: str | None = None) -> ClipSpace:
    """The space a pipeline's embedding slot lives in, from its recorded note or its embedding width."""
    kind = kind or pipeline_kind(pipe)
    dim = embedding_dim(pipe, kind)
    folder = getattr(pipe, "name_or_path", None)
    space = _space_from_note(read_note(folder) if folder and Path(str(folder)).is_dir() else {},
                             f"{folder}/{NOTE_FILE}")
    if space is not None:
        return space
    name = KNOWN_DIMS[kind].get(dim)
    if name is None:
        same = [s for s in list_spaces() if get_space(s).dim == dim]
        hint = f" (registered {dim}-d spaces: {', '.join(same)})" if same else ""
        raise InputError(
            f"cannot tell which CLIP space this {kind} pipeline's {dim}-d embeddings live in{hint}; "
            f"pass space=... to load_pipeline, or save the pipeline with its space recorded "
            f"(UnclipGenerator(pipe, space=...).save(folder))")
    log.info("%s pipeline with %d-d embeddings: assuming CLIP space %s", kind, dim, name)
    return get_space(name)


class UnclipGenerator:
    """A diffusers unCLIP pipeline plus the CLIP space and norm of its embedding slot.

        gen = adapters.unclip.load_pipeline("sd21-unclip-h/", device="cuda", dtype=torch.float16)
        images = gen.generate(adapters.embed("dog.wav", "audio", encoder), seed=0)

    The pipeline object is used as is (``gen.pipe``); rebind never changes its components or config.
    """

    def __init__(self, pipe: Any, space: "str | ClipSpace | None" = None, image_embed_norm: float | None = None):
        self.pipe = pipe
        self.kind = pipeline_kind(pipe)
        self.dim = embedding_dim(pipe, self.kind)
        folder = getattr(pipe, "name_or_path", None)
        note = read_note(folder) if folder and Path(str(folder)).is_dir() else {}
        if space is None:
            self.space = infer_space(pipe, self.kind)
        else:
            self.space = get_space(space)
            if note.get("space") and note["space"] != self.space.name:
                raise InputError(f"space={self.space.name!r} contradicts the space {note['space']!r} recorded in "
                                 f"{folder}/{NOTE_FILE}; drop space= (or fix the note)")
        if self.space.dim != self.dim:
            raise InputError(
                f"this {self.kind} pipeline takes {self.dim}-d embeddings but space {self.space} is "
                f"{self.space.dim}-d; pass the space the pipeline was trained in")
        if image_embed_norm is None:
            image_embed_norm = note.get("image_embed_norm")
        if image_embed_norm is not None and not (float(image_embed_norm) > 0 and math.isfinite(image_embed_norm)):
            raise InputError(f"image_embed_norm must be a positive number, got {image_embed_norm!r}")
        self.image_embed_norm = None if image_embed_norm is None else float(image_embed_norm)
        # Sampling settings the pipeline's trainer measured best (the pocket unCLIP records them): used
        # when generate() is not told otherwise, instead of diffusers' defaults (guidance 10, tuned for SD).
        defaults = note.get("generation_defaults") or {}
        unknown = set(defaults) - set(GENERATION_DEFAULT_KEYS)
        if unknown:
            raise InputError(f"{folder}/{NOTE_FILE}: unknown generation_defaults {sorted(unknown)}; "
                             f"known: {', '.join(GENERATION_DEFAULT_KEYS)}")
        self.generation_defaults = dict(defaults)
        self._measured_norm: tuple[float, str] | None = None

    def __repr__(self) -> str:
        return (f"UnclipGenerator({type(self.pipe).__name__}, kind={self.kind!r}, space={self.space}, "
                f"device={self.device}, dtype={self.dtype})")

    # ------------------------------------------------------------------------------ device / dtype

    @property
    def _slot_module(self):
        return self.pipe.unet if self.kind == "stable-unclip" else self.pipe.prior

    @property
    def device(self) -> torch.device:
        dev = getattr(self.pipe, "_execution_device", None)  # honours cpu offload hooks
        return torch.device(dev) if dev is not None else self._slot_module.device

    @property
    def dtype(self) -> torch.dtype:
        return self._slot_module.dtype

    # ------------------------------------------------------------------------------------- norms

    def target_norm(self) -> tuple[float, str]:
        """(norm, where it comes from) that ``norm="stats"`` rescales embeddings to.

        1. ``image_embed_norm`` recorded in the pipeline folder or given to load_pipeline: the measured
           mean norm of the embeddings the pipeline was trained on (the pocket packager records it).
        2. Stable unCLIP whose normalizer holds statistics (mean mu, std sigma per dimension, as the
           -small/-l release with Karlo's ViT-L/14 stats): sqrt(|mu|^2 + |sigma|^2), the expected norm
           of an embedding drawn from those statistics.
        3. Karlo: the mean norm of the prompt embeddings the pipeline's own text encoder produces for
           a fixed set of captions (``REFERENCE_CAPTIONS``) -- the slot takes text embeddings.
        4. Stable unCLIP with an identity normalizer (the -h release, trained without statistics):
           ``FALLBACK_IMAGE_NORM`` = 20, the typical raw CLIP image-embedding norm.
        """
        if self.image_embed_norm is not None:
            return self.image_embed_norm, "recorded image_embed_norm"
        if self._measured_norm is None:
            self._measured_norm = self._measure_norm()
        return self._measured_norm

    @torch.no_grad()
    def _measure_norm(self) -> tuple[float, str]:
        if self.kind == "stable-unclip":
            norm = self.pipe.image_normalizer
            mean, std = norm.mean.detach().float().cpu(), norm.std.detach().float().cpu()
            if torch.allclose(mean, torch.zeros_like(mean)) and torch.allclose(std, torch.ones_like(std)):
                return FALLBACK_IMAGE_NORM, "fallback (identity normalizer: no statistics recorded)"
            return float((mean.pow(2).sum() + std.pow(2).sum()).sqrt()), "normalizer statistics"
        tok, enc = self.pipe.tokenizer, self.pipe.text_encoder
        ids = tok(list(REFERENCE_CAPTIONS), padding="max_length", max_length=tok.model_max_length,
                  truncation=True, return_tensors="pt").input_ids
        embeds = enc(ids.to(enc.device)).text_embeds.float()
        return float(embeds.norm(dim=-1).mean()), "text-encoder prompt embeddings"

    def resolve_norm(self, norm: "str | float") -> tuple[float, str]:
        """``"unit"`` | ``"stats"`` (alias ``"image-stats"``) | a positive number -> (norm, reason)."""
        if isinstance(norm, str):
            key = norm.lower()
            if key == "unit":
                return 1.0, "unit"
            if key in ("stats", "image-stats"):
                return self.target_norm()
        elif isinstance(norm, (int, float)) and not isinstance(norm, bool):
            if norm > 0 and math.isfinite(norm):
                return float(norm), "fixed"
        raise InputError(f"norm={norm!r}: expected 'unit', 'stats' (the statistics the pipeline was "
                         f"trained on; alias 'image-stats') or a positive number such as 20.0")

    # ------------------------------------------------------------------------------------ inputs

    def prepare(self, embeddings: Any, norm: "str | float" = "stats", bridge: Any = None,
                space: "str | ClipSpace | None" = None) -> torch.Tensor:
        """Embeddings -> the [N, D] tensor the pipeline receives: moved into the pipeline's space
        (through ``bridge`` when the spaces differ), rescaled to ``norm``, cast to its device/dtype.

        A raw tensor/array without ``space`` is taken to be in the pipeline's space.
        """
        if not isinstance(embeddings, Embeddings):
            embeddings = as_embeddings(embeddings, space=space or self.space)
        emb = embeddings.to_space(self.space, bridge)
        scale, _ = self.resolve_norm(norm)
        vectors = F.normalize(emb.vectors.float(), dim=-1) * scale
        return vectors.to(device=self.device, dtype=self.dtype)

    # -------------------------------------------------------------------------------- generation

    def generate(self, embeddings: Any, *, norm: "str | float" = "stats", bridge: Any = None,
                 space: "str | ClipSpace | None" = None, prompt: "str | Sequence[str]" = "",
                 negative_prompt: "str | Sequence[str] | None" = None, num_images_per_prompt: int = 1,
                 num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 noise_level: int | None = None, generator: "torch.Generator | None" = None,
                 seed: int | None = None, height: int | None = None, width: int | None = None,
                 **pipeline_kwargs) -> list:
        """One image per embedding row (times ``num_images_per_prompt``), input-major, as PIL images.

        prompt: text for the pipeline's own text path -- Stable unCLIP's cross-attention prompt,
            Karlo's token hidden states (the pooled slot holds the embedding). Default "" (none).
        num_inference_steps / guidance_scale / noise_level / height / width: the pipeline's own
            arguments (None = the ``generation_defaults`` recorded in the pipeline folder's note, else
            the pipeline default). For Karlo, num_inference_steps sets the prior and
            decoder steps, guidance_scale the decoder guidance; noise_level/height/width do not apply.
        generator or seed: fix the randomness (seed builds a CPU generator, so results do not depend on
            the device's RNG).
        Other keyword arguments go to the pipeline unchanged (eta, latents, prior_guidance_scale, ...).
        """
        refused = sorted(set(pipeline_kwargs) & set(GENERATION_KWARGS_REFUSED))
        if refused:
            raise InputError(f"{', '.join(refused)} cannot be passed here: rebind fills the embedding slot "
                             f"and returns PIL images; call gen.pipe(...) directly for other uses")
        if seed is not None and generator is not None:
            raise InputError("pass either seed= or generator=, not both")
        if seed is not None:
            generator = torch.Generator(device="cpu").manual_seed(int(seed))
        if not isinstance(num_images_per_prompt, int) or num_images_per_prompt < 1:
            raise InputError(f"num_images_per_prompt must be a positive integer, got {num_images_per_prompt!r}")
        defaults = self.generation_defaults
        num_inference_steps = defaults.get("num_inference_steps") if num_inference_steps is None else num_inference_steps
        guidance_scale = defaults.get("guidance_scale") if guidance_scale is None else guidance_scale
        noise_level = defaults.get("noise_level") if noise_level is None else noise_level
        vectors = self.prepare(embeddings, norm=norm, bridge=bridge, space=space)
        n = len(vectors)
        prompts = _per_row(prompt, n, "prompt")
        if self.kind == "stable-unclip":
            args = dict(image_embeds=vectors, prompt=prompts, num_images_per_prompt=num_images_per_prompt,
                        generator=generator, output_type="pil")
            if negative_prompt is not None:
                args["negative_prompt"] = _per_row(negative_prompt, n, "negative_prompt")
            for key, value in (("num_inference_steps", num_inference_steps), ("guidance_scale", guidance_scale),
                               ("noise_level", noise_level), ("height", height), ("width", width)):
                if value is not None:
                    args[key] = value
            args.update(pipeline_kwargs)
            return list(self.pipe(**args).images)
        return self._generate_karlo(vectors, prompts, negative_prompt, num_images_per_prompt,
                                    num_inference_steps, guidance_scale, noise_level, generator, height,
                                    width, pipeline_kwargs)

    @torch.no_grad()
    def _generate_karlo(self, vectors, prompts, negative_prompt, num_images_per_prompt, num_inference_steps,
                        guidance_scale, noise_level, generator, height, width, pipeline_kwargs) -> list:
        pipe = self.pipe
        if noise_level is not None:
            raise InputError("noise_level applies to Stable unCLIP only; Karlo's prior has no embedding "
                             "noise augmentation (use prior_guidance_scale / guidance_scale instead)")
        if negative_prompt is not None:
            raise InputError("Karlo (UnCLIPPipeline) has no negative prompt: its unconditional branch is "
                             "always the empty prompt")
        size = pipe.super_res_first.config.sample_size
        for name, value in (("height", height), ("width", width)):
            if value is not None and value != size:
                raise InputError(f"{name}={value}: Karlo generates {size}x{size} images only; resize afterwards")
        # The pooled slot (text_embeds) holds the embedding; the token slot (last_hidden_state + mask)
        # holds the pipeline's own encoding of `prompt` -- "" by default, the same tokens as the
        # unconditional branch, so guidance pushes exactly along the embedding.
        tok, enc = pipe.tokenizer, pipe.text_encoder
        text = tok(prompts, padding="max_length", max_length=tok.model_max_length, truncation=True,
                   return_tensors="pt")
        device = self.device
        hidden = enc(text.input_ids.to(device)).last_hidden_state
        mask = text.attention_mask.bool().to(device)
        args = dict(text_model_output=(vectors, hidden), text_attention_mask=mask,
                    num_images_per_prompt=num_images_per_prompt, generator=generator, output_type="pil")
        if num_inference_steps is not None:
            args["prior_num_inference_steps"] = num_inference_steps
            args["decoder_num_inference_steps"] = num_inference_steps
        if guidance_scale is not None:
            args["decoder_guidance_scale"] = guidance_scale
        args.update(pipeline_kwargs)
        return list(pipe(**args).images)

    # ------------------------------------------------------------------------------------ saving

    def save(self, folder: "str | os.PathLike", image_embed_norm: float | None = None) -> Path:
        """``save_pretrained`` plus ``rebind_space.json`` recording the space (and the norm, if known)."""
        folder = Path(folder)
        self.pipe.save_pretrained(str(folder), safe_serialization=True)
        norm = image_embed_norm if image_embed_norm is not None else self.image_embed_norm
        note = {"space": self.space.name, "dim": self.space.dim, "kind": self.kind,
                "space_description": self.space.description}
        if norm is not None:
            note["image_embed_norm"] = float(norm)
        if self.generation_defaults:
            note["generation_defaults"] = dict(self.generation_defaults)
        tmp = folder / (NOTE_FILE + ".tmp")
        tmp.write_text(json.dumps(note, indent=2) + "\n")
        os.replace(tmp, folder / NOTE_FILE)
        return folder


def _per_row(value: "str | Sequence[str]", n: int, name: str) -> list[str]:
    if isinstance(value, str):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise InputError(f"{name} has {len(values)} entries for {n} embeddings; give one string or {n}")
    return values


# ------------------------------------------------------------------------------------------ loading

_cache: dict[tuple, UnclipGenerator] = {}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def clear_cache() -> None:
    """Forget the pipelines ``load_pipeline`` cached for the default and for folder paths."""
    _cache.clear()


def load_pipeline(pipeline: Any = None, space: "str | ClipSpace | None" = None, device: Any = None,
                  dtype: torch.dtype | None = None, image_embed_norm: float | None = None,
                  cache: bool = True) -> UnclipGenerator:
    """A pipeline object, a local folder, a hub name, or None (the embedded pocket unCLIP) -> UnclipGenerator.

    device / dtype: where to put it (None: leave as loaded, CPU for folders). Folders and the default
    are cached per (path, device, dtype); pass the returned generator on to avoid reloading.
    A pipeline object is wrapped as is: device/dtype, when given, move it (diffusers' ``.to``).
    """
    if isinstance(pipeline, UnclipGenerator):
        if space is not None and get_space(space).name != pipeline.space.name:
            raise InputError(f"the generator's pipeline lives in {pipeline.space}, not {get_space(space)}")
        if device is not None or dtype is not None:
            pipeline.pipe.to(device=device, dtype=dtype)
        return pipeline
    if pipeline is None or isinstance(pipeline, (str, os.PathLike)):
        folder = _resolve_folder(pipeline)
        key = (str(folder), str(device), str(dtype), None if space is None else get_space(space).name,
               image_embed_norm)
        if cache and key in _cache:
            return _cache[key]
        gen = UnclipGenerator(_from_pretrained(folder, dtype), space, image_embed_norm)
        if device is not None:
            gen.pipe.to(device)
        if cache:
            _cache[key] = gen
        return gen
    if not hasattr(pipeline, "components"):  # not a diffusers pipeline at all
        raise TypeError(f"pipeline must be None, a folder path, a hub name, an UnclipGenerator or a diffusers "
                        f"StableUnCLIPImg2ImgPipeline / UnCLIPPipeline, got {type(pipeline).__name__}")
    pipeline_kind(pipeline)  # a diffusers pipeline of another kind: says which kinds work
    if device is not None or dtype is not None:
        pipeline.to(device=device, dtype=dtype)
    return UnclipGenerator(pipeline, space, image_embed_norm)


def _resolve_folder(pipeline: "str | os.PathLike | None") -> "Path | str":
    if pipeline is None:
        if not (DEFAULT_PIPELINE_DIR / "model_index.json").is_file():
            raise FileNotFoundError(
                f"the embedded default unCLIP pipeline (pocket) is not installed yet: "
                f"{DEFAULT_PIPELINE_DIR} holds no diffusers pipeline. Pass pipeline= a "
                f"StableUnCLIPImg2ImgPipeline / UnCLIPPipeline object or a local folder, e.g. a downloaded "
                f"stabilityai/stable-diffusion-2-1-unclip: "
                f"adapters.unclip.from_audio('dog.wav', pipeline='/models/sd21-unclip-h', encoder=...)")
        return DEFAULT_PIPELINE_DIR
    path = Path(pipeline).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise FileNotFoundError(f"'{path}' is not a diffusers pipeline folder (no model_index.json); "
                                    f"save one with pipe.save_pretrained(folder) or UnclipGenerator.save(folder)")
        return path.resolve()
    if path.exists():
        raise InputError(f"pipeline '{path}' is a file; pass the pipeline's folder (with model_index.json)")
    if _HUB_ID.match(str(pipeline)) and not str(pipeline).startswith((".", "~")):
        return str(pipeline)  # a hub name: tried from the local cache only when offline
    raise FileNotFoundError(f"pipeline folder '{path}' does not exist (relative paths resolve from {os.getcwd()})")


def _from_pretrained(source: "Path | str", dtype: torch.dtype | None):
    from diffusers import DiffusionPipeline

    kwargs = {"torch_dtype": dtype} if dtype is not None else {}
    if isinstance(source, Path):
        index = json.loads((source / "model_index.json").read_text())
        if index.get("_class_name") == "UnCLIPPipeline":
            return _load_karlo_folder(source, index, dtype)
        return DiffusionPipeline.from_pretrained(str(source), **kwargs)
    try:
        return DiffusionPipeline.from_pretrained(source, **kwargs)
    except Exception as e:  # offline: LocalEntryNotFoundError / OSError / ValueError, depending on version
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OSError(
            f"could not load '{source}' as a hub model ({first}). rebind runs without the model hub: "
            f"download the model where there is network (`hf download {source} --local-dir "
            f"{source.split('/')[-1]}`), copy the folder here and pass its path: "
            f"load_pipeline('/path/to/{source.split('/')[-1]}')") from None


def _load_karlo_folder(folder: Path, index: dict, dtype: torch.dtype | None):
    """Load an ``UnCLIPPipeline`` folder component by component.

    diffusers 0.42 cannot resolve the deprecated ``UnCLIPTextProjModel`` named in a Karlo
    ``model_index.json`` -- neither the hub's ``["unclip", ...]`` nor its own saved
    ``["diffusers", ...]`` -- so ``from_pretrained`` fails on every Karlo folder.
    """
    import diffusers
    import transformers
    from diffusers import UnCLIPPipeline
    from diffusers.pipelines.deprecated.unclip.text_proj import UnCLIPTextProjModel

    components = {}
    for name, entry in index.items():
        if name.startswith("_") or not isinstance(entry, list) or len(entry) != 2:
            continue
        library, class_name = entry
        if class_name is None:
            components[name] = None
            continue
        if name == "text_proj":
            cls = UnCLIPTextProjModel
        else:
            cls = getattr(transformers if library == "transformers" else diffusers, class_name, None)
            if cls is None:
                raise InputError(f"{folder}/model_index.json names {library}.{class_name} for {name!r}, "
                                 f"which this environment does not have")
        is_model = isinstance(cls, type) and issubclass(cls, torch.nn.Module)
        extra = {"torch_dtype": dtype} if is_model and dtype is not None else {}
        components[name] = cls.from_pretrained(str(folder / name), **extra)
    pipe = UnCLIPPipeline(**components)
    pipe.register_to_config(_name_or_path=str(folder))
    return pipe


# -------------------------------------------------------------------------------- packaging (pocket)

def build_pipeline(unet: Any, vae: Any, space: "str | ClipSpace", *, embedding_mean: Any = None,
                   embedding_std: Any = None, image_embed_norm: float | None = None, scheduler: Any = None,
                   image_noising_scheduler: Any = None, text_encoder: Any = None, tokenizer: Any = None,
                   image_encoder: Any = None, feature_extractor: Any = None) -> UnclipGenerator:
    """Assemble a ``StableUnCLIPImg2ImgPipeline`` around a trained UNet and VAE; ``.save(folder)`` it.

    Needed (trained):
      unet: ``UNet2DConditionModel`` with ``class_embed_type="projection"`` and
        ``projection_class_embeddings_input_dim = 2 * space.dim`` (the pipeline passes
        ``cat(noised embedding, sinusoidal embedding of noise_level)`` as ``class_labels``; the
        unconditional branch of guidance is all zeros), ``in_channels == vae latent_channels``.
      vae: ``AutoencoderKL``; its ``config.scaling_factor`` must be the one the UNet's latents were
        scaled by in training.
      space: the CLIP space of the embeddings the UNet was trained on (recorded in the folder).
    Optional (recommended):
      embedding_mean / embedding_std: per-dimension statistics of the training embeddings, in the
        scale they were fed; they fill the normalizer that ``noise_level`` noising standardises with
        (default mean 0 / std 1, i.e. noise added in raw units, as the -h release does).
      image_embed_norm: the mean norm of the training embeddings; ``norm="stats"`` rescales inputs to
        it (rebind's encoders give unit vectors).
      scheduler: the sampling scheduler, on the training noise schedule and prediction type
        (default: DDIM, scaled-linear 0.00085..0.012, v-prediction, as SD 2.x).
      image_noising_scheduler: the embedding-noise schedule used for noise augmentation in training
        (default: DDPM squaredcos_cap_v2, 1000 steps, as Stable unCLIP).
    Stand-ins (built when None; diffusers requires the components, rebind never uses them):
      text_encoder + tokenizer: a 1-layer CLIP text model whose hidden states are exactly ZERO for any
        prompt (width = ``unet.config.cross_attention_dim``), and an offline 3-token tokenizer. Train
        the UNet with ``encoder_hidden_states = zeros(B, 77, cross_attention_dim)`` (or without
        cross-attention blocks) and it sees the same at inference.
      image_encoder + feature_extractor: a 1-layer CLIP vision model (the pipeline reads its dtype even
        when given ``image_embeds``); its outputs are meaningless, never pass ``image=``.
    To train with exactly the pipeline's conditioning, build it first around the untrained UNet and
    use ``gen.pipe.noise_image_embeddings(embeds, noise_level)`` for the class labels.
    """
    from diffusers import StableUnCLIPImg2ImgPipeline
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer

    from .configs import (embedding_noising_scheduler, sd2_sampling_scheduler, standin_image_encoder,
                          standin_text_encoder, standin_tokenizer)

    space = get_space(space)
    cfg = unet.config
    if cfg.class_embed_type != "projection" or cfg.projection_class_embeddings_input_dim != 2 * space.dim:
        raise InputError(
            f"the UNet must take the embedding as class labels: class_embed_type='projection' and "
            f"projection_class_embeddings_input_dim={2 * space.dim} (2 x the {space.dim}-d of {space.name}); "
            f"got class_embed_type={cfg.class_embed_type!r}, "
            f"projection_class_embeddings_input_dim={cfg.projection_class_embeddings_input_dim}")
    if cfg.in_channels != vae.config.latent_channels:
        raise InputError(f"the UNet takes {cfg.in_channels} latent channels but the VAE makes "
                         f"{vae.config.latent_channels}")
    cross = cfg.cross_attention_dim
    if isinstance(cross, (list, tuple)):
        cross = cross[0]
    if text_encoder is None:
        text_encoder = standin_text_encoder(int(cross))
    elif text_encoder.config.hidden_size != cross:
        raise InputError(f"text encoder width {text_encoder.config.hidden_size} != UNet cross_attention_dim {cross}")
    if image_encoder is None:
        image_encoder, default_fx = standin_image_encoder(space.dim)
        feature_extractor = feature_extractor or default_fx
    normalizer = StableUnCLIPImageNormalizer(embedding_dim=space.dim)
    with torch.no_grad():
        for value, param, name in ((embedding_mean, normalizer.mean, "embedding_mean"),
                                   (embedding_std, normalizer.std, "embedding_std")):
            if value is None:
                continue
            t = torch.as_tensor(value, dtype=torch.float32).reshape(-1)
            if t.numel() != space.dim or not torch.isfinite(t).all():
                raise InputError(f"{name} must hold {space.dim} finite numbers, got {t.numel()}")
            if name == "embedding_std" and (t <= 0).any():
                raise InputError("embedding_std must be positive in every dimension")
            param.copy_(t[None])
    pipe = StableUnCLIPImg2ImgPipeline(
        feature_extractor=feature_extractor, image_encoder=image_encoder, image_normalizer=normalizer,
        image_noising_scheduler=image_noising_scheduler or embedding_noising_scheduler(),
        tokenizer=tokenizer or standin_tokenizer(), text_encoder=text_encoder, unet=unet,
        scheduler=scheduler or sd2_sampling_scheduler(), vae=vae)
    return UnclipGenerator(pipe, space, image_embed_norm)
