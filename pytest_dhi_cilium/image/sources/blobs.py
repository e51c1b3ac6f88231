"""Blob stores the archive transports read from: members of a tar archive (docker-archive,
oci-archive) and files of an OCI layout directory. Nothing is extracted.

An archive is indexed once with the same Go-compatible tar reader the layers use, seeking over
member data; member names land where ``docker load``'s chrooted untar puts them (cleaned under
``/``; later duplicates win), and links between members resolve inside the archive the way
``docker load`` resolves them (symlinks followed within the archive root, hard links to earlier
members). A compressed archive (``docker save | gzip`` loads too) is read through its
decompressor, on the one descriptor the archive was opened with; its small members (manifests,
configs) are kept from the index scan, a layer is inflated again from the start. Only regular
files are ever opened."""

from __future__ import annotations

import io
import os
from typing import IO

from .. import tarstream
from ..layers import docker_path, go_clean
from ..layerstream import LayerError, decompressed, human
from ..reference import Reference
from .base import MAX_JSON_BYTES, SourceError, open_regular, read_limited, reader_limits, short_error

MAX_ARCHIVE_MEMBERS = 100_000  # a docker save has ~3 per layer; an OCI archive one per blob
MAX_LINK_FOLLOWS = 255  # moby's FollowSymlinkInScope gives up after 255 links
KEEP_MEMBER_BYTES = 1 << 20  # a compressed archive's members kept from its scan: each at most,
KEEP_TOTAL_BYTES = 16 << 20  # and in all
TRUNCATED = "the archive is shorter than its member headers state"


