"""The merged filesystem of an image, built from layer tar *headers* only.

Nothing is extracted: each layer is streamed once through :mod:`tarfile`, its headers become
:class:`Entry` objects in an in-memory tree, and whiteouts / opaque directories are applied the
way overlayfs applies them. Every entry remembers the layer it came from, so evidence can say
"layer 2 of 3". Paths are always absolute inside the image root; a name that would escape the
root (``../x``) is dropped and reported, never followed.
"""

from __future__ import annotations

import posixpath
import tarfile
import zlib
from dataclasses import dataclass, field
from typing import IO, Iterable, Iterator

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
MAX_SYMLINK_FOLLOWS = 40  # Linux's own limit before ELOOP

_KINDS = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
}


@dataclass(slots=True)
class Entry:
    """One path of the merged view. Hard links carry their target inode's metadata."""

    path: str
    kind: str  # file, dir, symlink, char, block, fifo; hard links become their target's kind
    mode: int  # permission bits, setuid/setgid/sticky included
    uid: int
    gid: int
    size: int
    layer: int  # index into the image's layer list
    link: str = ""  # symlink target as stored, or hard link target path
    hardlink: bool = False
    implicit: bool = False  # a parent directory no layer declared


@dataclass(slots=True)
class _Node:
    entry: Entry
    children: dict[str, "_Node"] = field(default_factory=dict)


@dataclass
class Resolution:
    """Result of resolving a path inside the image root, with the links followed on the way."""

    requested: str
    path: str  # where resolution ended (the target, or the first missing component)
    entry: Entry | None
    hops: list[str]  # "/bin/sh -> busybox" for every symlink followed
    traversed: list[Entry]  # directories walked through (for search-permission checks)
    error: str = ""  # "", "not found", "not a directory", "symlink loop"

    @property
    def found(self) -> bool:
        return self.entry is not None and not self.error

    def describe(self) -> str:
        chain = " -> ".join([self.requested] + [h.split(" -> ", 1)[1] for h in self.hops])
        if self.hops and self.found:
            chain += f" (= {self.path})"
        return chain + (f" [{self.error}]" if self.error else "")


def normalize_member_name(name: str) -> str | None:
    """Map a tar member name to an absolute image path the way Docker applies layers (moby's
    UnpackLayer: ``filepath.Clean``, then joined under the root), or None when it escapes.

    ``/bin/sh`` and ``usr/../bin/ash`` land inside the image — Docker extracts them there, so
    they count — while ``../x`` and ``a/../../x`` would break out and are dropped (Docker
    refuses such a layer). Backslashes are ordinary characters on Linux: ``bin\\.wh.sh`` is a
    file of that name, not a whiteout."""
    if not name:
        return None
    clean = posixpath.normpath(name)
    if not clean.startswith("/") and (clean == ".." or clean.startswith("../")):
        return None
    return "/" + clean.lstrip("/") if clean not in (".", "/") else "/"


