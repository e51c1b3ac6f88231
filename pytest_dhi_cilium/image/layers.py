"""The merged filesystem of an image, built the way Docker 20.10 builds it — from tar headers.

Docker (overlay2) unpacks each layer, chrooted, into an empty directory of its own, then stacks
those directories with overlayfs. This module does the same in memory, header by header, with
nothing extracted:

* **per layer** (moby ``archive.Unpack`` in a chroot): an entry name is cleaned and joined under
  ``/`` (``../../bin/sh`` lands at ``/bin/sh``); a missing parent is created 0755 root; an
  existing path is replaced unless both are directories (then the header's mode and owner
  apply); paths are walked like the kernel walks them, so a symlink *of the same layer* in a
  parent position is followed (``bin -> usr/bin`` puts ``bin/sh`` at ``/usr/bin/sh``); a hard
  link needs its target in the same layer, not a directory, and its own header's mode and owner
  apply to the shared inode (every name of it shows them); ``.wh.NAME`` becomes a whiteout (a
  0/0 character device, which a ``mknod c 0 0`` entry also is) and ``.wh..wh..opq`` marks its
  directory opaque (as does the ``trusted.overlay.opaque=y`` xattr); a duplicate name in one
  layer is refused (tar-split); anything Docker refuses (a link to a missing path, a whiteout
  after its own file, an unhandled type flag, ...) is refused with Docker's reason.
* **across layers** (overlayfs): an upper directory merges with a lower directory, its own
  metadata wins (an implicitly created parent too); an opaque upper directory, a non-directory
  or a whiteout hides everything below.

Memory per path is one small inode object plus its name in its directory's dict, so a million
entries fit in a few hundred MB; nothing but the current tar header is kept from the stream.
Reading: :meth:`FileSystem.resolve` follows symlinks inside the image root like a chrooted
process (absolute links restart at the root, ``..`` never climbs above it, 40 links at most).
"""

from __future__ import annotations

import errno
import json
import os
from array import array
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from . import tarstream
from .layerstream import DigestMismatch, LayerError, LayerStream, LimitExceeded, Limits
from .tarstream import TarError, TarHeader

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
MAX_SYMLINK_FOLLOWS = 40  # Linux's own limit before ELOOP
CAPTURED_FILES = ("/etc/passwd", "/etc/group")  # small files whose content the checks read
CAPTURE_FILE_LIMIT = 1 << 20
CAPTURE_TOTAL_LIMIT = 16 << 20

# _Inode.mode packs what a path is into one (interned) int, so a million inodes stay small:
# permission bits, the file type (stat's S_IFMT values; a whiteout gets an unused one), flags,
# and the layer index (+1, so the root's -1 is 0).
_PERM = 0o7777
_FMT = 0o170000
_REG, _DIR, _LNK, _CHR, _BLK, _FIFO, _WHT = 0o100000, 0o040000, 0o120000, 0o020000, 0o060000, 0o010000, 0o160000
_IMPLICIT = 1 << 16  # a parent directory no header declared (created 0755 root)
_OPAQUE = 1 << 17
_LAYER_SHIFT = 20
_KIND = {_REG: "file", _DIR: "dir", _LNK: "symlink", _CHR: "char", _BLK: "block", _FIFO: "fifo",
         _WHT: "whiteout"}
_TYPE_FMT = {tarstream.CHAR: _CHR, tarstream.BLOCKDEV: _BLK, tarstream.FIFO: _FIFO}
_INTS: dict[int, int] = {}


def _intern(value: int) -> int:
    return _INTS.setdefault(value, value) if len(_INTS) < 65536 else value


def _pack(fmt: int, perm: int, layer: int, flags: int = 0) -> int:
    return _intern(fmt | (perm & _PERM) | flags | ((layer + 1) << _LAYER_SHIFT))


@dataclass(slots=True)
class Entry:
    """One path of the merged view, as the checks see it."""

    path: str
    kind: str  # file, dir, symlink, char, block, fifo
    mode: int  # permission bits, setuid/setgid/sticky included
    uid: int
    gid: int
    size: int
    layer: int  # index into the image's layer list (-1: the root)
    link: str = ""  # symlink target as stored, or (hard links) the path the tar linked to
    hardlink: bool = False
    implicit: bool = False  # a parent directory no header declared (created 0755 root)


