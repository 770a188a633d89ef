"""Reading a GGUF file's header (its key/value metadata and tensor list) without parsing the
tokenizer: arrays are skipped, not decoded, so a 262k-token vocabulary costs one pass over
its string lengths instead of a Python object per token (``gguf.GGUFReader`` takes seconds).

The format (ggml/docs/gguf.md): ``GGUF``, uint32 version (2 or 3), uint64 tensor count,
uint64 key/value count; then each key (uint64 length + UTF-8), a uint32 value type and the
value; then each tensor's name, uint32 dimension count, the uint64 dimensions, uint32 type and
uint64 offset. Everything is little-endian. Sizes are checked against the file before they are
used, so a header claiming a 2^60-byte string is an error, not an allocation.
"""

from __future__ import annotations

import itertools
import math
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = b"GGUF"
VERSIONS = (2, 3)
MAX_KEY_BYTES = 65_536
MAX_VALUE_STRING_BYTES = 64 * 1024 * 1024  # a chat template is a few KiB; a token a few bytes
MAX_DIMS = 8

# value types: fixed-size ones by their struct code; 8 = string, 9 = array
_FIXED = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")
# the keys whose string values are kept (everything else that is a string is only skipped)
STRING_KEYS = ("general.architecture", "general.name", "tokenizer.chat_template", "tokenizer.ggml.model")


class HeaderError(Exception):
    """The file is not a GGUF file we can read; the message says why, in a few words."""


@dataclass
class Header:
    version: int
    values: dict[str, object] = field(default_factory=dict)  # scalars, and the STRING_KEYS strings
    arrays: dict[str, int] = field(default_factory=dict)  # array keys and their lengths
    strings: set[str] = field(default_factory=set)  # every string-valued key, kept or not
    parameter_count: int = 0
    tensor_count: int = 0

    def has(self, key: str) -> bool:
        return key in self.values or key in self.arrays or key in self.strings


class _Cursor:
    def __init__(self, buf: mmap.mmap | bytes, size: int) -> None:
        self.buf = buf
        self.size = size
        self.pos = 0

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise HeaderError(f"truncated header ({what} runs past the end of the file)")

    def u32(self, what: str) -> int:
        self.need(4, what)
        (v,) = _U32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return int(v)

    def u64(self, what: str) -> int:
        self.need(8, what)
        (v,) = _U64.unpack_from(self.buf, self.pos)
        self.pos += 8
        return int(v)

    def string(self, what: str, limit: int) -> str:
        n = self.u64(what)
        if n > limit:
            raise HeaderError(f"absurd header ({what} claims {n} bytes)")
        self.need(n, what)
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return raw.decode("utf-8", "replace")

    def skip_string(self, what: str) -> None:
        n = self.u64(what)
        self.need(n, what)
        self.pos += n

    def fixed(self, kind: int, what: str) -> object:
        code = _FIXED[kind]
        width = struct.calcsize(code)
        self.need(width, what)
        (v,) = struct.unpack_from("<" + code, self.buf, self.pos)
        self.pos += width
        return v

    def skip_array(self, what: str) -> int:
        kind = self.u32(what)
        count = self.u64(what)
        if kind in _FIXED:
            width = struct.calcsize(_FIXED[kind])
            if count > self.size // max(width, 1):
                raise HeaderError(f"absurd header ({what} claims {count} elements)")
            self.need(count * width, what)
            self.pos += count * width
        elif kind == _STRING:
            if count > self.size // 8:
                raise HeaderError(f"absurd header ({what} claims {count} strings)")
            self._skip_strings(count, what)
        elif kind == _ARRAY:
            if count > self.size // 12:
                raise HeaderError(f"absurd header ({what} claims {count} arrays)")
            for _ in range(count):
                self.skip_array(what)
        else:
            raise HeaderError(f"corrupt header ({what} has unknown element type {kind})")
        return count

    def _skip_strings(self, count: int, what: str) -> None:
        # The hot loop of a big vocabulary (262k tokens: ~30 ms): one unpack and one add per
        # string. A length that runs past the end makes the next unpack raise.
        buf, pos, unpack = self.buf, self.pos, _U64.unpack_from
        try:
            for _ in itertools.repeat(None, count):
                pos += 8 + unpack(buf, pos)[0]
        except struct.error:
            raise HeaderError(f"truncated header ({what} runs past the end of the file)") from None
        if pos > self.size:
            raise HeaderError(f"truncated header ({what} runs past the end of the file)")
        self.pos = pos


def read_header(path: Path) -> Header:
    """The metadata and tensor list of a GGUF file; ``HeaderError`` if it is not one."""
    with path.open("rb") as f:
        size = path.stat().st_size
        if size < 24:
            raise HeaderError("truncated header (the file is smaller than a GGUF header)")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(_Cursor(buf, size))


def _parse(c: _Cursor) -> Header:
    c.need(4, "magic")
    if bytes(c.buf[0:4]) != MAGIC:
        raise HeaderError("bad magic number: not a GGUF file")
    c.pos = 4
    version = c.u32("version")
    if version not in VERSIONS:
        raise HeaderError(f"GGUF version {version} is not supported (2 or 3 are)")
    n_tensors = c.u64("tensor count")
    n_kv = c.u64("key count")
    if n_tensors > c.size // 24 or n_kv > c.size // 12:
        raise HeaderError(f"absurd header ({n_tensors} tensors, {n_kv} keys)")
    header = Header(version=version, tensor_count=n_tensors)
    for _ in range(n_kv):
        key = c.string("a key", MAX_KEY_BYTES)
        kind = c.u32(key)
        if kind in _FIXED:
            header.values[key] = c.fixed(kind, key)
        elif kind == _STRING:
            header.strings.add(key)
            if key in STRING_KEYS:
                header.values[key] = c.string(key, MAX_VALUE_STRING_BYTES)
            else:
                c.skip_string(key)
        elif kind == _ARRAY:
            header.arrays[key] = c.skip_array(key)
        else:
            raise HeaderError(f"corrupt header ({key} has unknown value type {kind})")
    for _ in range(n_tensors):
        c.skip_string("a tensor name")
        n_dims = c.u32("a tensor")
        if n_dims > MAX_DIMS:
            raise HeaderError(f"corrupt header (a tensor with {n_dims} dimensions)")
        c.need(8 * n_dims + 12, "a tensor")
        dims = struct.unpack_from(f"<{n_dims}Q", c.buf, c.pos)
        c.pos += 8 * n_dims + 12  # the dimensions, the type, the offset
        header.parameter_count += math.prod(dims)
    return header