class FileSystem:
    """The merged view: apply layers bottom-up, then look paths up with symlink resolution."""

    def __init__(self) -> None:
        self._root = _Node(Entry("/", "dir", 0o755, 0, 0, 0, layer=-1, implicit=True))
        self.warnings: list[str] = []

    # -- building -----------------------------------------------------------------------------

    def apply_layer(self, index: int, members: Iterable[tarfile.TarInfo]) -> None:
        """Apply one layer: its whiteouts and opaque markers hide lower layers, then its
        entries are added. The layer's own entries are never hidden by its own whiteouts."""
        entries: list[tuple[str, tarfile.TarInfo]] = []
        whiteouts: list[str] = []
        opaque: list[str] = []
        for member in members:
            path = normalize_member_name(member.name)
            if path is None:
                self.warnings.append(
                    f"layer {index + 1}: ignored entry {member.name!r} (escapes the image root)"
                )
                continue
            base = posixpath.basename(path)
            if base == OPAQUE_MARKER:
                opaque.append(posixpath.dirname(path))
            elif base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
                continue  # aufs metadata (.wh..wh.plnk etc.), not a deletion
            elif base.startswith(WHITEOUT_PREFIX):
                whiteouts.append(posixpath.join(posixpath.dirname(path), base[len(WHITEOUT_PREFIX):]))
            elif path != "/":
                entries.append((path, member))
            else:
                self._root.entry = self._entry_for("/", member, index)
        for directory in opaque:
            node = self._node_at(directory)
            if node is not None:
                node.children.clear()
        for gone in whiteouts:
            parent = self._node_at(posixpath.dirname(gone))
            if parent is not None:
                parent.children.pop(posixpath.basename(gone), None)
        for path, member in entries:
            self._add(path, member, index)

    def _entry_for(self, path: str, member: tarfile.TarInfo, index: int) -> Entry:
        kind = _KINDS.get(member.type, "other")
        link = member.linkname if kind in ("symlink", "hardlink") else ""
        return Entry(path, kind, member.mode & 0o7777, member.uid, member.gid, member.size,
                     index, link)

    def _add(self, path: str, member: tarfile.TarInfo, index: int) -> None:
        entry = self._entry_for(path, member, index)
        if entry.kind == "hardlink":
            entry = self._hardlink(entry, index)
        parent = self._ensure_dir(posixpath.dirname(path), index)
        name = posixpath.basename(path)
        existing = parent.children.get(name)
        if existing is not None and existing.entry.kind == "dir" and entry.kind == "dir":
            existing.entry = entry  # directories merge: new metadata, children kept
        else:
            parent.children[name] = _Node(entry)  # anything else replaces what was below

    def _hardlink(self, entry: Entry, index: int) -> Entry:
        target_path = normalize_member_name(entry.link)
        target = self._node_at(target_path) if target_path else None
        if target is None or target.entry.kind == "dir":
            self.warnings.append(
                f"layer {index + 1}: hard link {entry.path} -> {entry.link!r} has no target"
            )
            return Entry(entry.path, "other", entry.mode, entry.uid, entry.gid, 0, index,
                         entry.link, hardlink=True)
        t = target.entry
        # A hard link shares the inode: its kind, mode and owner are the target's.
        return Entry(entry.path, t.kind, t.mode, t.uid, t.gid, t.size, index, target_path,
                     hardlink=True)

    def _ensure_dir(self, path: str, index: int) -> _Node:
        node = self._root
        current = ""
        for name in _components(path):
            current += "/" + name
            child = node.children.get(name)
            if child is None or child.entry.kind != "dir":
                # Missing parent, or a lower non-directory shadowed by this layer's directory
                # (overlayfs: an upper directory replaces a lower file or symlink).
                child = _Node(Entry(current, "dir", 0o755, 0, 0, 0, index, implicit=True))
                node.children[name] = child
            node = child
        return node

    def _node_at(self, path: str) -> _Node | None:
        """The node at a literal path (no symlinks followed), as layers address paths."""
        node = self._root
        for name in _components(path):
            node = node.children.get(name)
            if node is None:
                return None
        return node

    # -- reading ------------------------------------------------------------------------------

    def entry(self, path: str) -> Entry | None:
        node = self._node_at(path)
        return node.entry if node else None

    def listdir(self, path: str) -> list[Entry]:
        res = self.resolve(path)
        if not res.found or res.entry.kind != "dir":
            return []
        node = self._node_at(res.path)
        return [child.entry for child in node.children.values()] if node else []

    def walk(self) -> Iterator[Entry]:
        stack = [self._root]
        while stack:
            node = stack.pop()
            for child in node.children.values():
                yield child.entry
                stack.append(child)

    def resolve(self, path: str, follow_final: bool = True) -> Resolution:
        """Resolve ``path`` as the kernel would inside a chroot at the image root: absolute
        links restart at the root, ``..`` never climbs above it, loops stop after 40 links."""
        pending = list(reversed(_components(path, keep_dots=True)))
        stack: list[_Node] = [self._root]
        names: list[str] = []
        hops: list[str] = []
        traversed: list[Entry] = []
        follows = 0

        def here(extra: str = "") -> str:
            return "/" + "/".join(names + ([extra] if extra else []))

        while pending:
            name = pending.pop()
            if name == ".":
                continue
            if name == "..":
                if names:
                    names.pop()
                    stack.pop()
                continue
            node = stack[-1]
            traversed.append(node.entry)
            child = node.children.get(name)
            if child is None:
                return Resolution(path, here(name), None, hops, traversed, "not found")
            last = not pending
            if child.entry.kind == "symlink" and (follow_final or not last):
                follows += 1
                if follows > MAX_SYMLINK_FOLLOWS:
                    return Resolution(path, here(name), None, hops, traversed, "symlink loop")
                target = child.entry.link
                hops.append(f"{here(name)} -> {target}")
                if target.startswith("/"):
                    names.clear()
                    del stack[1:]
                pending.extend(reversed(_components(target, keep_dots=True)))
                continue
            if not last and child.entry.kind != "dir":
                return Resolution(path, here(name), None, hops, traversed, "not a directory")
            names.append(name)
            stack.append(child)
        return Resolution(path, here(), stack[-1].entry, hops, traversed)


