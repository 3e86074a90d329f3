"""The Gradio app: paint from a sound, and find what makes a sound in a picture.

    python -m demos.app                         # embedded default models, http://127.0.0.1:7860
    python -m demos.app --port 8000 --unclip /models/sd21-unclip-h \\
        --encoder imagebind_huge --checkpoint /models/imagebind_huge.pth --device cuda --dtype float16

Two tabs: "Sound -> image" (a sound, optionally mixed with a text or an image, conditions the unCLIP
model) and "Sound -> boxes" (sounds prompt the detector; boxes above the threshold, 0.9 by default,
are drawn and listed). Models load once, on the first request that needs them. Requests wait in a
queue served ``--concurrency`` at a time; uploads are limited to ``--max-file-size``. A bad input
(unreadable, too long, not a sound, silent) gets a message in the page; the server keeps serving.

API (gradio_client): ``/generate`` (sound, mix_text, mix_image, mix_weight, seed, steps, num_images)
-> gallery; ``/detect`` (image, sound, more_sounds, labels, threshold) -> overlay, table, JSON file.
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import html
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Sequence

from . import offline_environment
from .bundled import EXAMPLES_DIR, example_scene, example_sound
from .generate import MAX_SEED
from .inputs import MAX_SOUND_SECONDS, DemoInputError, check_image, check_sound
from .models import DemoModels, ModelsNotInstalled, add_model_arguments

log = logging.getLogger("demos.app")

DEFAULT_PORT = 7860
DEFAULT_STEPS = 20
DEFAULT_THRESHOLD = 0.9
DEFAULT_MAX_FILE_SIZE = "20mb"
TABLE_HEADERS = ["sound", "score", "x0", "y0", "x1", "y1"]
KEEP_REQUEST_FOLDERS = 256


@contextlib.contextmanager
def human_errors():
    """Turn what can go wrong in a request into a ``gr.Error`` with one readable message.

    Input problems say what was wrong; anything unexpected is logged (with its traceback) on the
    server and the page gets a short note. The request fails, the server keeps serving.
    """
    import gradio as gr

    from encoders.inputs import InputError

    try:
        yield
    except gr.Error:
        raise
    except (DemoInputError, InputError, ModelsNotInstalled, FileNotFoundError, ValueError) as e:
        raise gr.Error(html.escape(str(e), quote=False), print_exception=False) from None
    except Exception as e:  # noqa: BLE001 - the request must end in a message, not a stack trace
        log.exception("request failed")
        raise gr.Error(f"Something went wrong on the server ({type(e).__name__}); the details are in its "
                       f"log. Try again, or try another input.", print_exception=False) from None


class DemoApp:
    """The request handlers (plain methods: call them directly, or through the Gradio app)."""

    def __init__(self, models: DemoModels | None = None, max_sound_seconds: float = MAX_SOUND_SECONDS,
                 default_steps: int = DEFAULT_STEPS):
        self.models = models or DemoModels()
        self.max_sound_seconds = max_sound_seconds
        self.default_steps = default_steps
        # Results go out as files written here, one folder per request: gradio copies a file into its
        # cache atomically, whereas it rewrites the cache file of a returned PIL image in place, so two
        # requests with the same result (same sound, same seed) could serve each other a half-written PNG.
        self._outputs = Path(tempfile.mkdtemp(prefix="rebind-demo-"))
        atexit.register(shutil.rmtree, self._outputs, ignore_errors=True)
        self._count = 0
        self._count_lock = threading.Lock()

    def _load(self, progress, part: str, what: str, fraction: float, modality: str = "audio"):
        if not self.models.is_loaded(part, modality):
            message = f"Loading {what} (first use only)..."
            log.info(message)
            progress(fraction, desc=message)
        if part == "encoder":
            return self.models.encoder(modality)
        return self.models.detector() if part == "detector" else self.models.generator()

    def generate(self, sound: str | None, mix_text: str = "", mix_image: str | None = None,
                 mix_weight: float = 0.3, seed: float | None = 0, steps: float | None = None,
                 num_images: float = 1, progress: Any = None) -> list[tuple[str, str]]:
        """Sound (+ optional text / image mixed in) -> [(PNG path, caption)] for the gallery."""
        from .generate import images_from_sound

        progress = progress or _no_progress
        with human_errors():
            checked = check_sound(sound, self.max_sound_seconds)
            text = (mix_text or "").strip()
            self._load(progress, "encoder", "the sound encoder", 0.05)
            if text and float(mix_weight or 0) > 0:
                self._load(progress, "encoder", "the text encoder", 0.1, "text")
            if mix_image and float(mix_weight or 0) > 0:
                self._load(progress, "encoder", "the image encoder", 0.15, "vision")
            self._load(progress, "unclip", "the unCLIP image generator", 0.2)
            progress(0.4, desc="Painting...")
            images = images_from_sound(self.models, checked, mix_text=text, mix_image=mix_image or None,
                                       mix_weight=mix_weight, seed=seed,
                                       steps=self.default_steps if steps is None else steps,
                                       num_images=num_images)
            folder = self._request_folder()
            paths = []
            for i, image in enumerate(images, start=1):
                paths.append(str(folder / f"{checked.name}_{i}.png"))
                image.save(paths[-1])
        what = checked.name if not text and not mix_image else f"{checked.name} + mix"
        return [(path, f"{what} #{i}") for i, path in enumerate(paths, start=1)]

    def detect(self, image: str | None, sound: str | None, more_sounds: Sequence[Any] | None = None,
               labels: str = "", threshold: float = DEFAULT_THRESHOLD,
               progress: Any = None) -> tuple[str, list[list], str]:
        """Image + sounds -> (overlay PNG path, table rows, detections JSON path)."""
        from .detect import detect_sounds, overlay_record

        progress = progress or _no_progress
        with human_errors():
            paths = [p for p in [sound, *(_file_path(f) for f in (more_sounds or []))] if p]
            if not paths:
                raise DemoInputError("No sound given: add a sound (upload or record one) to look for.")
            sounds = [check_sound(p, self.max_sound_seconds) for p in paths]
            picture = check_image(image, "image")
            names = [n.strip() for n in (labels or "").split(",")] if (labels or "").strip() else None
            self._load(progress, "encoder", "the sound encoder", 0.05)
            self._load(progress, "detector", "the detector", 0.2)
            progress(0.5, desc="Looking...")
            found = detect_sounds(self.models, sounds, [picture], float(threshold), names)[0]
            folder = self._request_folder()
            overlay = folder / "overlay.png"
            found.draw(picture).save(overlay)
            rows = [[name, round(score, 3), *[round(v, 1) for v in box]]
                    for name, score, box in zip(found.names, found.scores.tolist(), found.boxes.tolist())]
            record = overlay_record(found, Path(str(image)).name, float(threshold), sounds)
            json_path = folder / "detections.json"
            json_path.write_text(json.dumps(record, indent=2) + "\n")
        return str(overlay), rows, str(json_path)

    def _request_folder(self) -> Path:
        """A new folder for one request's files; the oldest beyond ``KEEP_REQUEST_FOLDERS`` are removed
        (gradio has copied them into its own cache by then)."""
        with self._count_lock:
            self._count += 1
            number = self._count
        stale = self._outputs / f"{number - KEEP_REQUEST_FOLDERS:08d}"
        if number > KEEP_REQUEST_FOLDERS and stale.exists():
            shutil.rmtree(stale, ignore_errors=True)
        folder = self._outputs / f"{number:08d}"
        folder.mkdir(parents=True)
        return folder


def _no_progress(*args, **kwargs) -> None:
    return None


def _file_path(item: Any) -> str | None:
    """gr.File values are paths (str) or objects with ``.name`` / ``.path``, depending on versions."""
    if item is None:
        return None
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    return getattr(item, "path", None) or getattr(item, "name", None)


def _models_line(models: DemoModels) -> str:
    described = models.describe(with_state=False)
    return " · ".join(f"**{part}**: {html.escape(text)}" for part, text in described.items())


def build_app(models: DemoModels | None = None, max_sound_seconds: float = MAX_SOUND_SECONDS,
              default_steps: int = DEFAULT_STEPS):
    """The ``gr.Blocks`` app around ``DemoApp`` (not launched; see ``launch``)."""
    import gradio as gr

    handlers = DemoApp(models, max_sound_seconds, default_steps)

    def generate(sound, mix_text, mix_image, mix_weight, seed, steps, num_images, progress=gr.Progress()):
        return handlers.generate(sound, mix_text, mix_image, mix_weight, seed, steps, num_images, progress)

    def detect(image, sound, more_sounds, labels, threshold, progress=gr.Progress()):
        return handlers.detect(image, sound, more_sounds, labels, threshold, progress)

    # delete_cache: gradio's copies of uploads and results older than 2 h go, checked hourly
    with gr.Blocks(title="rebind: sounds in CLIP space", analytics_enabled=False, delete_cache=(3600, 7200)) as app:
        gr.Markdown("## rebind: paint from a sound, find what makes a sound\n"
                    "Sounds are embedded in a CLIP space, so models that take CLIP embeddings can use them. "
                    f"Sounds up to {max_sound_seconds:g} s.  \n" + _models_line(handlers.models)
                    + "  \nModels load on the first request that needs them.")
        with gr.Tab("Sound → image", id="generate"):
            with gr.Row():
                with gr.Column():
                    sound = gr.Audio(type="filepath", sources=["upload", "microphone"], label="Sound",
                                     elem_id="generate-sound")
                    with gr.Accordion("Mix in a text or an image (optional)", open=False):
                        mix_text = gr.Textbox(label="Text to mix in", placeholder="e.g. a beach at sunset")
                        mix_image = gr.Image(type="filepath", label="Image to mix in", height=160)
                        mix_weight = gr.Slider(0.0, 0.9, value=0.3, step=0.05, label="Mix weight",
                                               info="the text/image share of the mix; the sound keeps the rest "
                                                    "(text and image together share it equally)")
                    with gr.Row():
                        seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
                        steps = gr.Slider(1, 100, value=default_steps, step=1, label="Steps")
                        num_images = gr.Slider(1, 4, value=2, step=1, label="Images")
                    generate_button = gr.Button("Generate", variant="primary", elem_id="generate-button")
                with gr.Column():
                    gallery = gr.Gallery(label="Images", columns=2, height=420, elem_id="generate-gallery")
            generate_inputs = [sound, mix_text, mix_image, mix_weight, seed, steps, num_images]
            generate_button.click(generate, inputs=generate_inputs, outputs=gallery, api_name="generate")
            gr.Examples(
                examples=[[example_sound("dog"), "", None, 0.3, 0, default_steps, 2],
                          [example_sound("drums"), "", None, 0.3, 1, default_steps, 2],
                          [example_sound("airplane"), "a sunny sky", None, 0.3, 2, default_steps, 2],
                          [example_sound("car"), "", example_scene("scene_car_drums"), 0.3, 3, default_steps, 2]],
                inputs=generate_inputs, outputs=gallery, fn=generate, run_on_click=True, cache_examples=False,
                label="Examples (click one to run it)")
        with gr.Tab("Sound → boxes", id="detect"):
            with gr.Row():
                with gr.Column():
                    image = gr.Image(type="filepath", label="Image", elem_id="detect-image")
                    detect_sound = gr.Audio(type="filepath", sources=["upload", "microphone"],
                                            label="Sound to look for", elem_id="detect-sound")
                    more_sounds = gr.File(file_count="multiple", file_types=["audio"], type="filepath",
                                          label="More sounds (optional)")
                    labels = gr.Textbox(label="Labels (optional)",
                                        placeholder="comma-separated, one per sound; default: the file names")
                    threshold = gr.Slider(0.0, 1.0, value=DEFAULT_THRESHOLD, step=0.01, label="Score threshold",
                                          info="boxes scoring above it are kept (0.9: the ImageBind paper's overlays)")
                    detect_button = gr.Button("Detect", variant="primary", elem_id="detect-button")
                with gr.Column():
                    overlay = gr.Image(type="filepath", label="Overlay", elem_id="detect-overlay")
                    table = gr.Dataframe(headers=TABLE_HEADERS, datatype=["str"] + ["number"] * 5,
                                         label="Boxes (pixels)", interactive=False, elem_id="detect-table")
                    json_file = gr.File(label="Detections (JSON)")
            detect_inputs = [image, detect_sound, more_sounds, labels, threshold]
            detect_button.click(detect, inputs=detect_inputs, outputs=[overlay, table, json_file], api_name="detect")
            gr.Examples(
                examples=[[example_scene("scene_dog_drums"), example_sound("dog"), [example_sound("drums")], "",
                           DEFAULT_THRESHOLD],
                          [example_scene("scene_car_drums"), example_sound("car"), [example_sound("drums")], "",
                           DEFAULT_THRESHOLD],
                          [example_scene("scene_airplane_drums"), example_sound("airplane"), None, "",
                           DEFAULT_THRESHOLD]],
                inputs=detect_inputs, outputs=[overlay, table, json_file], fn=detect, run_on_click=True,
                cache_examples=False, label="Examples (click one to run it)")
    app.demo_handlers = handlers  # for tests and notebooks
    return app


def launch(app, host: str = "127.0.0.1", port: int | None = DEFAULT_PORT, share: bool = False,
           concurrency: int = 1, max_queue: int = 64, max_file_size: str | int = DEFAULT_MAX_FILE_SIZE,
           block: bool = True, quiet: bool = False):
    """Serve ``app``: a request queue (``concurrency`` at a time, ``max_queue`` waiting), an upload limit,
    the bundled examples allowed. ``block=False`` returns at once (``app.close()`` stops it).
    Returns gradio's (FastAPI app, local URL, share URL)."""
    app.queue(default_concurrency_limit=concurrency, max_size=max_queue)
    return app.launch(server_name=host, server_port=port, share=share, max_file_size=max_file_size,
                      allowed_paths=[str(EXAMPLES_DIR)], ssr_mode=False, show_error=False,
                      prevent_thread_lock=not block, quiet=quiet, inbrowser=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m demos.app",
                                     description="The rebind demo app (Gradio): sound -> image, sound -> boxes.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (needs network)")
    parser.add_argument("--concurrency", type=int, default=1, help="requests served at once (default 1)")
    parser.add_argument("--max-queue", type=int, default=64, help="requests allowed to wait (default 64)")
    parser.add_argument("--max-file-size", default=DEFAULT_MAX_FILE_SIZE,
                        help=f"largest upload, e.g. 20mb (default {DEFAULT_MAX_FILE_SIZE})")
    parser.add_argument("--max-sound-seconds", type=float, default=MAX_SOUND_SECONDS,
                        help=f"longest sound accepted (default {MAX_SOUND_SECONDS:g} s)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"default denoising steps ({DEFAULT_STEPS})")
    parser.add_argument("--preload", action="store_true", help="load the models at start instead of on first use")
    add_model_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    offline_environment()
    args = build_parser().parse_args(argv)
    # the app's own messages (model loading, failed requests); libraries only when they warn
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("demos").setLevel(logging.INFO)
    models = DemoModels.from_args(args)
    try:
        models.check_installed()
        if args.preload:
            print("Loading the models...", flush=True)
            models.load_all(with_mixing=True)
    except (ModelsNotInstalled, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    app = build_app(models, args.max_sound_seconds, args.steps)
    launch(app, host=args.host, port=args.port, share=args.share, concurrency=args.concurrency,
           max_queue=args.max_queue, max_file_size=args.max_file_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
