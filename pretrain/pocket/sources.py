"""Pinned sources of the pocket world and how to fetch them with their normal clients.

Every artifact is pinned by version AND sha256: a download (or a cached copy) whose hash differs
from the pin is refused, so a build is reproducible or fails loudly. Debian packages come with
`apt-get download PKG=VER` (no install), OpenMoji and the Iconify emoji sets with
`npm pack PKG@VER`, and the
background photos ship inside the installed scikit-image wheel (no download).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_CACHE = Path("~/.cache/rebind/pocket").expanduser()

# What to unpack from every .deb: media, containers, and the licence files.
DEB_MEMBERS = ("*.ogg", "*.wav", "*.flac", "*.rcc", "*.cat", "*.png", "*.svg", "*.ttf",
               "*/0ad/mods/public/public.zip", "*/ufoai/base/0snd.pk3", "*/copyright")


@dataclass(frozen=True)
class Source:
    key: str  # short name used by categories.py ("gcompris", "opensfx", ...)
    kind: str  # "debian" | "npm" | "wheel"
    package: str
    version: str
    sha256: str  # of the downloaded artifact; empty for "wheel" (nothing is downloaded)
    license: str  # licence of the media we take when the package's copyright file says nothing
    what: str  # what we use from it
    # Recordings and drawings are split train/val/test within their cohort: a source added later
    # gets a higher cohort, so adding it never moves an existing recording or drawing to another split.
    cohort: int = 0


SOURCES: tuple[Source, ...] = (
    Source("gcompris", "debian", "gcompris-qt-data", "3.1-2",
           "e9cf06ab2105529068df73085784e835d2ff03f870d2a8091f09125d40abac9f", "GPL-3+",
           "farm animals, instruments, memory-sound clips (inside Qt .rcc bundles)"),
    Source("tuxpaint-stamps", "debian", "tuxpaint-stamps-default", "2022.06.04-1",
           "6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34", "GPL-2",
           "photo cut-out stamps (PNG with alpha, SVG) and their same-named sounds"),
    Source("megaglest", "debian", "megaglest-data", "3.13.0-3",
           "ed4783d9fc78e201a548b266f7c30325eb16cfd58a20bf4597dd6e622f84a07e", "CC-BY-SA-3.0",
           "cattle, pig, sheep, chicken, elephant, bee, wolf, rain, wind"),
    Source("widelands", "debian", "widelands-data", "2:1.1-3",
           "0e23d645b15bcfb9e3bcae0de9bc1bdfa75a6ecb36b2e449759d6eb0b4bbd8fb", "GPL-2+",
           "birds, wolf, frog, crickets, sheep, horse, ox, duck, saws, hammering"),
    Source("wesnoth", "debian", "wesnoth-1.16-data", "1:1.16.9-1",
           "1012b964bd412a6770685e3324ae3b61e176caff7846192d1ee63d55cd621e26", "GPL-2+",
           "wolf, horse, birds, horn signals, fire, bell"),
    Source("opensfx", "debian", "openttd-opensfx", "1.0.3-2",
           "2898b4677a3caccc4abc08fb4cf83319047b5a04729291deb5c77a8cd713c006", "CC-BY-SA-3.0",
           "vehicles, planes, animals, applause (inside opensfx.cat; per-clip licence in the "
           "clip's credit line)"),
    Source("sonic-pi", "debian", "sonic-pi-samples", "3.2.2~repack-8",
           "25f2312d2fae005e6ad0f4726b8ed3084e776006a5a132083506e960224ac79d", "CC0-1.0",
           "drums, tabla, guitar, piano, bells, door"),
    Source("minetest", "debian", "minetest-data", "5.6.1+dfsg+~1.9.0mt8+dfsg-2",
           "91371dd2bd51cfcd4fa60c138667989a47047dfe1a47f7523b9ad1782d397585", "CC-BY-SA-3.0",
           "footsteps, doors, fire, water, glass breaking"),
    Source("sound-icons", "debian", "sound-icons", "0.1-8",
           "cbb7defa9cab0c86c9151e72c6c8a99a0ed21d244bc4c7cffdde7a0e4d9fa5b3", "GPL-2+",
           "piano, harpsichord, guitar, trumpet, cello, xylophone, canary"),
    Source("supertux", "debian", "supertux-data", "0.6.3-2",
           "a6ad8865972f1dbb5e7b49f4e1b381dd16a68f3028a3502cfeaca2400285d27f", "GPL-3+",
           "rain, thunder, splash, fire, door, saw, explosion"),
    Source("hedgewars", "debian", "hedgewars-data", "1.0.2-6",
           "722225903a72604403e6e0026e40e9a6953f47a74d94efc5f55504bc05bb4761", "GFDL-1.3",
           "bee, plane, hammer, footsteps, splash, explosion"),
    Source("frozen-bubble", "debian", "frozen-bubble-data", "2.212-11",
           "39cdfd07d9532d1558762cf265a844d09015c4540568573c50f444cc084166e0", "GPL-2",
           "applause"),
    Source("freeciv", "debian", "freeciv-data", "3.0.6-1+deb12u1",
           "278bed022b87408ca9923aa727bef3d6c97875c811723e93ff95dded1b9b76b2", "GPL-2+",
           "splash, explosions, footsteps"),
    Source("tuxpaint-data", "debian", "tuxpaint-data", "1:0.9.28-sdl2-1",
           "f5d0de8f9a70d2efc1241d19f26168cb8bf279f1b77abd3631e7a1a55c40e5e5", "GPL-2+",
           "harp, bell"),
    Source("pingus", "debian", "pingus-data", "0.7.6-5.1",
           "db503fdc34a7f86a02f2f1a77219b5cf4d813224cd4b13b5f0aad3af3d213805", "GPL-2+",
           "splash"),
    Source("0ad", "debian", "0ad-data", "0.0.26-1",
           "53745ae74d05bccf6783400fa98f3932b21729ab9d2e86151aa2c331c3455178", "CC-BY-SA-3.0",
           "dog bark, cattle, pig, sheep, horse, chicken, elephant, birds, footsteps, fire, rain, "
           "thunder, wind, rivers, saws (inside mods/public/public.zip)", cohort=1),
    Source("scratch", "debian", "scratch", "1.4.0.6~dfsg1-6.1",
           "36c582eb93110f64f06c4e685c41e933ccba2fa68db12f79b10bfe840b21fc10", "CC-BY-SA-3.0",
           "Scratch 1.4's sound library: dog, cat, duck, horse, owl, rooster, wolf, crickets, bird, "
           "bell, gong, door, car, footsteps, guitar, trumpet, drum (WAV only)", cohort=2),
    Source("scorched3d", "debian", "scorched3d-data", "44+dfsg-8",
           "b0be0a6d561966a62b1f135e0e6f5681c85f12e34ecad5777cb1af9fbcb7f1da", "GPL-2+",
           "dog, cows, sheep, rooster, birds, gulls, frogs, wolf, rain, thunder, splash, jets, "
           "helicopters, car horns, cheering, explosions (apoc mod: CC-BY-SA-3)", cohort=2),
    Source("btanks", "debian", "btanks-data", "0.9.8083-9",
           "fbe1a476d95c68fe73d87715f4f0aecc1bc5428a979cd19451722665c9dbb5ae",
           "GPL-2 with the Battle Tanks exception",
           "cow, helicopter, train, klaxon, car engine, footsteps, explosions", cohort=2),
    Source("micropolis", "debian", "micropolis-data", "0.0.20071228-10",
           "8d30b1cd0eb340f42ae71ea596a28bbdd57111afa1f381755d8c445a5e8e7b5c", "GPL-3+",
           "quacks, car horns, explosions", cohort=2),
    Source("supertuxkart", "debian", "supertuxkart-data", "1.4+dfsg-2",
           "568d69cda50dc8ad1facb89514bd14953dfca736fdb83c49ae330b0aa7dd2364", "GPL-3+",
           "cow, sheep, birds, hammer, anvil, thunder, rain, river, splash, steam train, jet, car "
           "engines, explosion, flute (per-file CC0 / CC-BY / CC-BY-SA / GPL)", cohort=2),
    Source("flare", "debian", "flare-game", "1.14-1",
           "4ab6a8298276013d35a0806257e130d992761af1b749041433b409c3dafec508", "CC-BY-SA-3.0+",
           "owl, birds, raven, river, wind, fire, anvil, door, footsteps, rain", cohort=2),
    Source("lmms", "debian", "lmms-common", "1.2.2+dfsg1-6",
           "7d9aa55dd05f11edc57104203ee1c350e3e41f8936ab3741da2bb1158fd46c37", "GPL-2+",
           "trumpet, brass, cello, violins, pianos, guitars, flute, applause, explosion",
           cohort=2),
    Source("brainparty", "debian", "brainparty-data", "0.61+dfsg-7",
           "fc01026824b6274eff222c9163ba134fc90889bd7d688091ffdee8e12cefc4d4", "GPL-3+",
           "meow, sheep, glass breaking, explosion", cohort=2),
    Source("ufoai", "debian", "ufoai-sound", "2.5-2",
           "0224308c10e1265581d1829f19eaef031175390fd0eafeb4a1d558ac6561ed4e", "CC-BY-SA-3.0",
           "glass breaking, thunder, wind, crickets, fire, water, splashes, doors, footsteps, "
           "explosions (inside base/0snd.pk3, a zip; per-file licences)", cohort=2),
    Source("lincity", "debian", "lincity-ng-data", "2.9~git20150314-5",
           "8f5e85bd42879abdc7099b035d7a3d7468eceb6b93b52a12270c28f3f3c792f9", "GPL-2+",
           "train, stadium crowd, fire", cohort=2),
    Source("foobillard", "debian", "foobillardplus-data", "3.43~svn170+dfsg-7",
           "48adfd599afdbcbc008fffdf982c5bb18ac62286dc012ac88e9b8abc556a28f4", "GPL-2",
           "applause", cohort=2),
    Source("simutrans", "debian", "simutrans-pak64", "121.0-1",
           "46c8420e162941e6d87382b43c508b1dbf48015fcd782f0c4425952ba72745cc", "Artistic-1.0",
           "horse, seagulls, saws, steam train, plane", cohort=2),
    Source("noto-emoji", "debian", "fonts-noto-color-emoji", "2.042-0+deb12u1",
           "a5ab0f69c7938423862320d9aca5dd187b3fd879d6a9a57dd52e17c3fa8d2751", "OFL-1.1",
           "Noto Color Emoji font (emoji renders)"),
    Source("openmoji", "npm", "openmoji", "17.0.0",
           "55ee7d13485dec86e9f38c1f3a645a13382d33ff97c0cd845ee824b0aef45e68", "CC-BY-SA-4.0",
           "OpenMoji colour and black line-art SVGs (emoji renders, second and third style)"),
    # More emoji drawings (cohort 1: their drawings split among themselves, so the earlier
    # renders keep their splits). One IconifyJSON file each, licence as the package states.
    Source("twemoji", "npm", "@iconify-json/twemoji", "1.2.5",
           "19046dff7d8707ce96212ec86468b36ac5f8e60409629dd13f809265c6d0ebb7", "CC-BY-4.0",
           "Twemoji (Twitter / jdecked) SVGs, and the codepoint -> name map of all Iconify sets",
           cohort=1),
    Source("fluent-emoji", "npm", "@iconify-json/fluent-emoji", "1.2.7",
           "8044210dbf11e016d4de85f15d01a243423bd832457e7e2491df1b751c0e272b", "MIT",
           "Microsoft Fluent Emoji, colour (gradient) SVGs", cohort=1),
    Source("fluent-emoji-flat", "npm", "@iconify-json/fluent-emoji-flat", "1.2.6",
           "7d064769dee690815f823bc5bcc511d957198caf9f5edd8dd9c1aa48a6aeb175", "MIT",
           "Microsoft Fluent Emoji, flat SVGs (the same drawings as the colour ones)", cohort=1),
    Source("emojione", "npm", "@iconify-json/emojione", "1.2.3",
           "26a14f44284407e8bcde91799388dca2bfd91dbcd55a97f425524a1c5b73610e", "CC-BY-4.0",
           "EmojiOne (EmojiTwo) SVGs", cohort=1),
    Source("fxemoji", "npm", "@iconify-json/fxemoji", "1.2.2",
           "f3e72b3c59d05e1db03b7e308d55c0d05bd7ba3f625a90da1b79313c12858eef", "Apache-2.0",
           "Mozilla FxEmoji SVGs", cohort=1),
    Source("streamline-emojis", "npm", "@iconify-json/streamline-emojis", "1.2.4",
           "5dac87c876b322500989828c5823143e0100d78881627a2e4081a4b897cbfdbc", "CC-BY-4.0",
           "Streamline emoji SVGs", cohort=1),
    Source("skimage", "wheel", "scikit-image", "installed", "",
           "BSD-3-Clause (per image: public domain / CC0 / CC-BY, see skimage/data/README.txt)",
           "background photos and textures bundled in the wheel"),
)

SOURCE_BY_KEY = {s.key: s for s in SOURCES}


class SourceError(RuntimeError):
    pass


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _run(cmd: list[str], cwd: Path) -> None:
    try:
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError as err:
        raise SourceError(f"{cmd[0]} not found: install it (Debian: apt-get install "
                          f"{'npm' if cmd[0] == 'npm' else 'apt dpkg'})") from err
    except subprocess.CalledProcessError as err:
        raise SourceError(f"`{' '.join(cmd)}` failed in {cwd}:\n{err.stderr.strip()}") from err


def _verified(path: Path, source: Source) -> bool:
    """True when `path` exists with the pinned hash; a wrong hash is deleted and reported."""
    if not path.exists():
        return False
    got = sha256_of(path)
    if got == source.sha256:
        return True
    path.unlink()
    raise SourceError(f"{path}: sha256 {got} differs from the pin {source.sha256} for "
                      f"{source.package}={source.version}; the corrupt file was deleted, re-run to "
                      "download it again (or update the pin in pretrain/pocket/sources.py if the "
                      "archive really changed)")


def deb_file_name(source: Source) -> str:
    # apt-get download writes the epoch colon URL-encoded
    return f"{source.package}_{source.version.replace(':', '%3a')}_all.deb"


def download_deb(source: Source, cache: Path) -> Path:
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    path = debs / deb_file_name(source)
    if _verified(path, source):
        return path
    spec = f"{source.package}={source.version}"
    try:
        _run(["apt-get", "download", spec], debs)
    except SourceError:
        # the package lists may be missing or stale on a fresh machine
        _run(["apt-get", "update"], debs)
        _run(["apt-get", "download", spec], debs)
    if not path.exists():
        raise SourceError(f"apt-get download {spec} ran but {path} is missing")
    if not _verified(path, source):
        raise SourceError(f"{path} vanished after download")
    return path


def download_npm(source: Source, cache: Path) -> Path:
    npm_dir = cache / "npm"
    npm_dir.mkdir(parents=True, exist_ok=True)
    # npm pack names "@scope/name" packages scope-name-VER.tgz
    path = npm_dir / f"{source.package.lstrip('@').replace('/', '-')}-{source.version}.tgz"
    if _verified(path, source):
        return path
    _run(["npm", "pack", f"{source.package}@{source.version}", "--silent"], npm_dir)
    if not _verified(path, source):
        raise SourceError(f"npm pack {source.package}@{source.version} did not write {path}")
    return path


def _atomic_extract(dest: Path, fill) -> Path:
    """Extract into a temp dir and rename, so an interrupted run never leaves half a tree."""
    if dest.exists():
        return dest
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    fill(tmp)
    tmp.rename(dest)
    return dest


def extract_deb(deb: Path, dest: Path) -> Path:
    def fill(tmp: Path) -> None:
        fsys = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        tar = subprocess.run(["tar", "-x", "-C", str(tmp), "--wildcards", "--no-anchored",
                              *DEB_MEMBERS], stdin=fsys.stdout, capture_output=True, text=True)
        fsys.stdout.close()
        if fsys.wait() != 0 or tar.returncode not in (0, 2):  # 2: some pattern matched nothing
            raise SourceError(f"unpacking {deb} failed: {tar.stderr.strip()}; delete it and re-run")
    return _atomic_extract(dest, fill)


def extract_npm(tgz: Path, dest: Path) -> Path:
    def fill(tmp: Path) -> None:
        with tarfile.open(tgz) as tar:
            members = [m for m in tar.getmembers() if m.isfile() and
                       (m.name.startswith(("package/color/svg/", "package/black/svg/")) or
                        m.name in ("package/LICENSE.txt", "package/package.json",
                                   "package/README.md", "package/icons.json", "package/chars.json",
                                   "package/info.json"))]
            tar.extractall(tmp, members=members, filter="data")
    return _atomic_extract(dest, fill)


def skimage_data_dir() -> Path:
    import skimage  # noqa: PLC0415  (only the build needs it)
    return Path(skimage.__file__).parent / "data"


@dataclass
class FetchedSource:
    source: Source
    artifact: str  # path of the downloaded file ("" for the wheel)
    sha256: str
    root: Path  # where its files are unpacked


def fetch_sources(keys: list[str] | None, cache: Path, progress=None) -> dict[str, FetchedSource]:
    """Download (or reuse from `cache`), verify and unpack the named sources (all when None)."""
    cache = Path(cache).expanduser()
    chosen = SOURCES if keys is None else tuple(SOURCE_BY_KEY[k] for k in keys)
    fetched: dict[str, FetchedSource] = {}
    for source in chosen:
        if progress is not None:
            progress(source)
        if source.kind == "debian":
            deb = download_deb(source, cache)
            root = extract_deb(deb, cache / "unpacked" / deb.stem)
            fetched[source.key] = FetchedSource(source, str(deb), source.sha256, root)
        elif source.kind == "npm":
            tgz = download_npm(source, cache)
            root = extract_npm(tgz, cache / "unpacked" / tgz.name.removesuffix(".tgz"))
            fetched[source.key] = FetchedSource(source, str(tgz), source.sha256, root)
        else:
            import skimage  # noqa: PLC0415
            resolved = Source(**{**asdict(source), "version": skimage.__version__})
            fetched[source.key] = FetchedSource(resolved, "", "", skimage_data_dir())
    return fetched


def write_sources_json(fetched: dict[str, FetchedSource], path: Path) -> None:
    rows = [{**asdict(f.source), "artifact": os.path.basename(f.artifact),
             "sha256": f.sha256, "client": {"debian": "apt-get download", "npm": "npm pack",
                                            "wheel": "pip (already installed)"}[f.source.kind]}
            for f in fetched.values()]
    write_text_atomic(path, json.dumps(rows, indent=2) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