def _components(path: str, keep_dots: bool = False) -> list[str]:
    parts = [p for p in path.split("/") if p]
    return parts if keep_dots else [p for p in parts if p not in (".", "..")]


_CORRUPT = (tarfile.TarError, EOFError, zlib.error, OSError)
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class LayerFormatError(Exception):
    """A layer blob that is not a tar stream this reader understands."""


def open_layer_tar(stream: IO[bytes]) -> tarfile.TarFile:
    """Open a layer blob for header iteration. Uncompressed and seekable: random-access mode,
    which seeks over file data instead of reading it (a 1 GB layer costs its headers only)."""
    seekable = getattr(stream, "seekable", lambda: False)()
    if seekable:
        magic = stream.read(4)
        stream.seek(0)
        if magic.startswith(GZIP_MAGIC):
            return tarfile.open(fileobj=stream, mode="r|gz")
        if magic == ZSTD_MAGIC:
            return tarfile.open(fileobj=_zstd_reader(stream), mode="r|")
        return tarfile.open(fileobj=stream, mode="r:")
    return tarfile.open(fileobj=stream, mode="r|*")


def _zstd_reader(stream: IO[bytes]) -> IO[bytes]:
    try:
        import zstandard  # optional: OCI allows tar+zstd layers
    except ImportError:
        raise LayerFormatError(
            "layer is zstd-compressed; install the 'zstandard' package or convert the image "
            "with: skopeo copy --dest-compress-format=gzip ..."
        ) from None
    return zstandard.ZstdDecompressor().stream_reader(stream)


def read_layer_headers(index: int, stream: IO[bytes], fs: FileSystem, capture: set[str],
                       captured: dict[str, tuple[int, bytes]],
                       capture_limit: int = 1 << 20) -> None:
    """Apply one layer's headers to ``fs``; keep the bytes of small regular files whose image
    path is in ``capture`` (e.g. /etc/passwd) so checks never need a second pass."""
    try:
        tar = open_layer_tar(stream)
    except _CORRUPT as exc:
        raise LayerFormatError(f"layer {index + 1} is not a readable tar stream: {exc}") from exc
    with tar:
        def members() -> Iterator[tarfile.TarInfo]:
            for member in tar:
                path = normalize_member_name(member.name)
                if path in capture and member.isreg() and member.size <= capture_limit:
                    data = tar.extractfile(member)
                    if data is not None:
                        captured[path] = (index, data.read())
                yield member
        try:
            fs.apply_layer(index, members())
        except _CORRUPT as exc:
            raise LayerFormatError(f"layer {index + 1} is truncated or corrupt: {exc}") from exc
