"""The pocket-world data build: sources -> clips, images, backgrounds, scenes, manifests, notices.

Layout of DIR:
    sources.json                    pinned artifacts with sha256 and licences
    audio/<category>/<id>.wav       16 kHz mono PCM16, silence-trimmed
    images/<category>/<style>_<id>.png   RGBA 128x128, object centred
    backgrounds/<name>.png          skimage photos/textures
    scenes/<split>/NNNNNN{.png,_disparity.npy,_mask.png}
    manifests/audio_{train,val,test}.csv   path,label,recording,source,license,duration
    manifests/images_{train,val,test}.csv  path,label,style,source,license
    manifests/scenes_{train,val,test}.jsonl
    manifests/recordings.csv        every clip kept or dropped, with its recording and why
    categories.json                 the category table as built (tier, prompts, emoji)
    ATTRIBUTION.md, README.md, contact_sheet.png
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np

from . import audio as A
from .categories import CATEGORIES, Category, slug
from .collect import collect_clips, collect_stamps
from .images import (BACKGROUNDS, ICONIFY_CHARS, ICONIFY_STYLES, ImageRenderError, RenderedImage,
                     contact_sheet, iconify_icon_name, iconify_svg, load_background, render_noto,
                     render_raster, render_svg, stamp_group)
from .manifests import AUDIO_COLUMNS, IMAGE_COLUMNS, SPLITS, assign_splits, write_manifest
from .sources import (SOURCE_BY_KEY, FetchedSource, SourceError, fetch_sources, write_sources_json,
                      write_text_atomic)


def _tqdm(iterable=None, **kw):
    from tqdm import tqdm  # noqa: PLC0415
    return tqdm(iterable, dynamic_ncols=True, **kw)


def _clip_id(source: str, path: str, wave_hash: str) -> str:
    tail = re.split(r"[/!#]", path)[-1].rsplit(".", 1)[0]
    return f"{source}-{re.sub(r'[^A-Za-z0-9]+', '_', tail).strip('_')[:40]}-{wave_hash[:6]}"


# --- audio -------------------------------------------------------------------------------

def build_audio(fetched: dict[str, FetchedSource], categories: tuple[Category, ...], out: Path,
                seed: int, log: list[str]) -> list[dict]:
    clips, notes = collect_clips(fetched, categories, CATEGORIES)
    log.extend(notes)
    by_cat: dict[str, list] = defaultdict(list)
    for clip in clips:
        by_cat[clip.category].append(clip)
    rows, audit = [], []
    for cat in _tqdm(categories, desc="audio: decode, dedupe, group", unit="category"):
        # earlier cohorts first: their clips keep naming their recordings and win dedupe ties
        items = sorted(by_cat.get(cat.name, []),
                       key=lambda c: (SOURCE_BY_KEY[c.source].cohort, c.source, c.path))
        waves, kept_clips = [], []
        for clip in items:
            wave = A.decode(clip.load(), f"{clip.source}:{clip.path}")
            wave = A.trim_silence(wave[: int(A.MAX_SECONDS * A.SAMPLE_RATE)])
            if A.is_silent(wave):
                audit.append({"label": cat.name, "source": clip.source, "path": clip.path,
                              "status": "dropped: silent", "recording": "", "file": ""})
                continue
            waves.append(wave)
            kept_clips.append(clip)
        grouping = A.group_recordings(waves, [c.stem_hint for c in kept_clips],
                                      cohorts=[SOURCE_BY_KEY[c.source].cohort for c in kept_clips])
        rec_names, rec_cohort = {}, {}
        for i in grouping.keep:
            r = grouping.recording[i]
            rec_names.setdefault(r, f"{slug(cat.name)}/{_clip_id(kept_clips[i].source, kept_clips[i].path, A.pcm_hash(waves[i]))}")
            rec_cohort.setdefault(r, SOURCE_BY_KEY[kept_clips[i].source].cohort)
        split_of = {}
        for cohort in sorted(set(rec_cohort.values())):
            names = [rec_names[r] for r, c in rec_cohort.items() if c == cohort]
            split_of.update(assign_splits(names, cat.name if cohort == 0 else f"{cat.name}/cohort{cohort}", seed))
        folder = out / "audio" / slug(cat.name)
        folder.mkdir(parents=True, exist_ok=True)
        for i, clip in enumerate(kept_clips):
            if i in grouping.dropped:
                j, how = grouping.dropped[i]
                audit.append({"label": cat.name, "source": clip.source, "path": clip.path,
                              "status": f"dropped: {how} copy of {kept_clips[j].source}:{kept_clips[j].path}",
                              "recording": rec_names[grouping.recording[j]], "file": ""})
                continue
            rec = rec_names[grouping.recording[i]]
            cid = _clip_id(clip.source, clip.path, A.pcm_hash(waves[i]))
            rel = f"audio/{slug(cat.name)}/{cid}.wav"
            _write_wav(out / rel, waves[i])
            row = {"path": rel, "label": cat.name, "recording": rec, "source": f"{clip.source}:{clip.path}",
                   "license": clip.license, "duration": f"{len(waves[i]) / A.SAMPLE_RATE:.3f}",
                   "split": split_of[rec], "peak_dbfs": 20 * np.log10(np.abs(waves[i]).max() + 1e-9)}
            rows.append(row)
            audit.append({"label": cat.name, "source": clip.source, "path": clip.path,
                          "status": f"kept ({split_of[rec]})", "recording": rec, "file": rel})
        for i, j, how, sim in grouping.links:
            log.append(f"group {cat.name}: {kept_clips[i].path} ~ {kept_clips[j].path} ({how}, {sim:.2f})")
    for split in SPLITS:
        write_manifest(out / "manifests" / f"audio_{split}.csv",
                       [r for r in rows if r["split"] == split], AUDIO_COLUMNS)
    write_manifest(out / "manifests" / "recordings.csv", audit,
                   ("label", "source", "path", "status", "recording", "file"))
    return rows


def _write_wav(path: Path, wave: np.ndarray) -> None:
    import soundfile as sf  # noqa: PLC0415
    tmp = path.with_name(path.name + ".tmp")
    sf.write(tmp, A.pcm16(wave), A.SAMPLE_RATE, subtype="PCM_16", format="WAV")
    tmp.replace(path)


# --- images ------------------------------------------------------------------------------

def render_category_images(fetched: dict[str, FetchedSource], categories: tuple[Category, ...],
                           log: list[str]) -> list[RenderedImage]:
    out: list[RenderedImage] = []
    font = next((fetched["noto-emoji"].root / "usr/share/fonts").rglob("NotoColorEmoji.ttf"))
    openmoji = fetched["openmoji"].root / "package"
    noto_lic, om_lic = SOURCE_BY_KEY["noto-emoji"].license, SOURCE_BY_KEY["openmoji"].license
    stamps = collect_stamps(fetched["tuxpaint-stamps"], categories)
    for cat in _tqdm(categories, desc="images: render", unit="category"):
        for eid in cat.emoji:
            out.append(RenderedImage(cat.name, "noto", eid, f"noto:{eid}", "noto-emoji",
                                     f"{font.name} U+{eid.replace('-', ' U+')}", noto_lic,
                                     render_noto(font, eid)))
            for style, folder in (("openmoji", "color"), ("openmoji-line", "black")):
                svg = openmoji / folder / "svg" / f"{eid}.svg"
                if not svg.exists():
                    log.append(f"images: no OpenMoji {folder} SVG for {cat.name} {eid}")
                    continue
                out.append(RenderedImage(cat.name, style, eid, f"openmoji:{eid}", "openmoji",
                                         f"package/{folder}/svg/{eid}.svg", om_lic, render_svg(svg)))
        for stamp in (s for s in stamps if s.category == cat.name):
            try:
                img = render_svg(stamp.file) if stamp.file.suffix == ".svg" else render_raster(stamp.file)
            except ImageRenderError as err:
                log.append(f"images: skipped stamp {stamp.name}: {err}")
                continue
            out.append(RenderedImage(cat.name, "stamp", stamp.name, stamp_group(stamp.name),
                                     "tuxpaint-stamps", stamp.file.relative_to(
                                         fetched["tuxpaint-stamps"].root).as_posix(),
                                     stamp.license, img))
        if not any(r.category == cat.name for r in out):
            log.append(f"images: {cat.name} has no picture at all ({cat.why or 'no emoji/stamp'})")
    # later cohorts after all earlier renders, so the earlier manifest rows keep their order
    out.extend(render_iconify_images(fetched, categories, log))
    return out


def render_iconify_images(fetched: dict[str, FetchedSource], categories: tuple[Category, ...],
                          log: list[str]) -> list[RenderedImage]:
    """The categories' emoji in every ICONIFY_STYLES set that has them."""
    def package_json(key: str, name: str) -> dict:
        return json.loads((fetched[key].root / "package" / name).read_text(encoding="utf-8"))

    chars = package_json(ICONIFY_CHARS, "chars.json")
    out: list[RenderedImage] = []
    for style, key, drawing in _tqdm(ICONIFY_STYLES, desc="images: iconify", unit="set"):
        icon_set, source = package_json(key, "icons.json"), SOURCE_BY_KEY[key]
        for cat in categories:
            for eid in cat.emoji:
                name = iconify_icon_name(icon_set, chars, eid)
                if name is None:
                    log.append(f"images: no {style} icon for {cat.name} {eid}")
                    continue
                try:
                    img = render_svg(iconify_svg(icon_set, name), name=f"{key}:{name}")
                except ImageRenderError as err:
                    log.append(f"images: skipped {style} {eid}: {err}")
                    continue
                out.append(RenderedImage(cat.name, style, eid, f"{drawing}:{eid}", key,
                                         f"package/icons.json#{name}", source.license, img,
                                         cohort=source.cohort))
    return out


