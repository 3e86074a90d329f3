"""Find the clips and stamp pictures that the category table names inside the unpacked sources."""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Callable

from .categories import EXCLUDED, Category
from .licenses import license_for, opensfx_license, read_copyright
from .opensfx import read_sound_bank
from .rcc import read_rcc
from .sources import FetchedSource

AUDIO_EXT = (".ogg", ".wav", ".flac")
STAMPS_DIR = "usr/share/tuxpaint/stamps/"
# tuxpaint ships spoken names/descriptions next to each stamp sound ("dog_desc.ogg", "dog_fr.ogg")
_TUXPAINT_SPEECH = re.compile(r"_(desc|[a-z]{2}(_[a-z]{2,4})?)\.ogg$", re.IGNORECASE)


class TableError(ValueError):
    pass


@dataclass
class RawClip:
    category: str
    source: str  # Source.key
    path: str  # source path the patterns match (see categories.py)
    license: str
    stem_hint: str  # recording hint: name stem, or for OpenSFX the original file it edits
    load: Callable[[], bytes]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40]


def _candidates(fetched: FetchedSource) -> list[tuple[str, str, str, Callable[[], bytes]]]:
    """(source path, licence, stem hint, loader) for every audio file in one source."""
    src = fetched.source
    root = fetched.root
    stanzas = read_copyright(root, src.package)
    out = []
    for file in sorted(root.rglob("*")):
        rel = file.relative_to(root).as_posix()
        if file.suffix == ".rcc":
            for inner, data in sorted(read_rcc(file).items()):
                if inner.endswith(AUDIO_EXT):
                    lic = license_for(stanzas, inner, src.license)
                    out.append((f"{rel}!{inner}", lic, "", (lambda d=data: d)))
        elif file.suffix in (".zip", ".pk3"):  # game data archives (0 A.D., UFO:AI), read lazily
            # one open archive serves every loader (its 36k-entry directory is parsed once);
            # ZipFile closes its file when the last loader is gone
            archive = zipfile.ZipFile(file)
            for inner in sorted(n for n in archive.namelist() if n.endswith(AUDIO_EXT)):
                lic = license_for(stanzas, inner, src.license)
                out.append((f"{rel}!{inner}", lic, "", (lambda a=archive, n=inner: a.read(n))))
        elif file.suffix == ".cat":
            for entry in read_sound_bank(file):
                if not entry.data:
                    continue
                title = entry.name.split('"')[1] if entry.name.count('"') >= 2 else entry.name
                original = re.search(r"Original\s+\"?([^\".]+\.\w+)", entry.name)
                hint = f"opensfx/{_slug(original.group(1) if original else title)}"
                out.append((f"{rel}#{entry.index:02d}_{_slug(title)}",
                            opensfx_license(entry.name, src.license) + f" ({entry.name})",
                            hint, (lambda d=entry.data: d)))
        elif file.suffix in AUDIO_EXT and file.is_file():
            if src.key == "tuxpaint-stamps" and _TUXPAINT_SPEECH.search(file.name):
                continue
            out.append((rel, license_for(stanzas, rel, src.license), "",
                        (lambda f=file: f.read_bytes())))
    return out


def excluded(path: str) -> str | None:
    for pattern, why in EXCLUDED.items():
        if fnmatchcase(path, pattern):
            return why
    return None


def collect_clips(fetched: dict[str, FetchedSource], categories: tuple[Category, ...],
                  all_categories: tuple[Category, ...]) -> tuple[list[RawClip], list[str]]:
    """Clips of `categories`, checking that no clip matches two rows of the whole table."""
    from .audio import name_stem  # noqa: PLC0415
    wanted = {c.name for c in categories}
    keys = sorted({k for c in all_categories for k in c.sounds} & set(fetched))
    clips: list[RawClip] = []
    notes: list[str] = []
    used: set[tuple[str, str, str]] = set()  # (category, source, pattern) that matched a file
    for key in keys:
        for path, lic, hint, load in _candidates(fetched[key]):
            hits = []
            for c in all_categories:
                matched = [p for p in c.sounds.get(key, ()) if fnmatchcase(path, p)]
                used.update((c.name, key, p) for p in matched)
                if matched:
                    hits.append(c.name)
            if not hits:
                continue
            if len(hits) > 1:
                raise TableError(f"{key}:{path} matches categories {hits}; make the patterns in "
                                 "pretrain/pocket/categories.py disjoint")
            why = excluded(path)
            if why:
                notes.append(f"excluded {key}:{path}: {why}")
                continue
            if hits[0] in wanted:
                clips.append(RawClip(hits[0], key, path, lic, hint or name_stem(path), load))
    for c in categories:
        for key, patterns in c.sounds.items():
            notes.extend(f"pattern matched nothing: {c.name} / {key} / {p}"
                         for p in patterns if key in fetched and (c.name, key, p) not in used)
    return clips, notes


@dataclass
class RawStamp:
    category: str
    name: str  # stamp path under the stamps dir, without extension
    file: Path  # .png preferred (tuxpaint's own raster), else .svg
    license: str


def collect_stamps(fetched: FetchedSource, categories: tuple[Category, ...]) -> list[RawStamp]:
    root = fetched.root / STAMPS_DIR
    stanzas = read_copyright(fetched.root, fetched.source.package)
    by_name: dict[str, Path] = {}
    for file in sorted(root.rglob("*")):
        if file.suffix not in (".png", ".svg"):
            continue
        name = file.relative_to(root).with_suffix("").as_posix()
        if name.endswith(("_mirror", "_flip")):  # pre-flipped copies of another stamp
            continue
        if name not in by_name or file.suffix == ".png":
            by_name[name] = file
    stamps = []
    for c in categories:
        for name, file in sorted(by_name.items()):
            if any(fnmatchcase(name, p) for p in c.stamps):
                lic = license_for(stanzas, file.relative_to(fetched.root).as_posix(),
                                  fetched.source.license)
                stamps.append(RawStamp(c.name, name, file, lic))
    return stamps
