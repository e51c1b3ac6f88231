"""One layer blob read once, the way Docker reads it: hashed as stored (the descriptor's digest
and size), decompressed by its magic bytes (gzip, zstd, xz, bzip2, or a plain tar — Docker's
``DecompressStream`` rule, never trial decoding), the uncompressed stream hashed for the config's
``diff_id`` to its very end (Docker hashes trailing bytes after the tar too) and every compressed
stream read to its end (a gzip CRC or length that does not match is an error, as in Docker).

Every transport's layers go through :class:`LayerStream`; the tar reader pulls uncompressed
chunks from it and :meth:`LayerStream.finish` verifies once the last byte went by. Nothing is
written anywhere; memory is a few chunk buffers whatever the layer's size. Inflated bytes are
capped (:class:`Limits`) so a compression bomb stops within seconds, with one sentence."""

from __future__ import annotations

import bz2
import hashlib
import lzma
import os
import re
import zlib
from dataclasses import dataclass
from typing import IO

CHUNK = 1 << 20  # reads of 1 MiB: hashing runs at GB/s, Python overhead stays negligible
COMPRESSED_CHUNK = 64 << 10  # compressed input per inflate call: zlib re-copies what it did not use

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b?)\s*$", re.I)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class LayerError(Exception):
    """A layer that cannot be judged; the message is one sentence (without the layer's name,
    which the caller adds)."""


class DigestMismatch(LayerError):
    """Bytes that do not match what their descriptor or config states."""


class LimitExceeded(LayerError):
    """More inflated bytes or entries than :class:`Limits` allow."""


@dataclass(frozen=True)
class Limits:
    """Bounds no operator image comes near (they are ~150 MB) but a bomb does, each reached
    within seconds (inflating runs at a few hundred MB/s). Defaults overridable by environment:
    ``DHI_MAX_LAYER_BYTES`` (inflated bytes per layer, ``1GiB``), ``DHI_MAX_LAYER_ENTRIES``
    (tar entries per layer, 1,000,000), ``DHI_MAX_IMAGE_BYTES`` (inflated bytes of all layers,
    ``2GiB``)."""

    layer_bytes: int = 1 << 30
    layer_entries: int = 1_000_000
    image_bytes: int = 2 << 30

    @classmethod
    def from_env(cls, environ=os.environ) -> "Limits":
        values = {}
        for field, var in (("layer_bytes", "DHI_MAX_LAYER_BYTES"),
                           ("layer_entries", "DHI_MAX_LAYER_ENTRIES"),
                           ("image_bytes", "DHI_MAX_IMAGE_BYTES")):
            text = environ.get(var, "").strip()
            if text:
                values[field] = parse_size(text, var)
        return cls(**values)


def parse_size(text: str, what: str) -> int:
    """``1000000``, ``512MiB``, ``4G`` (binary units)."""
    match = _SIZE.match(text)
    if not match or (match.group(3) and not match.group(2) and match.group(3).lower() != "b"):
        raise ValueError(f"{what}={text!r} is not a size (e.g. 4GiB, 512M or 1000000)")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def human(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}".replace(".0 ", " ")
    return f"{n} bytes"


# -- compression --------------------------------------------------------------------------------

# moby's pkg/archive DecompressStream: the stream's first bytes decide, nothing else.
_MAGIC = (("bzip2", b"BZh"), ("gzip", b"\x1f\x8b\x08"), ("xz", b"\xfd7zXZ\x00"),
          ("zstd", b"\x28\xb5\x2f\xfd"))


def detect_compression(head: bytes) -> str:
    for name, magic in _MAGIC:
        if head.startswith(magic):
            return name
    if len(head) >= 4 and int.from_bytes(head[:4], "little") & 0xFFFFFFF0 == 0x184D2A50:
        return "zstd"  # a zstd skippable frame
    return "tar"


