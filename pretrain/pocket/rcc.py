"""Reader for Qt binary resource bundles (`.rcc`), as shipped by gcompris-qt-data.

Format (Qt's rcc.cpp / qresource.cpp, all integers big-endian):

    header   "qres", u32 version (1..3), u32 tree_offset, u32 data_offset, u32 names_offset,
             [u32 flags if version >= 3]
    tree     fixed-size nodes, node 0 is the root directory:
               u32 name_offset, u16 flags (1 = zlib, 2 = directory, 4 = zstd),
               directory: u32 child_count, u32 first_child_index
               file:      u16 territory, u16 language, u32 data_offset
               [u64 mtime_ms if version >= 2]
    names    at name_offset: u16 length, u32 hash, UTF-16BE name (length code units)
    data     at data_offset: u32 size, payload; zlib payloads are qCompress blobs
             (u32 uncompressed size, then a zlib stream)
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

FLAG_ZLIB = 0x01
FLAG_DIRECTORY = 0x02
FLAG_ZSTD = 0x04


class RccError(ValueError):
    pass


def _u16(buf: bytes, at: int) -> int:
    return struct.unpack_from(">H", buf, at)[0]


def _u32(buf: bytes, at: int) -> int:
    return struct.unpack_from(">I", buf, at)[0]


def read_rcc(path: str | Path) -> dict[str, bytes]:
    """All files in the bundle as {"dir/sub/name.ext": bytes} (paths without the leading ':/')."""
    path = Path(path)
    buf = path.read_bytes()
    try:
        return parse_rcc(buf)
    except (struct.error, zlib.error, IndexError) as err:
        raise RccError(f"{path}: truncated or corrupt Qt resource bundle ({err}); "
                       "re-extract it from its .deb (delete the cache dir entry)") from err
    except RccError as err:
        raise RccError(f"{path}: {err}") from None


def parse_rcc(buf: bytes) -> dict[str, bytes]:
    if buf[:4] != b"qres":
        raise RccError(f"not a Qt resource bundle: magic {buf[:4]!r}, expected b'qres'")
    version = _u32(buf, 4)
    if version not in (1, 2, 3):
        raise RccError(f"unsupported rcc version {version} (this reader knows 1, 2, 3)")
    tree, data, names = _u32(buf, 8), _u32(buf, 12), _u32(buf, 16)
    node_size = 14 if version == 1 else 22

    def name_at(offset: int) -> str:
        length = _u16(buf, names + offset)
        start = names + offset + 6  # skip length and hash
        return buf[start:start + 2 * length].decode("utf-16-be")

    def payload(offset: int, flags: int) -> bytes:
        size = _u32(buf, data + offset)
        blob = buf[data + offset + 4:data + offset + 4 + size]
        if len(blob) != size:
            raise RccError(f"entry at data offset {offset} is truncated")
        if flags & FLAG_ZSTD:
            raise RccError("zstd-compressed entries are not supported (gcompris uses zlib)")
        if flags & FLAG_ZLIB:
            expected = _u32(blob, 0)
            out = zlib.decompress(blob[4:])
            if len(out) != expected:
                raise RccError(f"entry at data offset {offset}: {len(out)} bytes after "
                               f"inflate, header says {expected}")
            return out
        return blob

    files: dict[str, bytes] = {}
    seen: set[int] = set()

    def walk(index: int, prefix: str) -> None:
        if index in seen:
            raise RccError(f"tree node {index} visited twice (cyclic tree)")
        seen.add(index)
        at = tree + index * node_size
        flags = _u16(buf, at + 4)
        name = "" if index == 0 else name_at(_u32(buf, at))
        full = f"{prefix}/{name}" if prefix else name
        if flags & FLAG_DIRECTORY:
            count, first = _u32(buf, at + 6), _u32(buf, at + 10)
            for child in range(first, first + count):
                walk(child, full)
        else:
            files[full] = payload(_u32(buf, at + 10), flags)

    walk(0, "")
    return files
