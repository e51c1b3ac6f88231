"""A streaming tar header reader that parses layers the way Docker does.

Docker applies a layer with Go's ``archive/tar``; Python's :mod:`tarfile` disagrees with it on
inputs a hostile vendor can craft (a PAX global header renames every later member in tarfile and
nothing in Go; tarfile reads a PAX header of any claimed size into memory; ``'7'`` is a regular
file to tarfile and refused by Docker). This module follows Go's reader: header checksum and
format detection, base-256 and octal numbers, the USTAR prefix, PAX records (``path``,
``linkpath``, ``size``, ``uid``, ``gid``, ``SCHILY.xattr.*``; a record with an empty value keeps
the header's field), GNU long names, PAX sparse names, the 1 MiB cap on special headers, the
``'\\0'`` type flag read as a directory when the name ends in ``/``.

It keeps nothing but the current header: :meth:`TarReader.next` returns one :class:`TarHeader`
after the previous entry's data was skipped (read through, never seeked: every byte goes through
the caller's hashes)."""

from __future__ import annotations

import re
from typing import Callable

BLOCK = 512
MAX_SPECIAL = 1 << 20  # Go's maxSpecialFileSize: PAX and GNU long-name headers
_ZERO = bytes(BLOCK)
HEADER_ONLY = frozenset("1234 56".replace(" ", ""))  # link, symlink, char, block, dir, fifo

# Go's type flags, as characters.
REG, REGA, LINK, SYMLINK, CHAR, BLOCKDEV, DIR, FIFO = "0", "\0", "1", "2", "3", "4", "5", "6"
XHEADER, XGLOBAL, GNU_LONGNAME, GNU_LONGLINK = "x", "g", "L", "K"


class TarError(Exception):
    """The stream is not a tar archive Go's reader accepts; the message is Go's reason."""


class TarHeader:
    __slots__ = ("name", "type", "mode", "uid", "gid", "size", "linkname", "devmajor",
                 "devminor", "xattrs")

    def __init__(self, name, type_, mode, uid, gid, size, linkname, devmajor, devminor):
        self.name, self.type, self.mode, self.uid, self.gid = name, type_, mode, uid, gid
        self.size, self.linkname, self.devmajor, self.devminor = size, linkname, devmajor, devminor
        self.xattrs: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"<TarHeader {self.type!r} {self.name!r}>"