class _Inode:
    """A file, directory, link or device. ``mode``: see _pack; ``extra``: the children dict of
    a directory, the target of a symlink, None otherwise. Hard-linked paths share one inode."""

    __slots__ = ("mode", "uid", "gid", "size", "extra")

    def __init__(self, mode, uid=0, gid=0, size=0, extra=None):
        self.mode, self.uid, self.gid, self.size, self.extra = mode, uid, gid, size, extra

    @property
    def kind(self) -> str:
        return _KIND[self.mode & _FMT]

    @property
    def layer(self) -> int:
        return (self.mode >> _LAYER_SHIFT) - 1

    def set_perm(self, perm: int) -> None:
        self.mode = _intern((self.mode & ~_PERM) | (perm & _PERM))

    def set_owner(self, uid: int, gid: int) -> None:
        self.uid, self.gid = _intern(uid), _intern(gid)


class _Link:
    """A second (third, ...) name of an inode, made by a hard-link header."""

    __slots__ = ("inode", "target")

    def __init__(self, inode: _Inode, target: str):
        self.inode, self.target = inode, target


def _ino(node) -> _Inode:
    return node.inode if type(node) is _Link else node


def _fmt(node) -> int:
    return (node.inode if type(node) is _Link else node).mode & _FMT


class _NameSet:
    """tar-split's duplicate check: the hashes of a layer's clean names in an open-addressing
    table of 8-byte slots (16 MB for a million names, not the 60 of a set of ints). Two names
    whose 64-bit hashes collide would be taken for a duplicate: odds about 1e-8 for a million
    names, and hashes are salted per process."""

    def __init__(self) -> None:
        self.table = array("q", bytes(8 * 1024))
        self.mask = 1023
        self.count = 0

    def add(self, key: int) -> bool:
        """Record ``key``; True when it was already there."""
        key = key or 1  # 0 marks an empty slot
        table, mask = self.table, self.mask
        i = key & mask
        while True:
            slot = table[i]
            if slot == 0:
                break
            if slot == key:
                return True
            i = (i + 1) & mask
        table[i] = key
        self.count += 1
        if self.count * 2 > mask:
            old = [k for k in table if k]
            self.mask = mask = mask * 2 + 1
            self.table = table = array("q", bytes(8 * (mask + 1)))
            for k in old:
                j = k & mask
                while table[j]:
                    j = (j + 1) & mask
                table[j] = k
        return False


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


# -- Go's path rules ------------------------------------------------------------------------------


def go_clean(path: str) -> str:
    """Go's ``filepath.Clean`` (what Docker applies to every entry name)."""
    if not path:
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
        else:
            out.append(part)
    text = "/".join(out)
    return ("/" + text) if rooted else (text or ".")


def docker_path(name: str) -> str:
    """Where an entry lands: ``filepath.Join("/", Clean(name))`` inside the chroot."""
    return go_clean("/" + name)


def _dirname(path: str) -> str:
    head = path.rsplit("/", 1)[0]
    return head or "/"


class _Errno(Exception):
    """A failed system call inside the layer: Go's PathError (``op path: reason``) when the
    operation and path differ from the entry's own."""

    def __init__(self, code: int, op: str = "", path: str = ""):
        self.code, self.op, self.path = code, op, path


def _q(text: str) -> str:
    """Go's %q, as Docker's messages quote names."""
    return json.dumps(text, ensure_ascii=False)


def _strerror(code: int) -> str:
    return {errno.EPERM: "operation not permitted"}.get(code) or os.strerror(code).lower()


# -- one layer, as Docker unpacks it --------------------------------------------------------------


