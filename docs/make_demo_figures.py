"""Make the README figures of the demos with the project itself: an overlay from ``python -m demos.detect``
and a screenshot of the app in headless Chromium after generating from the bundled dog sound.

    python docs/make_demo_figures.py                 # the embedded default (pocket) models
    python docs/make_demo_figures.py --tiny          # random-weight stand-ins (noise images, arbitrary boxes)

Writes docs/figures/demo_overlay.png (+ .json) and docs/figures/demo_app.png. Needs Playwright
(pip install playwright) and Debian's Chromium (apt-get install chromium).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for key, value in {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_ANALYTICS_ENABLED": "False"}.items():
    os.environ.setdefault(key, value)

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def screenshot_app(url: str, sound: str, out: Path, chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        context = p.chromium.launch_persistent_context(profile, executable_path=chromium, headless=True,
                                                       args=CHROMIUM_FLAGS, viewport={"width": 1280, "height": 760})
        page = context.new_page()
        page.goto(url, wait_until="domcontentloaded")
        page.locator("#generate-sound input[type=file]").set_input_files(sound)
        page.get_by_text(Path(sound).name).first.wait_for(timeout=120_000)
        page.locator("#generate-button").click()
        page.locator("#generate-gallery img").first.wait_for(state="visible", timeout=300_000)
        page.wait_for_timeout(500)
        page.screenshot(path=str(out))
        context.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="random-weight stand-ins instead of the pocket models")
    parser.add_argument("--out", default=str(ROOT / "docs" / "figures"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    from demos import detect
    from demos.app import build_app, launch
    from demos.bundled import example_scene, example_sound
    from demos.models import DemoModels
    from demos.tiny import tiny_models

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = tiny_models() if args.tiny else DemoModels()
    models.check_installed()
    code = detect.main(["--audio", example_sound("dog"), "--audio", example_sound("drums"),
                        "--image", example_scene("scene_dog_drums"), "--out", str(out / "demo_overlay.png")],
                       models=models)
    if code:
        return code
    app = build_app(models, default_steps=args.steps)
    _, url, _ = launch(app, port=None, block=False, quiet=True)
    try:
        screenshot_app(url, example_sound("dog"), out / "demo_app.png", args.chromium)
    finally:
        app.close()
    print(f"wrote {out / 'demo_overlay.png'}, {out / 'demo_app.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
