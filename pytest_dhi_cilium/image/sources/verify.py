"""Digests checked on the bytes that are judged: a blob is hashed while it streams (no second
pass) and compared with what its descriptor promised when the stream ends."""

from __future__ import annotations

import hashlib
import io
from typing import IO

from .base import SourceError


class DigestMismatch(SourceError):
    """A blob's bytes do not match its descriptor (digest or size)."""


class VerifyingReader(io.RawIOBase):
    """Read-through wrapper: every byte read is hashed; at end of stream the digest (and the
    size, when known) must match, else ``DigestMismatch`` naming the blob, expected and actual.

    ``digest`` is ``sha256:<hex>``. ``verified`` turns True once a full read matched; callers
    that stop early must call :meth:`drain` so the whole blob is covered."""

    def __init__(self, stream: IO[bytes], digest: str, size: int | None, what: str):
        super().__init__()
        algorithm, _, self._expected = digest.partition(":")
        if algorithm != "sha256" or len(self._expected) != 64:
            raise SourceError(f"{what}: unsupported or malformed digest {digest!r}")
        self._stream = stream
        self._hash = hashlib.sha256()
        self._size = size
        self._count = 0
        self.digest = digest
        self.what = what
        self.verified = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._stream.read(len(buffer))
        if not data:
            self._finish()
            return 0
        n = len(data)
        buffer[:n] = data
        self._hash.update(data)
        self._count += n
        if self._size is not None and self._count > self._size:
            raise DigestMismatch(f"{self.what}: blob {self.digest} is longer than the "
                                 f"{self._size} bytes its descriptor states")
        return n

    def drain(self, chunk: int = 1 << 20) -> None:
        """Read (and hash) whatever is left, then verify."""
        while self.readinto(memoryview(bytearray(chunk))):
            pass

    def _finish(self) -> None:
        if self.verified:
            return
        if self._size is not None and self._count != self._size:
            raise DigestMismatch(f"{self.what}: blob {self.digest} has {self._count} bytes, its "
                                 f"descriptor states {self._size}")
        actual = self._hash.hexdigest()
        if actual != self._expected:
            raise DigestMismatch(f"{self.what}: blob content does not match its digest: expected "
                                 f"{self.digest}, got sha256:{actual}")
        self.verified = True

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            super().close()