class _LayerTree:
    """The layer's own directory, as the chrooted ``docker-untar`` leaves it."""

    def __init__(self, index: int, fs: "FileSystem"):
        self.index = index
        self.fs = fs
        self.root = _Inode(_pack(_DIR, 0o755, index), extra={})
        self.seen = _NameSet()
        self.dirs: list[str] = []  # paths of directory headers: their mtimes are set at the end
        self.removed = False  # did an entry replace another? (else every directory resolves)

    # Path walks inside the layer root, like the kernel inside the chroot.

    def _walk(self, path: str, follow_final: bool, clean: bool = False) -> tuple[_Inode, str, object]:
        """(directory holding the last component, its name, the node there or None). A path
        that ends in ``.``/``..`` or is ``/`` gives name "" and that directory as node.
        ``clean``: ``path`` is absolute and cleaned (the fast, common case)."""
        if clean:
            pending = path[1:].split("/") if len(path) > 1 else []
            pending.reverse()
        else:
            pending = _parts(path)
        stack = [self.root]
        links = 0
        while pending:
            name = pending.pop()
            if name == "..":
                if len(stack) > 1:
                    stack.pop()
                continue
            if name == ".":  # only kept at the end: a trailing slash wants a directory
                continue
            current = stack[-1]
            node = current.extra.get(name)
            last = not pending
            if node is None:
                if last:
                    return current, name, None
                raise _Errno(errno.ENOENT)
            inode = node.inode if type(node) is _Link else node
            fmt = inode.mode & _FMT
            if fmt == _LNK and (not last or follow_final):
                links += 1
                if links > MAX_SYMLINK_FOLLOWS:
                    raise _Errno(errno.ELOOP)
                target = inode.extra
                if not target:
                    raise _Errno(errno.ENOENT)
                if target.startswith("/"):
                    del stack[1:]
                pending.extend(_parts(target))
                continue
            if last:
                return current, name, node
            if fmt != _DIR:
                raise _Errno(errno.ENOTDIR)
            stack.append(inode)
        return stack[-1], "", stack[-1]

    def _lookup(self, path: str, follow_final: bool, clean: bool = False):
        try:
            return self._walk(path, follow_final, clean)[2]
        except _Errno:
            return None

    def _create(self, path: str, node) -> None:
        """Create ``node`` at ``path`` (must not exist): EEXIST/ENOENT/ENOTDIR like the kernel."""
        parent, name, existing = self._walk(path, False, True)
        if existing is not None or not name:
            raise _Errno(errno.EEXIST)
        parent.extra[name] = node

    def _mkdir_all(self, path: str) -> None:
        """Go's os.MkdirAll (Stat follows links); new directories 0755 root:root."""
        missing = []
        while True:
            try:
                node = self._walk(path, True, True)[2]
            except _Errno:
                node = None
            if node is not None:
                if _fmt(node) != _DIR:
                    raise _Errno(errno.ENOTDIR, "mkdir", path)
                break
            missing.append(path)
            path = _dirname(path)
            if path == "/":
                break
        for path in reversed(missing):
            try:
                parent, name, existing = self._walk(path, False, True)
                if existing is not None or not name:
                    raise _Errno(errno.EEXIST)
                # mkdir in a setgid directory inherits setgid; Docker's chmod of the new
                # directory compares permission bits only, so it stays
                perm = 0o755 | (parent.mode & 0o2000)
                parent.extra[name] = _Inode(_pack(_DIR, perm, self.index, _IMPLICIT), extra={})
            except _Errno as exc:
                node = self._lookup(path, False, True)
                if node is None or _fmt(node) != _DIR:
                    raise _Errno(exc.code, "mkdir", path) from None

    # One header.

    def apply(self, hdr: TarHeader) -> None:
        clean = go_clean(hdr.name)
        repeated = self.seen.add(hash(clean))  # tar-split: a repeated (cleaned) name fails
        if hdr.type != tarstream.XGLOBAL:
            path = clean if clean[0] == "/" else go_clean("/" + clean)
            try:
                self._unpack(hdr, clean, path)
            except _Errno as exc:
                raise LayerError(self._failure(hdr, path, exc)) from None
        if repeated:
            # tar-split stops the stream after the repeated entry went through the unpack,
            # which then ends as if the archive ended there; its own failure, if any, is what
            # Docker reports.
            self.finish()
            raise LayerError(f"entry {_q(hdr.name)} appears twice (Docker's tar-split: "
                             "duplicates of file paths not supported)")

    def finish(self) -> None:
        """The end of Unpack: the mtime of every directory header's path is set, following
        links — a path that no longer resolves fails the layer."""
        if not self.removed:
            return
        for path in self.dirs:
            try:
                if self._walk(path, True, True)[2] is None:
                    raise _Errno(errno.ENOENT)
            except _Errno as exc:
                raise LayerError(f"chtimes {path}: {_strerror(exc.code)} (the directory entry was "
                                 "replaced later in its layer; docker load fails the same way)") from None

    def _failure(self, hdr: TarHeader, path: str, exc: _Errno) -> str:
        what = f"{exc.op} {exc.path}" if exc.op else {
            tarstream.LINK: f"link {go_clean('/' + hdr.linkname)} {path}",
            tarstream.SYMLINK: f"symlink {hdr.linkname} {path}",
            tarstream.DIR: f"mkdir {path}"}.get(hdr.type, f"open {path}")
        return f"entry {_q(hdr.name)}: {what}: {_strerror(exc.code)} (docker load fails the same way)"

    def _parent_missing(self, path: str) -> bool:
        """os.Lstat(parent) says it does not exist (a dangling symlink parent exists)."""
        try:
            return self._walk(_dirname(path), False, True)[2] is None
        except _Errno as exc:
            return exc.code == errno.ENOENT

    def _unpack(self, hdr: TarHeader, clean: str, path: str) -> None:
        t = hdr.type
        is_dir = t == tarstream.DIR
        # Lstat(path), once the missing parent (Lstat(parent) says so) is made.
        try:
            holder, name, existing = self._walk(path, False, True)
        except _Errno as exc:
            holder, name, existing = None, "", None
            if exc.code == errno.ENOENT and self._parent_missing(path):
                self._mkdir_all(_dirname(path))
                try:
                    holder, name, existing = self._walk(path, False, True)
                except _Errno:
                    pass
        if existing is not None:
            if _fmt(existing) == _DIR and (is_dir or clean == "."):
                if clean == ".":
                    return
            else:
                if not name:
                    raise LayerError(f"entry {_q(hdr.name)} would replace the root directory "
                                     "(docker load fails on it)")
                del holder.extra[name]
                self.removed = True
                existing = None
                holder = None  # the removal may have cut the way there (a parent symlink): walk again
        base = path[path.rfind("/") + 1:]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(hdr, path, base)
            return
        if existing is not None:  # a directory over a directory: only mode and owner change
            inode = existing
        else:
            node = self._make(hdr, path, holder, name)
            if holder is None:
                self._create(path, node)  # walks again; raises the kernel's error for this path
            else:
                holder.extra[name] = node
            inode = _ino(node)
        if is_dir:
            self.dirs.append(path)
        inode.set_owner(hdr.uid, hdr.gid)  # lchown
        if inode.mode & _FMT != _DIR:  # the kernel drops setuid (and setgid with group-exec) on chown
            perm = inode.mode & _PERM & ~0o4000
            inode.set_perm(perm & ~0o2000 if perm & 0o010 else perm)
        if hdr.xattrs:
            self._xattrs(hdr, path, inode)
        if t == tarstream.SYMLINK:
            return  # there is no lchmod
        if t == tarstream.LINK:
            # Docker chmods a hard link only when Lstat(linkname), from the chroot's "/", works
            # and is not a symlink: a raw linkname like "c/../b" through a file does not.
            linked = self._lookup(hdr.linkname, False)
            if linked is None or _fmt(linked) == _LNK:
                return
        inode.set_perm(hdr.mode)

    def _whiteout(self, hdr: TarHeader, path: str, base: str) -> None:
        if base == OPAQUE_MARKER:
            directory = _dirname(path)
            try:
                target = self._walk(directory, True, True)[2]  # setxattr follows links
                if target is None:
                    raise _Errno(errno.ENOENT)
            except _Errno as exc:
                raise LayerError(f"entry {_q(hdr.name)}: setxattr({_q(directory)}, trusted.overlay."
                                 f"opaque=y): {_strerror(exc.code)} (docker load fails the same way)") from None
            inode = _ino(target)
            if inode.mode & _FMT == _DIR:
                inode.mode = _intern(inode.mode | _OPAQUE)
            return
        gone = go_clean(_dirname(path) + "/" + base[len(WHITEOUT_PREFIX):])
        try:
            self._create(gone, _Inode(_pack(_WHT, 0, self.index)))
        except _Errno as exc:
            raise LayerError(f"entry {_q(hdr.name)}: failed to mknod({_q(gone)}, S_IFCHR, 0): "
                             f"{_strerror(exc.code)} (docker load fails the same way)") from None

    def _make(self, hdr: TarHeader, path: str, holder, name: str):
        t = hdr.type
        if t == tarstream.DIR:
            return _Inode(_pack(_DIR, hdr.mode, self.index), extra={})
        if t in (tarstream.REG, tarstream.REGA):
            inode = _Inode(_pack(_REG, hdr.mode, self.index), size=hdr.size)
            self.fs._offer_capture(name, inode, hdr)
            return inode
        if t == tarstream.SYMLINK:
            return _Inode(_pack(_LNK, 0o777, self.index), extra=hdr.linkname)
        if t in _TYPE_FMT:
            if t == tarstream.CHAR and hdr.devmajor == 0 and hdr.devminor == 0:
                return _Inode(_pack(_WHT, hdr.mode, self.index))  # overlayfs reads it so
            return _Inode(_pack(_TYPE_FMT[t], hdr.mode, self.index))
        if t == tarstream.LINK:
            # linkat: the old path must exist, then the new name be creatable, then the old
            # one not be a directory — errors in that order.
            target_path = go_clean("/" + hdr.linkname)
            target = self._walk(target_path, False, True)[2]
            if target is None:
                raise _Errno(errno.ENOENT)
            if holder is None and self._walk(path, False, True)[2] is not None:  # or raises
                raise _Errno(errno.EEXIST)
            if _fmt(target) == _DIR:
                raise _Errno(errno.EPERM)
            return _Link(_ino(target), target_path)
        raise LayerError(f"entry {_q(hdr.name)}: unhandled tar header type {ord(t)} "
                         "(docker load fails on it)")

    def _xattrs(self, hdr: TarHeader, path: str, inode: _Inode) -> None:
        for key, value in hdr.xattrs.items():
            if key == "trusted.overlay.opaque" and value == "y":
                if inode.mode & _FMT == _DIR:
                    inode.mode = _intern(inode.mode | _OPAQUE)
            elif key.startswith("trusted.overlay."):
                raise LayerError(f"entry {_q(hdr.name)} sets the overlayfs attribute {key}="
                                 f"{value!r}: Docker's overlay2 storage would show other content "
                                 f"at {path} than the layer holds; refusing to judge it")