def image_split(renders: list[RenderedImage], seed: int) -> dict[tuple[str, str], str]:
    """(category, group) -> split. Emoji drawings and stamp photos are split separately, so
    each held-out side gets both kinds when a category has enough; with exactly two drawings
    of a kind, one is held out for test (a genuinely unseen drawing)."""
    split: dict[tuple[str, str], str] = {}
    families: dict[tuple[str, str, int], list[str]] = defaultdict(list)
    for r in renders:
        fam = "stamp" if r.style == "stamp" else "emoji"
        if r.group not in families[(r.category, fam, r.cohort)]:
            families[(r.category, fam, r.cohort)].append(r.group)
    for (cat, fam, cohort), groups in families.items():
        if len(groups) == 2:
            ordered = sorted(groups)
            rng = np.random.default_rng([seed, len(cat), sum(map(ord, cat + fam))] + [cohort] * (cohort > 0))
            test = ordered[int(rng.integers(2))]
            split.update({(cat, g): ("test" if g == test else "train") for g in groups})
        else:
            label = f"{cat}/{fam}" if cohort == 0 else f"{cat}/{fam}/cohort{cohort}"
            for g, s in assign_splits(groups, label, seed).items():
                split[(cat, g)] = s
    return split


def build_images(renders: list[RenderedImage], out: Path, seed: int) -> list[dict]:
    split = image_split(renders, seed)
    rows = []
    for r in renders:
        name = f"{r.style}_{re.sub(r'[^A-Za-z0-9]+', '_', r.item).strip('_')}.png"
        rel = f"images/{slug(r.category)}/{name}"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        tmp = out / (rel + ".tmp.png")
        r.image.save(tmp)
        tmp.replace(out / rel)
        rows.append({"path": rel, "label": r.category, "style": r.style,
                     "source": f"{r.source}:{r.source_path}", "license": r.license,
                     "split": split[(r.category, r.group)], "group": r.group})
    for s in SPLITS:
        write_manifest(out / "manifests" / f"images_{s}.csv",
                       [r for r in rows if r["split"] == s], IMAGE_COLUMNS)
    return rows


