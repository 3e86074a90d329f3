"""Per-file licences from Debian machine-readable copyright files (DEP-5).

DEP-5 `Files:` patterns are written against the upstream source tree ("src/activities/x/*.ogg",
"etc/samples/a.flac"), while we see installed paths ("usr/share/sonic-pi/samples/a.flac") or
paths inside a container. So a pattern matches when it, or a tail of it that still names two
literal directories, matches the same number of trailing components of the path; a pattern
without '/' matches the file name. The last matching
paragraph wins, as DEP-5 says. Packages whose copyright file is not DEP-5 get their Source's
default licence.
"""

from __future__ import annotations

import re
from pathlib import Path


def parse_dep5(text: str) -> list[tuple[list[str], str]] | None:
    """[(patterns, licence)] in file order, or None when the file is not DEP-5."""
    if not re.match(r"Format:\s*\S+", text):
        return None
    stanzas = []
    for para in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in para.splitlines():
            if line[:1] in (" ", "\t"):
                if key:
                    fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if "files" in fields and "license" in fields:
            patterns = fields["files"].split()
            licence = fields["license"].splitlines()[0].strip()
            if patterns and licence:
                stanzas.append((patterns, licence))
    return stanzas


def _glob_regex(pattern: str) -> re.Pattern:
    # '*' and '?' stay inside one path component here (stricter than DEP-5), so a code
    # paragraph like "hedgewars/*" cannot swallow "hedgewars/Data/Sounds/bee.ogg".
    out = "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in pattern)
    return re.compile(out + r"\Z")


def _pattern_tails(pattern: str) -> list[str]:
    """The pattern and its tails that still name at least two literal directories."""
    parts = pattern.strip("/").split("/")
    if len(parts) == 1:
        return parts
    tails = []
    for i in range(len(parts)):
        tail = parts[i:]
        literal_dirs = [d for d in tail[:-1] if not any(c in d for c in "*?[")]
        if i == 0 or len(literal_dirs) >= 2:
            tails.append("/".join(tail))
    return tails


def _is_literal(component: str) -> bool:
    return not any(c in component for c in "*?[")


def pattern_matches(pattern: str, path: str) -> bool:
    parts = path.strip("/").split("/")
    for tail in _pattern_tails(pattern):
        depth = tail.count("/") + 1
        if len(parts) >= depth and _glob_regex(tail).match("/".join(parts[-depth:])):
            return True
        # "a/b/c/*" (a whole directory named by >= 2 literal components) covers its subfolders,
        # as in DEP-5: Scorched3D's "data/globalmods/apoc/*" names the mod's data/wav/... clips
        head = tail.split("/")[:-1]
        if tail.endswith("/*") and len(head) >= 2 and all(_is_literal(d) for d in head):
            if any(parts[i:i + len(head)] == head for i in range(len(parts) - len(head))):
                return True
    return False


def license_for(stanzas: list[tuple[list[str], str]] | None, path: str, default: str) -> str:
    """Licence of `path`: the last specific DEP-5 paragraph matching it, else `default`.

    Catch-all `Files: *` paragraphs are skipped: they usually describe the code, while the
    Source's default licence (sources.py) was checked by hand for the media we take.
    """
    found = default
    for patterns, licence in stanzas or ():
        if patterns != ["*"] and any(pattern_matches(p, path) for p in patterns):
            found = licence
    return found


def read_copyright(root: Path, package: str) -> list[tuple[list[str], str]] | None:
    path = root / "usr/share/doc" / package / "copyright"
    if not path.exists():
        return None
    return parse_dep5(path.read_text(encoding="utf-8", errors="replace"))


_OPENSFX_LICENSES = (
    ("Zero 1.0", "CC0-1.0"),
    ("Attribution-ShareAlike 3.0", "CC-BY-SA-3.0"),
    ("Attribution 3.0", "CC-BY-3.0"),
)


def opensfx_license(credit: str, default: str) -> str:
    """Licence named in an OpenSFX credit line ('... License: Creative Commons Zero 1.0.')."""
    tail = credit.rpartition("License:")[2]
    for needle, spdx in _OPENSFX_LICENSES:
        if needle in tail:
            return spdx
    return default