# -- the merged view ---------------------------------------------------------------------------


class FileSystem:
    """The merged view: layers applied bottom-up, then paths looked up with symlinks.

    ``capture``: paths whose content the checks read. In the single pass over the layers the
    data of every small regular file with one of their base names is kept (the path a file
    lands at is known only once its layer is unpacked: ``etc -> private/etc`` in the same
    layer); a capture path that resolves to a file of another name (a symlink or hard link to
    it) is read afterwards with :func:`read_file`."""

    def __init__(self, capture: Iterable[str] = CAPTURED_FILES) -> None:
        self._root = _Inode(_pack(_DIR, 0o755, -1), extra={})  # a container's / is always 0755 root
        self.warnings: list[str] = []
        self._capture_names = frozenset(path.rsplit("/", 1)[-1] for path in capture)
        self._data: dict[_Inode, bytes] = {}  # kept small files, by inode
        self._captured = 0
        self.pending: _Inode | None = None  # the file just created whose data should be kept
        self._tree: _LayerTree | None = None  # the layer being applied

    # -- building ----------------------------------------------------------------------------

    def apply_layer(self, index: int, headers, limits: Limits = Limits()) -> int:
        """Unpack one layer's headers (an iterable of TarHeader) into a tree of its own, then
        overlay it onto the view. Returns the number of entries."""
        tree = self._tree = _LayerTree(index, self)
        count = 0
        for hdr in headers:
            count += 1
            if count > limits.layer_entries:
                raise LimitExceeded(f"has more than {limits.layer_entries:,} entries (DHI_MAX_LAYER_ENTRIES; "
                                 "raise it to read this image)")
            tree.apply(hdr)
        tree.finish()
        tree.seen, tree.dirs = None, []
        self._tree = None
        self._overlay(tree.root)
        return count

    def _offer_capture(self, name: str, inode: _Inode, hdr: TarHeader) -> None:
        """A regular file was created (its header applied next): should its data be kept?"""
        if name in self._capture_names and hdr.size <= CAPTURE_FILE_LIMIT and \
                self._captured + hdr.size <= CAPTURE_TOTAL_LIMIT:
            self.pending = inode

    def keep(self, read: Callable[[int], bytes]) -> None:
        """Keep the pending file's data, read with ``read(limit)`` (the tar reader's)."""
        inode, self.pending = self.pending, None
        data = read(CAPTURE_FILE_LIMIT)
        self._data[inode] = data
        self._captured += len(data)

    def _overlay(self, upper_root: _Inode) -> None:
        """overlayfs, one layer up: whiteouts delete, opaque directories and non-directories
        hide what is below, directories merge (the upper one's mode and owner win)."""
        work = [(self._root, upper_root)]
        while work:
            lower, upper = work.pop()
            below = lower.extra
            for name, node in upper.extra.items():
                inode = _ino(node)
                fmt = inode.mode & _FMT
                if fmt == _WHT:
                    below.pop(name, None)
                    continue
                under = below.get(name)
                if fmt == _DIR and not inode.mode & _OPAQUE and under is not None \
                        and _fmt(under) == _DIR:
                    under.mode = _intern(inode.mode & ~_OPAQUE)
                    under.uid, under.gid = inode.uid, inode.gid
                    work.append((under, inode))
                    continue
                if fmt == _DIR:
                    _strip_whiteouts(inode)
                below[name] = node

    # -- reading -----------------------------------------------------------------------------

    def _node_at(self, path: str):
        """The node at a literal path (no symlinks followed)."""
        node = self._root
        for name in _components(path):
            inode = _ino(node)
            if inode.mode & _FMT != _DIR:
                return None
            node = inode.extra.get(name)
            if node is None:
                return None
        return node

    def entry(self, path: str) -> Entry | None:
        node = self._node_at(path)
        return _entry("/" + "/".join(_components(path)), node) if node is not None else None

    def read(self, path: str) -> bytes | None:
        """The content of a small file the reader kept (see ``capture``), links followed."""
        res = self._resolve_node(path)
        return self._data.get(_ino(res[0])) if res[0] is not None else None

    def listdir(self, path: str) -> list[Entry]:
        res = self.resolve(path)
        if not res.found or res.entry.kind != "dir":
            return []
        node = self._node_at(res.path)
        base = res.path.rstrip("/")
        return [_entry(f"{base}/{name}", child) for name, child in _ino(node).extra.items()]

    def walk(self) -> Iterator[Entry]:
        stack = [("", self._root)]
        while stack:
            prefix, node = stack.pop()
            for name, child in node.extra.items():
                path = f"{prefix}/{name}"
                yield _entry(path, child)
                inode = _ino(child)
                if inode.mode & _FMT == _DIR:
                    stack.append((path, inode))

    def _resolve_node(self, path: str):
        res = self.resolve(path)
        return (self._node_at(res.path), res) if res.found else (None, res)

    def resolve(self, path: str, follow_final: bool = True) -> Resolution:
        """Resolve ``path`` as the kernel would inside a chroot at the image root: absolute
        links restart at the root, ``..`` never climbs above it, loops stop after 40 links."""
        pending = list(reversed(_components(path, keep_dots=True)))
        stack: list[_Inode] = [self._root]
        names: list[str] = []
        hops: list[str] = []
        traversed: list[Entry] = []
        follows = 0

        def here(extra: str = "") -> str:
            return "/" + "/".join(names + ([extra] if extra else []))

        node = self._root
        while pending:
            name = pending.pop()
            if name == ".":
                continue
            if name == "..":
                if names:
                    names.pop()
                    stack.pop()
                continue
            current = stack[-1]
            traversed.append(_entry(here(), current))
            child = current.extra.get(name)
            if child is None:
                return Resolution(path, here(name), None, hops, traversed, "not found")
            inode = _ino(child)
            last = not pending
            if inode.kind == "symlink" and (follow_final or not last):
                follows += 1
                if follows > MAX_SYMLINK_FOLLOWS:
                    return Resolution(path, here(name), None, hops, traversed, "symlink loop")
                target = inode.extra
                hops.append(f"{here(name)} -> {target}")
                if target.startswith("/"):
                    names.clear()
                    del stack[1:]
                pending.extend(reversed(_components(target, keep_dots=True)))
                continue
            if not last and inode.kind != "dir":
                return Resolution(path, here(name), None, hops, traversed, "not a directory")
            names.append(name)
            stack.append(inode)
            node = child
        if not names:
            node = self._root
        return Resolution(path, here(), _entry(here(), node), hops, traversed)