class TarReader:
    """Headers of a tar stream, in order. ``chunks()`` yields the uncompressed bytes (any
    sizes; ``b""`` at the end); ``seek(n)``, when given, skips ``n`` bytes without reading
    them and returns how many the stream had (a seekable outer archive, never a layer)."""

    def __init__(self, chunks: Callable[[], bytes], seek: Callable[[int], int] | None = None):
        self._next_chunk = chunks
        self._seek = seek  # skip n bytes without reading them (a seekable outer archive only)
        self._buf = b""
        self._pos = 0
        self._eof = False
        self._data_left = 0  # data bytes of the current entry not consumed yet
        self._pad = 0
        self.offset = 0  # bytes consumed from the stream (for seekable callers)

    # -- the byte source ------------------------------------------------------------------

    def _fill(self, want: int) -> bool:
        """Make ``want`` bytes available at ``_pos``; False when the stream ends first."""
        while len(self._buf) - self._pos < want:
            if self._eof:
                return False
            chunk = self._next_chunk()
            if not chunk:
                self._eof = True
                return False
            rest = self._buf[self._pos:]
            self._buf = rest + chunk if rest else chunk
            self._pos = 0
        return True

    def _read(self, n: int) -> bytes:
        """Exactly ``n`` bytes, else b"" (nothing left) or a TarError (cut short)."""
        if not self._fill(n):
            if len(self._buf) - self._pos == 0:
                return b""
            raise TarError("unexpected EOF")
        data = self._buf[self._pos:self._pos + n]
        self._pos += n
        self.offset += n
        return data

    def _skip(self, n: int) -> int:
        """Consume up to ``n`` bytes; returns how many the stream had."""
        done = 0
        if self._seek is not None:
            take = min(len(self._buf) - self._pos, n)
            self._pos += take
            done = take + (self._seek(n - take) if take < n else 0)
            self.offset += done
            return done
        while done < n:
            avail = len(self._buf) - self._pos
            if avail == 0:
                if self._eof:
                    break
                chunk = self._next_chunk()
                if not chunk:
                    self._eof = True
                    break
                self._buf, self._pos = chunk, 0
                continue
            take = min(avail, n - done)
            self._pos += take
            done += take
        self.offset += done
        return done

    def drain(self) -> None:
        """Consume the rest of the stream (trailing bytes count toward the diff_id)."""
        self._buf, self._pos = b"", 0
        while not self._eof:
            if not self._next_chunk():
                self._eof = True

    def read_data(self, limit: int) -> bytes:
        """The current entry's data, when it is at most ``limit`` bytes (else b"" and the data
        is skipped as usual)."""
        if self._data_left > limit:
            return b""
        data = self._read(self._data_left) if self._data_left else b""
        if len(data) != self._data_left:
            raise TarError("unexpected EOF")
        self._data_left = 0
        return data

    def _skip_unread(self) -> None:
        data, pad = self._data_left, self._pad
        self._data_left = self._pad = 0
        skipped = self._skip(data + pad)
        if skipped < data:
            raise TarError("unexpected EOF")

    # -- headers ---------------------------------------------------------------------------

    def next(self) -> TarHeader | None:
        """The next entry's header, or None at the end of the archive."""
        pax: dict[str, str] = {}
        long_name = long_link = ""
        while True:
            self._skip_unread()
            hdr = self._read_header()
            if hdr is None:
                return None
            self._set_data(hdr)
            t = hdr.type
            if t in (XHEADER, XGLOBAL):
                records = _parse_pax(self._special())
                if t == XGLOBAL:  # returned as an entry of its own; never applied to others
                    _merge_pax(hdr, records)
                    return hdr
                pax = records
                continue
            if t in (GNU_LONGNAME, GNU_LONGLINK):
                text = _cstr(self._special())
                if t == GNU_LONGNAME:
                    long_name = text
                else:
                    long_link = text
                continue
            _merge_pax(hdr, pax)
            if long_name:
                hdr.name = long_name
            if long_link:
                hdr.linkname = long_link
            if hdr.type == REGA:
                hdr.type = DIR if hdr.name.endswith("/") else REG
            self._set_data(hdr)  # PAX may have changed the size
            _sparse_pax(hdr, pax)
            return hdr

    def _set_data(self, hdr: TarHeader) -> None:
        size = 0 if hdr.type in HEADER_ONLY else hdr.size
        if size < 0:
            raise TarError("archive/tar: invalid tar header")
        self._data_left = size
        self._pad = -size % BLOCK

    def _special(self) -> bytes:
        if self._data_left > MAX_SPECIAL:
            raise TarError("archive/tar: header field too long")
        return self.read_data(MAX_SPECIAL)

    def _read_header(self) -> TarHeader | None:
        block = self._read(BLOCK)
        if not block:
            return None  # exactly at EOF: Go accepts a tar without end blocks
        if block == _ZERO:
            block = self._read(BLOCK)
            if not block or block == _ZERO:
                return None
            raise TarError("archive/tar: invalid tar header")
        fmt = _format(block)
        if fmt is None:
            raise TarError("archive/tar: invalid tar header")
        name = _cstr(block[0:100])
        type_ = chr(block[156])
        mode = _numeric(block[100:108])
        uid = _numeric(block[108:116])
        gid = _numeric(block[116:124])
        size = _numeric(block[124:136])
        linkname = _cstr(block[157:257])
        devmajor = devminor = 0
        if fmt != "v7":
            if type_ in (CHAR, BLOCKDEV):
                devmajor = _numeric(block[329:337])
                devminor = _numeric(block[337:345])
            prefix = ""
            if fmt == "ustar":
                prefix = _cstr(block[345:500])
            elif fmt == "star":
                prefix = _cstr(block[345:476])
            if prefix:
                name = prefix + "/" + name
        return TarHeader(name, type_, mode, uid, gid, size, linkname, devmajor, devminor)


def _cstr(b: bytes) -> str:
    """Go's parseString: up to the first NUL. Names are bytes on Linux: decode losslessly."""
    end = b.find(b"\0")
    return (b if end < 0 else b[:end]).decode("utf-8", "surrogateescape")


_OCTAL = re.compile(rb"[0-7]{1,22}")


def _octal(b: bytes) -> int:
    text = b.strip(b" \0")
    if not text:
        return 0
    end = text.find(b"\0")
    if end >= 0:
        text = text[:end]
    if not _OCTAL.fullmatch(text):
        raise TarError("archive/tar: invalid tar header")
    value = int(text, 8)
    if value >= 1 << 64:
        raise TarError("archive/tar: invalid tar header")
    return value - (1 << 64) if value >= 1 << 63 else value  # Go: int64(ParseUint(..))