class _Raw:
    """The blob as stored: every byte hashed and counted; a blob longer than its descriptor
    stops at once (no reading of a huge blob that claims to be small)."""

    def __init__(self, stream: IO[bytes], algorithm: str | None, size: int | None):
        self.stream = stream
        self.hash = hashlib.new(algorithm) if algorithm else None
        self.size = size
        self.count = 0
        self._head = b""

    def peek(self, n: int) -> bytes:
        while len(self._head) < n:
            data = self.stream.read(CHUNK)
            if not data:
                break
            self._account(data)
            self._head += data
        return self._head[:n]

    def read(self, n: int = CHUNK) -> bytes:
        if self._head:
            data, self._head = self._head[:n], self._head[n:]
            return data
        data = self.stream.read(n)
        if data:
            self._account(data)
        return data

    def _account(self, data: bytes) -> None:
        if self.hash is not None:
            self.hash.update(data)
        self.count += len(data)
        if self.size is not None and self.count > self.size:
            raise DigestMismatch(f"blob is longer than the {self.size} bytes its descriptor states")


class _Members:
    """A decompressor over a sequence of members (gzip, xz, bzip2 streams concatenated, as the
    decoders Docker uses accept), output bounded per read so a bomb never fills memory."""

    def __init__(self, raw: _Raw, kind: str):
        self.raw, self.kind = raw, kind
        self.decoder = self._new()
        self.pending = b""
        self.full = False  # the last read was cut at its size: more output may be waiting
        self.done = False

    def _new(self):
        if self.kind == "gzip":
            return zlib.decompressobj(wbits=31)
        if self.kind == "xz":
            return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        return bz2.BZ2Decompressor()

    def read(self, n: int = CHUNK) -> bytes:
        while not self.done:
            if self.kind == "gzip":  # zlib may hold output back when a read filled ``n``
                needs_input = not self.pending and not self.full
            else:
                needs_input = self.decoder.needs_input and not self.pending
            if needs_input:
                self.pending = self.raw.read(COMPRESSED_CHUNK)
                if not self.pending:
                    raise LayerError(f"{self.kind} stream is truncated (unexpected EOF)")
            try:
                out = self.decoder.decompress(self.pending, n)
            except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError) as exc:
                raise LayerError(self._corrupt(exc)) from None
            self.full = len(out) == n
            self.pending = self.decoder.unconsumed_tail if self.kind == "gzip" else b""
            if self.decoder.eof:
                self._next_member(self.decoder.unused_data + self.pending)
            if out:
                return out
        return b""

    def _corrupt(self, exc: Exception) -> str:
        text = str(exc)
        if "incorrect data check" in text or "incorrect length check" in text:
            return "gzip: invalid checksum (the stream's CRC-32 or length does not match its data)"
        return f"{self.kind} data is corrupt ({text})"

    def _next_member(self, rest: bytes) -> None:
        """After one member: more members, padding (xz) or the end; anything else is refused,
        as Go's gzip/bzip2 readers and the xz tool refuse trailing garbage."""
        magic = {"gzip": b"\x1f\x8b\x08", "xz": b"\xfd7zXZ\x00", "bzip2": b"BZh"}[self.kind]
        padding = 0
        while True:
            if self.kind == "xz":
                stripped = rest.lstrip(b"\0")
                padding, rest = padding + len(rest) - len(stripped), stripped
            if len(rest) >= len(magic) or (rest and not magic.startswith(rest)):
                break
            more = self.raw.read()
            if not more:
                if rest:
                    break
                if padding % 4:
                    raise LayerError("xz data is corrupt (stream padding is not a multiple of 4 bytes)")
                self.done = True
                return
            rest += more
        if not rest.startswith(magic):
            raise LayerError(f"{self.kind}: invalid header after the last stream (trailing bytes "
                             "that are not compressed data)")
        self.decoder = self._new()
        self.pending = rest
        self.full = False


class _Zstd:
    """zstd through the ``zstandard`` package: frames read across, output bounded per read. A
    cut-off stream decodes to a prefix, which the diff_id (and blob digest) checks then refuse."""

    def __init__(self, raw: _Raw):
        import zstandard

        self._error = zstandard.ZstdError
        self.reader = zstandard.ZstdDecompressor().stream_reader(raw, read_size=CHUNK,
                                                                  read_across_frames=True)

    def read(self, n: int = CHUNK) -> bytes:
        try:
            return self.reader.read(n)
        except self._error as exc:
            raise LayerError(f"zstd data is corrupt ({exc})") from None