def save_backgrounds(out: Path) -> list[str]:
    folder = out / "backgrounds"
    folder.mkdir(parents=True, exist_ok=True)
    for name in BACKGROUNDS:
        load_background(name).save(folder / f"{name}.png")
    return list(BACKGROUNDS)


def image_cohort(row: dict) -> int:
    """The cohort of an image manifest row's source (its `source` column is "key:path")."""
    return SOURCE_BY_KEY[row["source"].split(":", 1)[0]].cohort


def build_scenes(out: Path, image_rows: list[dict], counts: dict[str, int], seed: int) -> dict[str, int]:
    from PIL import Image  # noqa: PLC0415
    from .scenes import Camera, SceneItem, write_scenes  # noqa: PLC0415
    backgrounds = [Image.open(out / "backgrounds" / f"{n}.png").convert("RGB") for n in BACKGROUNDS]
    camera = Camera()
    written = {}
    for split, count in counts.items():
        # scenes keep to the first cohort's pictures, so adding a picture source leaves them as they were
        items = [SceneItem(r["label"], Image.open(out / r["path"]).convert("RGBA"), r["path"])
                 for r in image_rows if r["split"] == split and image_cohort(r) == 0]
        if not items or count <= 0:
            written[split] = 0
            continue
        with _tqdm(total=count, desc=f"scenes: {split}", unit="scene") as bar:
            write_scenes(out, split, count, items, backgrounds, list(BACKGROUNDS), camera,
                         seed, progress=bar.update)
        written[split] = count
    return written


