"""Reader for OpenTTD sound bank files (`opensfx.cat`, `sample.cat`).

Format (OpenTTD src/sound.cpp, integers little-endian):

    table    N entries of (u32 offset, u32 size); the first offset also marks the end of the
             table, so N = (first_offset & 0x7FFFFFFF) / 8. Bit 31 set on the offsets = "new"
             format (OpenSFX), where every entry is a complete RIFF/WAVE file.
    entry    at offset: u8 name_length, name (name_length bytes, NUL-terminated), then
             size - 1 - name_length bytes of audio (a RIFF/WAVE file in the new format).

OpenSFX stores a credit line as the name ('"Good Year". By Janis Lukss. License: ...').
The entry's index is its meaning: OpenTTD's SoundFx enum (SND_02_CONSTRUCTION_WATER = 0, ...).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path


class SoundBankError(ValueError):
    pass


@dataclass(frozen=True)
class SoundBankEntry:
    index: int
    name: str  # for OpenSFX: title, author and licence
    data: bytes  # a RIFF/WAVE file; empty for unused slots


def read_sound_bank(path: str | Path) -> list[SoundBankEntry]:
    path = Path(path)
    try:
        return parse_sound_bank(path.read_bytes())
    except (struct.error, SoundBankError) as err:
        raise SoundBankError(f"{path}: {err}; re-extract it from its .deb "
                             "(delete the cache dir entry)") from None


def parse_sound_bank(buf: bytes) -> list[SoundBankEntry]:
    if len(buf) < 8:
        raise SoundBankError(f"too short for a sound bank ({len(buf)} bytes)")
    first = struct.unpack_from("<I", buf, 0)[0]
    if not first & 0x80000000:
        raise SoundBankError("old-format (original TTD) sound bank: only the new format, "
                             "with RIFF/WAVE entries, is supported")
    table_size = first & 0x7FFFFFFF
    if table_size == 0 or table_size % 8 or table_size > len(buf):
        raise SoundBankError(f"bad table size {table_size} (must be a positive multiple of 8)")
    entries = []
    for index in range(table_size // 8):
        offset, size = struct.unpack_from("<II", buf, index * 8)
        offset &= 0x7FFFFFFF
        if offset + size > len(buf) or size == 0:
            raise SoundBankError(f"entry {index} (offset {offset}, size {size}) runs past the "
                                 f"end of the file ({len(buf)} bytes)")
        name_length = buf[offset]
        name = buf[offset + 1:offset + min(size, 1 + name_length)].split(b"\0", 1)[0]
        if size <= 1 + name_length:
            # OpenSFX fills unused slots with a name-only stub ("Unused/Nothing").
            entries.append(SoundBankEntry(index, name.decode("utf-8", "replace"), b""))
            continue
        data = buf[offset + 1 + name_length:offset + size]
        if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
            raise SoundBankError(f"entry {index} is not a RIFF/WAVE file")
        entries.append(SoundBankEntry(index, name.decode("utf-8", "replace"), data))
    return entries