def _entry(path: str, node) -> Entry:
    if type(node) is _Link:
        inode, hard = node.inode, True
        link = inode.extra if inode.kind == "symlink" else node.target
    else:
        inode, hard = node, False
        link = inode.extra if inode.kind == "symlink" else ""
    return Entry(path or "/", inode.kind, inode.mode & _PERM, inode.uid, inode.gid, inode.size,
                 inode.layer, link, hard, bool(inode.mode & _IMPLICIT))


def _strip_whiteouts(top: _Inode) -> None:
    """Whiteouts in a directory that hides everything below have nothing to hide."""
    work = [top]
    while work:
        directory = work.pop().extra
        for name in [n for n, c in directory.items() if _fmt(c) in (_WHT, _DIR)]:
            inode = _ino(directory[name])
            if inode.mode & _FMT == _WHT:
                del directory[name]
            else:
                work.append(inode)


def _components(path: str, keep_dots: bool = False) -> list[str]:
    parts = [p for p in path.split("/") if p]
    if keep_dots and path.endswith("/") and parts:
        parts.append(".")  # "busybox/" names a directory, or nothing
    return parts if keep_dots else [p for p in parts if p not in (".", "..")]


def _parts(path: str) -> list[str]:
    """Components to walk, reversed (a stack); "." only at the end, where it means that the
    path must name a directory (a trailing slash, as the kernel reads it)."""
    parts = [p for p in path.split("/") if p and p != "."]
    if parts and (path.endswith("/") or path.endswith("/.")) and parts[-1] != "..":
        parts.append(".")
    parts.reverse()
    return parts