def decompressed(stream: IO[bytes]) -> tuple[object, str]:
    """A reader (``read(n)``) of a stream's uncompressed bytes, and the compression found.
    For archives that hold images (a gzipped ``docker save``), not for layers."""
    raw = _Raw(stream, None, None)
    kind = detect_compression(raw.peek(10))
    if kind == "tar":
        return raw, kind
    return (_Zstd(raw) if kind == "zstd" else _Members(raw, kind)), kind


# -- the verified stream ------------------------------------------------------------------------


def split_digest(digest: str, what: str) -> tuple[str, str]:
    algorithm, _, hexpart = str(digest).partition(":")
    lengths = {"sha256": 64, "sha512": 128}
    if algorithm not in lengths or len(hexpart) != lengths[algorithm] or \
            not all(c in "0123456789abcdef" for c in hexpart):
        raise DigestMismatch(f"{what} {digest!r} is not a sha256/sha512 digest")
    return algorithm, hexpart


class LayerStream:
    """Uncompressed chunks of one layer blob for the tar reader; :meth:`finish` verifies.

    ``digest``/``size``: the blob's descriptor ("" / None when the transport has none, as for
    a ``docker save`` layer.tar); ``diff_id``: the config's digest of the uncompressed tar."""

    def __init__(self, stream: IO[bytes], *, digest: str, size: int | None, diff_id: str,
                 limits: Limits, budget: int | None = None):
        self.digest, self.diff_id = digest, diff_id
        self.limit = limits.layer_bytes if budget is None else min(limits.layer_bytes, budget)
        self.limit_is_image = budget is not None and budget < limits.layer_bytes
        diff_algorithm, _ = split_digest(diff_id, "the config's diff_id")
        blob_algorithm = split_digest(digest, "its descriptor's digest")[0] if digest else diff_algorithm
        self.raw = _Raw(stream, blob_algorithm, size if digest else None)
        self.compression = detect_compression(self.raw.peek(10))
        self.inflated = 0
        if self.compression == "tar":
            self.source = self.raw
            # A plain tar is its own uncompressed stream: one hash serves both checks when the
            # algorithms agree.
            self.diff_hash = None if blob_algorithm == diff_algorithm else hashlib.new(diff_algorithm)
        else:
            self.source = _Zstd(self.raw) if self.compression == "zstd" else _Members(self.raw, self.compression)
            self.diff_hash = hashlib.new(diff_algorithm)
        self.ended = False

    def chunk(self) -> bytes:
        if self.ended:
            return b""
        data = self.source.read(CHUNK)
        if not data:
            self.ended = True
            return b""
        self.inflated += len(data)
        if self.inflated > self.limit:
            which = "DHI_MAX_IMAGE_BYTES" if self.limit_is_image else "DHI_MAX_LAYER_BYTES"
            raise LimitExceeded(f"inflates to more than {human(self.limit)} ({which}; a compression "
                             f"bomb, or raise the limit with {which}=…)")
        if self.diff_hash is not None:
            self.diff_hash.update(data)
        return data

    def drain(self) -> None:
        while self.chunk():
            pass

    def finish(self) -> dict:
        """Read whatever is left, then check size, digest and diff_id; the record of what was
        verified (for the report)."""
        self.drain()
        raw = self.raw
        if self.digest:
            actual = f"{raw.hash.name}:{raw.hash.hexdigest()}"
            if actual != self.digest or (raw.size is not None and raw.count != raw.size):
                raise DigestMismatch(f"blob does not match its digest: expected {self.digest} "
                                     f"({raw.size} bytes), the bytes hash to {actual} ({raw.count} bytes)")
        diff = self.diff_hash or raw.hash
        actual = f"{diff.name}:{diff.hexdigest()}"
        if actual != self.diff_id:
            raise DigestMismatch(f"uncompressed content does not match the config's diff_id: "
                                 f"expected {self.diff_id}, it hashes to {actual} (docker load "
                                 "refuses it: invalid diffID)")
        record = {"diff_id": self.diff_id, "compression": self.compression, "size": raw.count}
        if self.digest:
            record["digest"] = self.digest
        return record
