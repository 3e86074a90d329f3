"""The app in a real browser: Debian's headless Chromium, driven by Playwright, against the app
served in this process on a free loopback port (tiny random-weight models).

Needs ``pip install playwright`` and ``apt-get install chromium`` (Playwright's own browser download
does not work offline; ``REBIND_CHROMIUM`` may point at another Chromium). Set ``REBIND_FIGURES_DIR``
to also keep the screenshots there.
"""
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from demo_helpers import serving
from demos.app import build_app
from demos.bundled import example_scene, example_sound
from demos.tiny import tiny_models

CHROMIUM = os.environ.get("REBIND_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Debian Chromium on a machine without network: these keep it from hanging on background requests.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the browser test driver)")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set REBIND_CHROMIUM)",
                allow_module_level=True)

WAIT_MS = 90_000


@pytest.fixture(scope="module")
def url():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with serving(build_app(tiny_models(), default_steps=2)) as address:
        yield address
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def browser_page():
    with playwright_api.sync_playwright() as p, tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                       args=CHROMIUM_FLAGS, viewport={"width": 1280, "height": 900})
        try:
            yield context.new_page()
        finally:
            context.close()


def keep(screenshot: Path) -> None:
    folder = os.environ.get("REBIND_FIGURES_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(folder) / screenshot.name)


def gallery_images(page):
    return page.locator("#generate-gallery img")


def test_upload_a_sound_press_generate_and_see_the_images(url, browser_page, tmp_path):
    page = browser_page
    page.goto(url, wait_until="domcontentloaded")
    page.locator("#generate-sound input[type=file]").wait_for(state="attached", timeout=WAIT_MS)
    page.locator("#generate-sound input[type=file]").set_input_files(example_sound("dog"))
    page.get_by_text("dog.wav").first.wait_for(timeout=WAIT_MS)  # the upload is in the form
    page.locator("#generate-button").click()
    gallery_images(page).first.wait_for(state="visible", timeout=WAIT_MS)
    page.get_by_text("dog #1").first.wait_for(timeout=WAIT_MS)
    assert gallery_images(page).count() >= 1
    width = gallery_images(page).first.evaluate("img => img.complete ? img.naturalWidth : 0")
    assert width == 32  # a decoded image, the tiny pipeline's size
    shot = tmp_path / "app_generate.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    keep(shot)


def test_one_click_on_a_detection_example_draws_the_overlay(url, browser_page, tmp_path):
    page = browser_page
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("tab", name="Sound → boxes").click()
    page.locator("#detect-button").wait_for(timeout=WAIT_MS)
    example = page.locator("tr:visible").filter(has_text="dog.wav").filter(has_text="drums.wav")
    example.first.click()  # the first detection example: the dog scene, dog.wav + drums.wav, 0.9
    page.locator("#detect-overlay img").first.wait_for(state="visible", timeout=WAIT_MS)
    playwright_api.expect(page.locator("#detect-table")).to_contain_text("dog", use_inner_text=True, timeout=WAIT_MS)
    assert page.locator("#detect-overlay img").first.evaluate("img => img.naturalWidth") == 256
    shot = tmp_path / "app_detect.png"
    page.screenshot(path=str(shot), full_page=True)
    keep(shot)