class _MemberReader:
    """A file-like view of one archive member; it owns nothing, so closing it does nothing."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


class _Section(_MemberReader):
    """``size`` bytes of a file from ``offset``, read with pread (no shared file position)."""

    def __init__(self, fd: int, offset: int, size: int):
        self.fd, self.pos, self.end = fd, offset, offset + size

    def read(self, n: int = -1) -> bytes:
        n = self.end - self.pos if n is None or n < 0 else min(n, self.end - self.pos)
        if n <= 0:
            return b""
        data = os.pread(self.fd, n, self.pos)
        if not data:
            raise OSError(TRUNCATED)
        self.pos += len(data)
        return data


class _Stream(_MemberReader):
    """A member of a compressed archive: decompress from the start (pread on the archive's
    descriptor: no file of its own), skip to it, read it."""

    def __init__(self, fd: int, offset: int, size: int):
        self.reader, _ = decompressed(_Section(fd, 0, os.fstat(fd).st_size))
        self.left = size
        skip = offset
        while skip:
            data = self.reader.read(min(skip, 1 << 20))
            if not data:
                raise OSError(TRUNCATED)
            skip -= len(data)
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        out = []
        while n > 0:
            data = self._buf or self.reader.read(1 << 20)
            if not data:
                raise OSError(TRUNCATED)
            take, self._buf = data[:n], data[n:]
            out.append(take)
            n -= len(take)
            self.left -= len(take)
        return b"".join(out)


class TarBlobs:
    """Named members of a tar archive; links resolve inside the archive."""

    def __init__(self, ref: Reference):
        path = ref.location
        self.name = ref.raw
        if not os.path.lexists(path):
            raise SourceError(f"{ref.raw}: no such file {path!r}")
        if os.path.isdir(path):
            raise SourceError(f"{ref.raw}: {path!r} is a directory (use oci:{path} for an OCI layout)")
        self.file = open_regular(path, ref.raw)
        self.fd = self.file.fileno()
        # member name -> ("file", offset, size) | ("symlink", target) | ("dir",)
        self.members: dict[str, tuple] = {}
        # A compressed archive's small members (manifests, configs: what is read whole), kept
        # from the index scan by data offset: reading one again would inflate the archive
        # from its start (`docker save` puts manifest.json last).
        self._kept: dict[int, bytes] = {}
        try:
            self._index()
        except SourceError:
            self.close()
            raise
        except tarstream.TarError as exc:
            self.close()
            raise SourceError(f"{ref.raw}: {path!r} is not a tar archive ({exc})") from None
        except (LayerError, OSError, ValueError) as exc:
            self.close()
            raise SourceError(f"{ref.raw}: {path!r} cannot be read ({short_error(exc)})") from None

    def _index(self) -> None:
        reader, self.compression = decompressed(_Section(self.fd, 0, os.fstat(self.fd).st_size))
        if self.compression == "tar":
            self._scan(self._plain_reader())
        else:
            self._scan(tarstream.TarReader(lambda: reader.read(1 << 20)), keep=True)

    def _plain_reader(self) -> tarstream.TarReader:
        size = os.fstat(self.fd).st_size
        pos = 0

        def chunk() -> bytes:
            nonlocal pos
            data = os.pread(self.fd, 64 << 10, pos)
            pos += len(data)
            return data

        def seek(n: int) -> int:
            nonlocal pos
            n = max(0, min(n, size - pos))
            pos += n
            return n

        return tarstream.TarReader(chunk, seek)

    def _scan(self, tar: tarstream.TarReader, keep: bool = False) -> None:
        limit = reader_limits().image_bytes
        count = kept = 0
        while (hdr := tar.next()) is not None:
            count += 1
            if count > MAX_ARCHIVE_MEMBERS:
                raise SourceError(f"{self.name}: the archive has more than {MAX_ARCHIVE_MEMBERS:,} "
                                  "members: not an image archive")
            if tar.offset > limit:
                raise SourceError(f"{self.name}: the archive inflates to more than {human(limit)} "
                                  "(DHI_MAX_IMAGE_BYTES)")
            self._add(hdr, tar.offset)
            if keep and hdr.type in (tarstream.REG, tarstream.REGA) and hdr.size <= KEEP_MEMBER_BYTES \
                    and kept + hdr.size <= KEEP_TOTAL_BYTES:
                offset = tar.offset  # where the data starts (read_data moves it)
                self._kept[offset] = tar.read_data(KEEP_MEMBER_BYTES)
                kept += hdr.size

    def _add(self, hdr: tarstream.TarHeader, offset: int) -> None:
        name = docker_path(hdr.name).lstrip("/")
        if not name:
            return
        t = hdr.type
        if t in (tarstream.REG, tarstream.REGA):
            self.members[name] = ("file", offset, hdr.size)
        elif t == tarstream.SYMLINK:
            self.members[name] = ("symlink", hdr.linkname)
        elif t == tarstream.DIR:
            self.members[name] = ("dir",)
        elif t == tarstream.LINK:
            target = self.members.get(self._resolve(docker_path(hdr.linkname).lstrip("/"), final=False))
            if target is not None and target[0] == "file":
                self.members[name] = target  # same bytes as the member it links to
        else:
            self.members.pop(name, None)

    def _resolve(self, name: str, final: bool = True) -> str:
        """Follow symlink members inside the archive root (moby's FollowSymlinkInScope)."""
        pending = [p for p in reversed(name.split("/")) if p and p != "."]
        done: list[str] = []
        hops = 0
        while pending:
            part = pending.pop()
            if part == "..":
                if done:
                    done.pop()
                continue
            candidate = "/".join(done + [part])
            member = self.members.get(candidate)
            if member is not None and member[0] == "symlink" and (pending or final):
                hops += 1
                if hops > MAX_LINK_FOLLOWS:
                    raise SourceError(f"{self.name}: {name}: too many links inside the archive")
                target = member[1]
                if target.startswith("/"):
                    done = []
                pending.extend(p for p in reversed(target.split("/")) if p and p != ".")
                continue
            done.append(part)
        return "/".join(done)

    def _member(self, name: str) -> tuple:
        member = self.members.get(self._resolve(go_clean("/" + name).lstrip("/")))
        if member is None:
            raise SourceError(f"{self.name}: archive has no member {name!r}")
        if member[0] != "file":
            raise SourceError(f"{self.name}: member {name!r} is not a file")
        return member

    def exists(self, name: str) -> bool:
        return self.members.get(self._resolve(go_clean("/" + name).lstrip("/"))) is not None

    def open(self, name: str) -> IO[bytes]:
        _, offset, size = self._member(name)
        if self.compression == "tar":
            return _Section(self.fd, offset, size)
        if offset in self._kept:
            return io.BytesIO(self._kept[offset])
        return _Stream(self.fd, offset, size)

    def size(self, name: str) -> int:
        return self._member(name)[2]

    def read(self, name: str) -> bytes:
        size = self.size(name)
        if size > MAX_JSON_BYTES:
            raise SourceError(f"{self.name}: {name} is {size} bytes, too big for an image document")
        return read_limited(self.open(name), f"{self.name}: {name}")

    def close(self) -> None:
        self.file.close()


class DirBlobs:
    """Files of an OCI layout directory; a blob that resolves outside the directory, or is not
    a regular file, is refused."""

    def __init__(self, root: str):
        if not os.path.isdir(root):
            raise SourceError(f"oci:{root}: no such directory")
        self.root = os.path.realpath(root)
        self.name = root

    def _path(self, name: str) -> str:
        path = os.path.realpath(os.path.join(self.root, name))
        if not path.startswith(self.root + os.sep):
            raise SourceError(f"oci:{self.name}: {name} resolves outside the layout")
        return path

    def exists(self, name: str) -> bool:
        return os.path.lexists(self._path(name))

    def open(self, name: str) -> IO[bytes]:
        return open_regular(self._path(name), f"oci:{self.name}: {name}")

    def read(self, name: str) -> bytes:
        return read_limited(self.open(name), f"oci:{self.name}: {name}")

    def close(self) -> None:
        pass