# --- notices and summary -------------------------------------------------------------------

def write_attribution(out: Path, fetched: dict[str, FetchedSource], audio_rows: list[dict],
                      image_rows: list[dict]) -> None:
    lines = ["# Attribution", "",
             "Everything under this directory was derived from the packages below by "
             "`python -m pretrain.pocket data`. Clips were converted to 16 kHz mono and trimmed; "
             "images were re-rendered at 128x128. Each file keeps its source's licence; "
             "share-alike and GPL terms apply to redistributed files.", "",
             "## Sources", "", "| source | package | version | licence (default for its media) | sha256 |",
             "|---|---|---|---|---|"]
    for f in fetched.values():
        s = f.source
        lines.append(f"| {s.key} | {s.package} | {s.version} | {s.license} | {f.sha256[:16] or '-'} |")
    lines += ["", "Per-file licences come from each package's DEP-5 copyright file where it "
              "names the file, from the OpenSFX credit line for OpenSFX clips, otherwise from the "
              "default above.", "", "## Audio files", "", "| file | source path | licence |", "|---|---|---|"]
    lines += [f"| {r['path']} | {r['source']} | {r['license']} |" for r in audio_rows]
    lines += ["", "## Image files", "", "| file | source path | licence |", "|---|---|---|"]
    lines += [f"| {r['path']} | {r['source']} | {r['license']} |" for r in image_rows]
    lines += ["", "## Backgrounds", "", "`backgrounds/*.png` are scikit-image's bundled sample "
              "images (see skimage/data/README.txt in the installed wheel for each one's origin: "
              "public domain, CC0 or CC-BY). Scenes composite backgrounds with the images above "
              "and inherit their licences.", ""]
    write_text_atomic(out / "ATTRIBUTION.md", "\n".join(lines))


MIN_RECORDINGS = 5  # what a "main" category should have after dedupe


def summary_table(categories: tuple[Category, ...], audio_rows: list[dict],
                  image_rows: list[dict]) -> str:
    clips = Counter((r["label"], r["split"]) for r in audio_rows)
    recs = defaultdict(set)
    for r in audio_rows:
        recs[(r["label"], r["split"])].add(r["recording"])
    imgs = Counter((r["label"], r["split"]) for r in image_rows)
    head = ("| category | tier | recordings train/val/test | clips train/val/test | "
            "images train/val/test |")
    lines = [head, "|---|---|---|---|---|"]
    tot = Counter()
    for c in categories:
        rc = [len(recs[(c.name, s)]) for s in SPLITS]
        cc = [clips[(c.name, s)] for s in SPLITS]
        ic = [imgs[(c.name, s)] for s in SPLITS]
        for k, v in zip(("r", "c", "i"), (rc, cc, ic)):
            for s, n in zip(SPLITS, v):
                tot[(k, s)] += n
        tier = c.tier + (f" ({c.why})" if c.why else "")
        if c.tier == "main" and sum(rc) < MIN_RECORDINGS:
            tier += f" (THIN: {sum(rc)} recordings < {MIN_RECORDINGS})"
        lines.append(f"| {c.name} | {tier} | {'/'.join(map(str, rc))} | "
                     f"{'/'.join(map(str, cc))} | {'/'.join(map(str, ic))} |")
    lines.append("| **total** | | " + " | ".join(
        "/".join(str(tot[(k, s)]) for s in SPLITS) for k in ("r", "c", "i")) + " |")
    return "\n".join(lines)


