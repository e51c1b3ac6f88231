"""Blob stores the archive transports read from: members of a tar opened for random access
(docker-archive, oci-archive) and files of an OCI layout directory. Nothing is extracted."""

from __future__ import annotations

import os
import tarfile
from typing import IO

from ..layers import normalize_member_name
from ..reference import Reference
from .base import MAX_JSON_BYTES, SourceError, short_error


def open_tar(ref: Reference) -> tarfile.TarFile:
    path = ref.location
    if not os.path.exists(path):
        raise SourceError(f"{ref.raw}: no such file {path!r}")
    if os.path.isdir(path):
        raise SourceError(f"{ref.raw}: {path!r} is a directory (use oci:{path} for an OCI layout)")
    try:
        return tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise SourceError(f"{ref.raw}: {path!r} is not a readable tar archive ({short_error(exc)})") from None



class TarBlobs:
    """Named members of a tar opened for random access; links resolve inside the archive."""

    def __init__(self, tar: tarfile.TarFile):
        self.tar = tar
        self.members: dict[str, tarfile.TarInfo] = {}
        try:
            for member in tar.getmembers():
                path = normalize_member_name(member.name)
                if path is not None:  # names escaping the archive are never looked up
                    self.members[path.lstrip("/")] = member
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise SourceError(f"{tar.name}: archive is truncated or corrupt ({exc})") from exc

    def exists(self, name: str) -> bool:
        return name.lstrip("/") in self.members

    def open(self, name: str) -> IO[bytes]:
        member = self.members.get(name.lstrip("/"))
        if member is None:
            raise SourceError(f"{self.tar.name}: archive has no member {name!r}")
        try:
            stream = self.tar.extractfile(member)  # follows links inside the archive only
        except KeyError as exc:
            raise SourceError(f"{self.tar.name}: member {name!r} is a dangling link") from exc
        if stream is None:
            raise SourceError(f"{self.tar.name}: member {name!r} is not a file")
        return stream

    def size(self, name: str) -> int:
        # Through open(): docker save dedups identical layers with links inside the archive.
        with self.open(name) as stream:
            return stream.seek(0, os.SEEK_END)

    def read(self, name: str) -> bytes:
        member = self.members.get(name.lstrip("/"))
        if member is not None and member.size > MAX_JSON_BYTES:
            raise SourceError(f"{self.tar.name}: {name} is {member.size} bytes, too big for JSON")
        with self.open(name) as stream:
            return stream.read(MAX_JSON_BYTES + 1)

    def close(self) -> None:
        self.tar.close()


class DirBlobs:
    """Files of an OCI layout directory; a blob that resolves outside the directory is refused."""

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
        return os.path.isfile(self._path(name))

    def size(self, name: str) -> int:
        return os.path.getsize(self._path(name))

    def open(self, name: str) -> IO[bytes]:
        try:
            return open(self._path(name), "rb")
        except OSError as exc:
            raise SourceError(f"oci:{self.name}: cannot read {name} ({exc.strerror})") from exc

    def read(self, name: str) -> bytes:
        with self.open(name) as stream:
            return stream.read(MAX_JSON_BYTES + 1)

    def close(self) -> None:
        pass