# -- reading a layer --------------------------------------------------------------------------


def read_layer(index: int, stream: LayerStream, fs: FileSystem, limits: Limits) -> dict:
    """Apply one layer from its verified stream: headers into ``fs``, small files the checks
    need kept; then the rest of the blob read and every digest checked. Returns what was
    verified. A tar Docker would not read, or a digest that does not match, is a LayerError."""
    reader = tarstream.TarReader(stream.chunk)

    def headers() -> Iterator[TarHeader]:
        while True:
            hdr = reader.next()
            if hdr is None:
                return
            yield hdr
            if fs.pending is not None:
                fs.keep(reader.read_data)

    try:
        count = fs.apply_layer(index, headers(), limits)
    except TarError as exc:
        _refuse(stream, f"is not a tar stream Docker reads ({exc})")
    except (DigestMismatch, LimitExceeded):
        raise
    except LayerError as exc:
        _refuse(stream, str(exc))
    reader.drain()
    record = stream.finish()
    record["entries"] = count
    return record


class _OneFile(FileSystem):
    """One layer unpacked again on its own, keeping the data of the file that ends up at
    ``path``: the data of a regular file whose inode is, once its header is applied, the one
    at ``where`` (``path`` itself, or the path a hard link at ``path`` names), of the size
    the merged view found. At most one file's data is held at a time."""

    def __init__(self, path: str, where: str, size: int):
        super().__init__(capture=())
        self.path, self.where, self.size = path, where, size
        self.found: tuple[_Inode, bytes] | None = None

    def _offer_capture(self, name: str, inode: _Inode, hdr: TarHeader) -> None:
        if hdr.size == self.size:
            self.pending = inode

    def keep(self, read: Callable[[int], bytes]) -> None:
        inode, self.pending = self.pending, None
        node = self._tree._lookup(self.where, False, True)
        if node is not None and _ino(node) is inode:
            self.found = (inode, read(CAPTURE_FILE_LIMIT))

    def data(self) -> bytes | None:
        node = self._node_at(self.path)
        if self.found is None or node is None or _ino(node) is not self.found[0]:
            return None
        return self.found[1]


def read_file(index: int, stream: LayerStream, entry: Entry, limits: Limits) -> bytes | None:
    """The content of ``entry`` (a regular file of at most CAPTURE_FILE_LIMIT bytes in the
    merged view, at a path with no symlinks in it), read again from the verified stream of
    the layer that made it (``index``), checked as :func:`read_layer` checks every layer.
    For a capture path the single pass did not keep: a symlink or hard link to a file of
    another name (``/etc/passwd -> /usr/share/base/passwd.master``), or past the capture
    budget. None if the layer does not put that file there (it always does)."""
    one = _OneFile(entry.path, entry.link if entry.hardlink else entry.path, entry.size)
    read_layer(index, stream, one, limits)
    return one.data()


def _refuse(stream: LayerStream, message: str) -> None:
    """A layer Docker refuses. If its bytes are not even the promised ones, that is said first
    (the digest is what names the content); otherwise the refusal."""
    try:
        stream.finish()
    except DigestMismatch:
        raise
    except LayerError:
        pass
    raise LayerError(message) from None