def write_readme(out: Path, table: str, categories, scenes: dict[str, int], seconds: float,
                 log: list[str]) -> None:
    text = f"""# rebind pocket world data

Built by `python -m pretrain.pocket data --out {out}` in {seconds / 60:.1f} min.
See ATTRIBUTION.md for sources and licences and sources.json for the pinned artifacts.

Splits are made by RECORDING for audio (variants of one take never straddle splits; see
manifests/recordings.csv for every clip kept or dropped and why) and by DRAWING / PHOTO for
images (the colour and line-art OpenMoji of one emoji are one drawing, and so are Fluent's colour
and flat renderings; each other artist's emoji is a drawing of its own). `extra` categories are
thin (fewer than 5 recordings) or lack pictures: use them for few-shot or leave them out; they
are never needed by the main set.

Scenes: {scenes} (256x256, RGB + disparity .npy + instance mask PNG, records in
manifests/scenes_<split>.jsonl; held-out scenes use only held-out images, and only the first
cohort's: Noto, OpenMoji and the tuxpaint stamps).

{table}

## Build notes

""" + "\n".join(f"- {line}" for line in log if not line.startswith("group ")) + "\n"
    write_text_atomic(out / "README.md", text)


def check_build_dependencies() -> None:
    """Fail before any download when a library the build needs at its end is missing."""
    missing = []
    for module, why in (("cairosvg", "renders OpenMoji's SVGs; needs the cairo library (Debian: libcairo2)"),
                        ("skimage", "bundles the background photos (PyPI scikit-image)")):
        try:
            __import__(module)
        except (ImportError, OSError) as err:  # cairosvg raises OSError when libcairo is absent
            missing.append(f"{module}: {why} ({err})")
    if missing:
        raise SourceError("the pocket data build needs: " + "; ".join(missing) +
                          ". Install them with `pip install -e \".[train]\"`.")


def build(out: Path, cache: Path, categories: tuple[Category, ...], n_scenes: int, seed: int) -> str:
    check_build_dependencies()
    start = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    bar = _tqdm(total=None, desc="sources", unit="pkg")
    fetched = fetch_sources(None, cache, progress=lambda s: (bar.set_postfix_str(s.package), bar.update(1)))
    bar.close()
    write_sources_json(fetched, out / "sources.json")
    write_text_atomic(out / "categories.json", json.dumps(
        [asdict(c) for c in categories], indent=1) + "\n")
    audio_rows = build_audio(fetched, categories, out, seed, log)
    renders = render_category_images(fetched, categories, log)
    image_rows = build_images(renders, out, seed)
    save_backgrounds(out)
    scene_counts = {"train": n_scenes, "val": max(1, n_scenes // 10) if n_scenes else 0,
                    "test": max(1, n_scenes // 10) if n_scenes else 0}
    scenes = build_scenes(out, image_rows, scene_counts, seed)
    sheet_rows = [(c.name, [r.image for r in renders if r.category == c.name]) for c in categories]
    widest = max((len(images) for _, images in sheet_rows), default=12)
    contact_sheet(sheet_rows, per_row=min(40, max(12, widest))).save(out / "contact_sheet.png")  # every render
    write_attribution(out, fetched, audio_rows, image_rows)
    from .pool import build_pool  # noqa: PLC0415  (after the held-out clips it must avoid)
    build_pool(out, fetched, log=log)
    table = summary_table(categories, audio_rows, image_rows)
    log_path = out / "manifests" / "build_log.txt"
    write_text_atomic(log_path, "\n".join(log) + "\n")
    write_readme(out, table, categories, scenes, time.time() - start, log)
    return table
