"""Pictures of every category: emoji renders (Noto, OpenMoji, and the Iconify packages of Twemoji,
Fluent, EmojiOne, FxEmoji and Streamline) and tuxpaint photo cut-outs.

All are normalised the same way: RGBA, the object cropped to its alpha box, scaled to fit
OBJECT_PX and centred on a transparent SIZE x SIZE canvas (alpha kept for compositing).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SIZE = 128
OBJECT_PX = 116  # the object's longer side; leaves a small margin for augmentation crops
NOTO_FONT_SIZE = 109  # the one size the CBDT font has bitmaps for
# photos and textures bundled in the scikit-image wheel (file names in skimage/data);
# "chelsea" (a cat) and "horse" (a silhouette) are left out: they would be unlabelled objects
BACKGROUNDS = {"astronaut": "astronaut.png", "coffee": "coffee.png", "rocket": "rocket.jpg",
               "grass": "grass.png", "gravel": "gravel.png", "brick": "brick.png",
               "hubble_deep_field": "hubble_deep_field.jpg", "motorcycle": "motorcycle_left.png"}


class ImageRenderError(ValueError):
    pass


def normalise(img: Image.Image, name: str, size: int = SIZE, object_px: int = OBJECT_PX) -> Image.Image:
    img = img.convert("RGBA")
    alpha = np.asarray(img)[:, :, 3]
    ys, xs = np.nonzero(alpha > 8)
    if len(xs) == 0:
        raise ImageRenderError(f"{name}: nothing drawn (fully transparent)")
    img = img.crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    scale = object_px / max(img.size)
    new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    img = img.resize(new, Image.LANCZOS)
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    canvas.alpha_composite(img, ((size - new[0]) // 2, (size - new[1]) // 2))
    return canvas


def emoji_text(emoji_id: str) -> str:
    return "".join(chr(int(part, 16)) for part in emoji_id.split("-"))


def render_noto(font_path: Path, emoji_id: str) -> Image.Image:
    font = ImageFont.truetype(str(font_path), size=NOTO_FONT_SIZE)
    canvas = Image.new("RGBA", (220, 180), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((10, 10), emoji_text(emoji_id), font=font, embedded_color=True)
    return normalise(canvas, f"Noto {emoji_id}")


def render_svg(svg: Path | str, px: int = 512, name: str | None = None) -> Image.Image:
    """An SVG file (Path) or document (str) -> normalised render."""
    import cairosvg  # noqa: PLC0415  (PyPI cairosvg; needs the cairo library)
    name = name or str(svg)
    source = {"url": str(svg)} if isinstance(svg, Path) else {"bytestring": svg.encode()}
    try:
        png = cairosvg.svg2png(**source, output_width=px)
    except Exception as err:  # cairosvg raises many kinds
        raise ImageRenderError(f"{name}: cairosvg cannot render it ({err})") from None
    return normalise(Image.open(io.BytesIO(png)), name)


def iconify_icon_name(icon_set: dict, chars: dict[str, str], emoji_id: str) -> str | None:
    """The icon of an emoji in an Iconify emoji set (icons.json), or None when the set lacks it.
    ``chars`` maps lower-case codepoints ("1f415") to Iconify's emoji names, which all Iconify
    emoji sets share (several sets ship an empty chars.json, so one set's map serves all)."""
    name = chars.get(emoji_id.lower())
    if name is None or (name not in icon_set["icons"] and name not in icon_set.get("aliases", {})):
        return None
    return name


def iconify_svg(icon_set: dict, name: str) -> str:
    """The SVG document of one icon of an Iconify JSON set (IconifyJSON format: a shared
    viewBox default, per-icon overrides, aliases pointing at a parent)."""
    icons, aliases = icon_set["icons"], icon_set.get("aliases", {})
    key = name
    while key not in icons:
        alias = aliases.get(key)
        if alias is None:
            raise ImageRenderError(f"iconify {icon_set.get('prefix')}:{name}: no such icon")
        if set(alias) - {"parent"}:  # rotations/flips would need a transform: none of ours has one
            raise ImageRenderError(f"iconify {icon_set.get('prefix')}:{name}: alias transforms "
                                   f"{sorted(set(alias) - {'parent'})} are not supported")
        key = alias["parent"]
    icon = icons[key]
    if icon.get("rotate") or icon.get("hFlip") or icon.get("vFlip"):
        raise ImageRenderError(f"iconify {icon_set.get('prefix')}:{name}: transforms are not supported")
    left, top = (icon.get(k, icon_set.get(k, 0)) for k in ("left", "top"))
    width, height = (icon.get(k, icon_set.get(k, 16)) for k in ("width", "height"))
    return ('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'viewBox="{left} {top} {width} {height}" width="{width}" height="{height}">'
            f'{icon["body"]}</svg>')


def render_raster(path: Path) -> Image.Image:
    with Image.open(path) as img:
        if img.mode not in ("RGBA", "LA", "P"):
            raise ImageRenderError(f"{path}: mode {img.mode} has no alpha, not a cut-out")
        return normalise(img.convert("RGBA"), str(path))


@dataclass
class RenderedImage:
    category: str
    style: str  # "noto" | "openmoji" | "openmoji-line" | "stamp" | an ICONIFY_STYLES style
    item: str  # id within the style (emoji id, stamp name)
    group: str  # split unit: renders of one drawing share it (openmoji colour + line art)
    source: str
    source_path: str
    license: str
    image: Image.Image
    cohort: int = 0  # the source's cohort: groups split within their cohort (sources.Source)


# Emoji styles taken from Iconify JSON packages: (style, source key, drawing). Renders of one
# drawing share a split group: Fluent's flat and its gradient ("colour") renderings are one.
ICONIFY_STYLES = (("twemoji", "twemoji", "twemoji"), ("fluent", "fluent-emoji", "fluent"),
                  ("fluent-flat", "fluent-emoji-flat", "fluent"), ("emojione", "emojione", "emojione"),
                  ("fxemoji", "fxemoji", "fxemoji"), ("streamline", "streamline-emojis", "streamline"))
ICONIFY_CHARS = "twemoji"  # the set whose chars.json names the emoji for all of them


_STAMP_VARIANT = re.compile(r"[-_]?\d+$")


def stamp_group(name: str) -> str:
    """'animals/mammals/pig_golden2' and 'pig_golden' are one photo session."""
    return "stamp:" + _STAMP_VARIANT.sub("", name)


def load_background(name: str) -> Image.Image:
    from .sources import skimage_data_dir  # noqa: PLC0415
    path = skimage_data_dir() / BACKGROUNDS[name]
    if not path.exists():
        raise ImageRenderError(f"{path} is missing: this scikit-image wheel does not bundle "
                               f"{BACKGROUNDS[name]}; reinstall scikit-image (pip install -U "
                               "scikit-image) or drop it from images.BACKGROUNDS")
    with Image.open(path) as img:
        return img.convert("RGB")


def contact_sheet(rows: list[tuple[str, list[Image.Image]]], thumb: int = 64,
                  per_row: int = 12) -> Image.Image:
    """One row per category: its name, then up to `per_row` thumbnails on a grey checker."""
    label_w = 130
    sheet = Image.new("RGB", (label_w + per_row * thumb, thumb * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    checker = Image.new("RGB", (thumb, thumb), (200, 200, 200))
    cd = ImageDraw.Draw(checker)
    for y in range(0, thumb, 8):
        for x in range(0, thumb, 8):
            if (x + y) // 8 % 2:
                cd.rectangle((x, y, x + 7, y + 7), fill=(235, 235, 235))
    for r, (label, images) in enumerate(rows):
        draw.text((4, r * thumb + thumb // 2 - 6), label, fill="black")
        for c, img in enumerate(images[:per_row]):
            tile = checker.copy()
            tile.paste(img.resize((thumb, thumb), Image.LANCZOS), (0, 0), img.resize((thumb, thumb)))
            sheet.paste(tile, (label_w + c * thumb, r * thumb))
    return sheet