def _numeric(b: bytes) -> int:
    """Go's parseNumeric: base-256 when the high bit is set, else octal."""
    if b and b[0] & 0x80:
        negative = bool(b[0] & 0x40)
        x = 0
        for i, c in enumerate(b):
            if negative:
                c ^= 0xFF
            if i == 0:
                c &= 0x7F
            if x >> 56:
                raise TarError("archive/tar: invalid tar header")
            x = x << 8 | c
        if x >> 63:
            raise TarError("archive/tar: invalid tar header")
        return ~x if negative else x
    return _octal(b)


def _format(block: bytes) -> str | None:
    """Go's block.getFormat: the checksum must match (unsigned or signed sum)."""
    try:
        value = _octal(block[148:156])
    except TarError:
        return None
    unsigned = sum(block) - sum(block[148:156]) + 256
    if value != unsigned:
        signed = sum(c - 256 if c > 127 else c for c in block) \
            - sum(c - 256 if c > 127 else c for c in block[148:156]) + 8 * 0x20
        if value != signed:
            return None
    magic, version = block[257:263], block[263:265]
    if magic == b"ustar\0" and block[508:512] == b"tar\0":
        return "star"
    if magic == b"ustar\0":
        return "ustar"
    if magic == b"ustar " and version == b" \0":
        return "gnu"
    return "v7"


def _parse_pax(data: bytes) -> dict[str, str]:
    """Go's parsePAX/parsePAXRecord: ``"%d %s=%s\\n"`` records, validated."""
    records: dict[str, str] = {}
    sparse: list[str] = []
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        length = go_int(data[pos:space].decode("latin-1")) if space >= 0 else None
        if length is None or length < 5 or length > len(data) - pos:
            raise TarError("archive/tar: invalid tar header")
        end = pos + length
        if space + 1 >= end - 1 or data[end - 1] != 0x0A:
            raise TarError("archive/tar: invalid tar header")
        key_b, eq, value_b = data[space + 1:end - 1].partition(b"=")
        pos = end
        key = key_b.decode("utf-8", "surrogateescape")
        value = value_b.decode("utf-8", "surrogateescape")
        if not eq or not key or ("\0" in value if key in ("path", "linkpath", "uname", "gname")
                                 else "\0" in key):
            raise TarError("archive/tar: invalid tar header")
        if key in ("GNU.sparse.offset", "GNU.sparse.numbytes"):
            if (len(sparse) % 2 == 0) != (key == "GNU.sparse.offset") or "," in value:
                raise TarError("archive/tar: invalid tar header")
            sparse.append(value)
        else:
            records[key] = value
    if sparse:
        records["GNU.sparse.map"] = ",".join(sparse)
    return records


def go_int(text: str, clamp: bool = False) -> int | None:
    """Go's strconv.ParseInt(text, 10, 64) (and Atoi): ASCII digits with an optional sign, else
    None ("²", "٣", " 5" and "0x10" are not numbers). Out of the int64 range: None, or with
    ``clamp`` the limit ParseInt returns beside its range error (what code that ignores the
    error, as runc's passwd parser does, goes on with)."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or not body.isascii() or not body.isdigit():
        return None
    value = int(text)
    if -(1 << 63) <= value < (1 << 63):
        return value
    return max(-(1 << 63), min(value, (1 << 63) - 1)) if clamp else None


def _merge_pax(hdr: TarHeader, records: dict[str, str]) -> None:
    for key, value in records.items():
        if not value:
            continue  # Go keeps the header's own field
        if key == "path":
            hdr.name = value
        elif key == "linkpath":
            hdr.linkname = value
        elif key in ("uid", "gid", "size"):
            number = go_int(value)
            if number is None:
                raise TarError("archive/tar: invalid tar header")
            if key == "size":
                hdr.size = number
            else:
                setattr(hdr, key, number)
        elif key.startswith("SCHILY.xattr."):
            if hdr.xattrs is None:
                hdr.xattrs = {}
            hdr.xattrs[key[len("SCHILY.xattr."):]] = value


def _sparse_pax(hdr: TarHeader, records: dict[str, str]) -> None:
    """A PAX-format GNU sparse file is a regular file under ``GNU.sparse.name``; the old GNU
    sparse type ``'S'`` stays as it is (Docker refuses it)."""
    if "GNU.sparse.major" in records and "GNU.sparse.minor" in records:
        version = records["GNU.sparse.major"] + "." + records["GNU.sparse.minor"]
    elif "GNU.sparse.name" in records and "GNU.sparse.map" in records:
        version = "0.1"
    elif "GNU.sparse.size" in records:
        version = "0.0"
    else:
        return
    if version not in ("0.0", "0.1", "1.0"):
        return
    if "GNU.sparse.name" in records:
        hdr.name = records["GNU.sparse.name"]
