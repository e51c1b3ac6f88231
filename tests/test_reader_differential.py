"""Docker is the oracle: generated layer sets, loaded into the real engine and read back.

A seeded generator writes tricky layers — paths with ``..``, ``.``, ``//``, absolute and
trailing-slash forms, symlinks through symlinks and out of the root, entries written through a
symlinked parent, hard links (to earlier entries, through symlinked directories, to lower
layers, to directories, with other modes and owners), whiteouts and opaque directories (marker
file and xattr) across and within layers, ``mknod c 0 0``, FIFOs, repeated paths, directories
replaced by files and back. Each case is judged by the reader;
cases it accepts are ``docker load``ed in batches (one archive, many images), a container is
created from each and ``docker export``ed, and every path's existence, type, mode, owner, size
and symlink target must agree with the reader's merged view; cases the reader refuses must fail
``docker load`` too, with Docker's reason contained in the reader's sentence.

``DHI_DIFF_CASES`` (default 240) and ``DHI_DIFF_SEED`` (default: a fixed seed) choose the
cases; a failure prints the seed and case number, and ``DHI_DIFF_SEED=S DHI_DIFF_ONLY=N``
replays one case. Every image and container created is removed.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import tarfile
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

import imagekit as ik
from pytest_dhi_cilium.image.layerstream import LayerError

CASES = int(os.environ.get("DHI_DIFF_CASES", "240"))
SEED = int(os.environ.get("DHI_DIFF_SEED", "20261127"))
ONLY = os.environ.get("DHI_DIFF_ONLY")
BATCH = 30
NONCE = uuid.uuid4().hex  # in every config: image IDs of this session are ours alone

# What the engine adds to a container's filesystem, not the image's.
_ENGINE_PATHS = re.compile(r"^/(\.dockerenv|dev|proc|sys|etc)(/|$)")
NAMES = ["a", "b", "c", "d", "e", "f"]


# -- the generator -------------------------------------------------------------------------------


class Generator:
    """Random but replayable layer sets: each case from its own Random(seed, case)."""

    def __init__(self, seed: int, case: int):
        self.rng = random.Random(f"{seed}:{case}")
        self.paths: list[str] = []  # canonical paths of lower layers (relative, no leading /)
        self.dirs: list[str] = [""]
        self.layer: list[str] = []  # canonical paths of the layer being written

    def path_form(self, path: str, is_dir: bool = False) -> str:
        """One of the many spellings of ``path`` that Docker cleans to it."""
        r = self.rng.random()
        parts = path.split("/")
        if r < 0.35:
            form = path
        elif r < 0.45:
            form = "./" + path
        elif r < 0.55:
            form = "/" + path
        elif r < 0.62:
            form = "../" * self.rng.randint(1, 3) + path
        elif r < 0.7:
            form = "/".join(parts[:-1] + ["", parts[-1]]) if len(parts) > 1 else "//" + path
        elif r < 0.78:
            form = "/".join(parts[:-1] + [".", parts[-1]])
        elif r < 0.86:
            form = self.rng.choice(NAMES) + "/../" + path
        else:
            form = "/../" + path
        if is_dir and self.rng.random() < 0.3:
            form += "/"
        return form

    def new_path(self) -> str:
        for _ in range(8):  # a path this layer has not written yet, if one comes up
            parent = self.rng.choice(self.dirs) if self.rng.random() < 0.7 else ""
            name = self.rng.choice(NAMES)
            path = f"{parent}/{name}" if parent else name
            if path not in self.layer:
                break
        return path

    def some_path(self) -> str:
        """Mostly a lower layer's path (replaced, merged, deleted) or a new one; now and then
        one this layer already wrote (Docker refuses most of those)."""
        r = self.rng.random()
        fresh = [p for p in self.paths if p not in self.layer]
        if self.layer and r < 0.06:
            path = self.rng.choice(self.layer)
        elif fresh and r < 0.6:
            path = self.rng.choice(fresh)
        else:
            path = self.new_path()
        self.layer.append(path)
        return path

    def member(self, layer_paths: list[str]) -> ik.Member:
        rng = self.rng
        kind = rng.choices(["file", "dir", "symlink", "hardlink", "whiteout", "opaque", "fifo",
                            "char00"], [30, 22, 14, 12, 10, 5, 3, 4])[0]
        if kind == "hardlink" and not layer_paths and rng.random() < 0.9:
            kind = "file"
        mode = rng.choice([0o644, 0o755, 0o600, 0o700, 0o4755, 0o2750, 0o000, 0o1777])
        uid, gid = rng.choice([0, 1, 65532]), rng.choice([0, 7, 65532])
        if kind == "dir":
            path = self.some_path()
            self.dirs.append(path)
            kind = "dir-opaque" if rng.random() < 0.1 else "dir"
            return ik.Member(self.path_form(path, True), kind, b"", mode, uid, gid)
        if kind == "symlink":
            path = self.some_path()
            target = rng.choice(["a", "b", "../a", "/a/b", "a/../c", "../../..", "/", "zz",
                                 path.rsplit("/", 1)[-1], "./d/", "//c"])
            if rng.random() < 0.3:
                self.dirs.append(path)  # later entries go through it
            return ik.Member(self.path_form(path), "symlink", b"", 0o777, uid, gid, target)
        if kind == "hardlink":
            path = self.new_path()
            # Mostly to a non-directory of this layer (what Docker accepts), now and then to a
            # lower layer's path or a directory (what it refuses).
            choices = layer_paths if layer_paths and rng.random() < 0.92 else self.paths or ["zz"]
            target = rng.choice(choices)
            self.layer.append(path)
            return ik.Member(self.path_form(path), "hardlink", b"", mode, uid, gid, self.path_form(target))
        if kind == "whiteout":
            fresh = [p for p in self.paths if p not in self.layer]
            path = rng.choice(fresh) if fresh and rng.random() < 0.85 else self.new_path()
            head, _, base = path.rpartition("/")
            name = f"{head}/.wh.{base}" if head else f".wh.{base}"
            if name in self.layer and rng.random() < 0.9:
                kind = "file"
            else:
                self.layer.append(name)
                return ik.Member(self.path_form(name), "file", b"", 0o644, 0, 0)
        if kind == "opaque":
            name = rng.choice(self.dirs[1:] or ["a"]) + "/.wh..wh..opq"
            if name in self.layer and rng.random() < 0.9:
                kind = "file"
            else:
                self.layer.append(name)
                return ik.Member(self.path_form(name), "file", b"", 0o644, 0, 0)
        path = self.some_path()
        if kind == "fifo":
            return ik.Member(self.path_form(path), "fifo", b"", mode, uid, gid)
        if kind == "char00":
            return ik.Member(self.path_form(path), "char00", b"", 0o600, 0, 0)
        data = rng.choice([b"", b"x", b"hello", os.urandom(rng.randint(1, 700))])
        return ik.Member(self.path_form(path), "file", data, mode, uid, gid)

    def layers(self) -> list[list[ik.Member]]:
        layers = []
        for _ in range(self.rng.choices([1, 2, 3, 4], [2, 4, 3, 2])[0]):
            members: list[ik.Member] = []
            layer_paths: list[str] = []
            self.layer = []
            for _ in range(self.rng.randint(1, 8)):
                m = self.member(layer_paths)
                members.append(m)
                if m.kind in ("file", "symlink", "fifo", "hardlink") and ".wh." not in m.name:
                    layer_paths.append(m.name.strip("/") or ".")
            self.paths += [p for p in self.layer if p not in self.paths]
            layers.append(members)
        return layers


# -- the two sides -------------------------------------------------------------------------------


def reader_view(blobs: list[bytes]) -> dict | str:
    """The reader's merged view as {path: (kind, mode, uid, gid, size, symlink target)}, or
    its refusal sentence."""
    try:
        fs = ik.merged_view(*blobs)
    except LayerError as exc:
        return str(exc)
    view = {}
    for e in fs.walk():
        if _ENGINE_PATHS.match(e.path):
            continue
        view[e.path] = _attrs(e.kind, e.mode, e.uid, e.gid, e.size,
                              e.link if e.kind == "symlink" else "")
    return view


def _attrs(kind, mode, uid, gid, size, target):
    if kind == "symlink":
        mode = 0o777
    if kind != "file":
        size = 0
    return (kind, oct(mode), uid, gid, size, target)


def exported_view(raw: bytes) -> dict:
    kinds = {tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink", tarfile.CHRTYPE: "char",
             tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo"}
    view, seen = {}, {}
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for m in tar:
            path = "/" + m.name.strip("/")
            if path == "/" or _ENGINE_PATHS.match(path):
                continue
            if m.type == tarfile.LNKTYPE:  # a hard link: the inode of the path it names
                attrs = seen["/" + m.linkname.strip("/")]
            else:
                attrs = _attrs(kinds.get(m.type, "file"), m.mode & 0o7777, m.uid, m.gid, m.size,
                               m.linkname if m.type == tarfile.SYMTYPE else "")
            seen[path] = attrs
            view[path] = attrs
    return view


def docker_archive(images: list[tuple[bytes, list[bytes]]]) -> bytes:
    """One docker-archive holding several images: (config bytes, layer blobs) each."""
    return ik.raw_docker_archive([(config, blobs, None) for config, blobs in images])


def config_for(blobs: list[bytes], case: int) -> bytes:
    return json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/x"], "Labels": {"dhi.test.session": NONCE, "dhi.test.case": str(case)}},
        "rootfs": {"type": "layers", "diff_ids": [ik.sha256(b) for b in blobs]}}).encode()


def docker_reason(message: str) -> str:
    """The reason in a docker load error: ``Error processing tar file(exit status 1): R`` or
    ``Error processing tar file(R): ``."""
    match = re.search(r"Error processing tar file\(exit status \d+\): (.*)$", message, re.S) or \
        re.search(r"Error processing tar file\((.+)\): *$", message, re.S)
    return (match.group(1) if match else message).strip()


# -- the test ---------------------------------------------------------------------------------------


class Engine:
    def __init__(self, client):
        self.client = client
        self.images: set[str] = set()

    def load(self, archive: bytes) -> str | None:
        import docker.errors

        try:
            self.client.images.load(archive)
            return None
        except (docker.errors.APIError, docker.errors.ImageLoadError) as exc:
            return getattr(exc, "explanation", None) or str(exc)

    def export(self, image_id: str) -> bytes:
        container = self.client.api.create_container(image_id, command=["/x"], network_disabled=True,
                                                     labels={"dhi.test.session": NONCE})
        try:
            return b"".join(self.client.api.export(container["Id"]))
        finally:
            self.client.api.remove_container(container["Id"], force=True)

    def remove(self, image_id: str) -> None:
        try:
            self.client.images.remove(image_id, force=True)
        except Exception:
            pass

    def cleanup(self) -> None:
        for container in self.client.containers.list(all=True, filters={"label": f"dhi.test.session={NONCE}"}):
            container.remove(force=True)
        for image in self.client.images.list(filters={"label": f"dhi.test.session={NONCE}"}):
            self.remove(image.id)


@pytest.fixture(scope="module")
def engine(docker_client):
    e = Engine(docker_client)
    yield e
    e.cleanup()


def _cases():
    numbers = [int(ONLY)] if ONLY else range(CASES)
    for case in numbers:
        blobs = [ik.layer_tar(layer) for layer in Generator(SEED, case).layers()]
        yield case, blobs, config_for(blobs, case)


def _describe(case: int, blobs: list[bytes]) -> str:
    """The case, replayable, with every header of every layer."""
    lines = [f"seed {SEED} case {case} (replay: DHI_DIFF_SEED={SEED} DHI_DIFF_ONLY={case})"]
    for i, blob in enumerate(blobs):
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            members = [f"{m.name!r}{'->' + m.linkname if m.linkname else ''} {_TYPE_NAMES.get(m.type, 'reg')}"
                       f"{' opaque-xattr' if m.pax_headers.get(ik.OPAQUE_XATTR) else ''} {m.mode:o} {m.uid}:{m.gid}"
                       for m in tar]
        lines.append(f"  layer {i + 1}: " + ", ".join(members))
    return "\n".join(lines)


_TYPE_NAMES = {tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "sym", tarfile.LNKTYPE: "lnk",
               tarfile.FIFOTYPE: "fifo", tarfile.CHRTYPE: "chr"}


@pytest.mark.docker
def test_reader_agrees_with_docker_on_generated_layers(engine):
    accepted, refused = [], []
    for case, blobs, config in _cases():
        verdict = reader_view(blobs)
        (refused if isinstance(verdict, str) else accepted).append((case, blobs, config, verdict))
    problems: list[str] = []

    # Cases Docker must refuse as the reader does: one load each.
    def judge_refusal(item):
        case, blobs, config, verdict = item
        error = engine.load(docker_archive([(config, blobs)]))
        image_id = ik.sha256(config)
        if error is None:
            engine.remove(image_id)
            return f"{_describe(case, blobs)}\n  reader refused ({verdict}) but docker load accepted it"
        reason = docker_reason(error)
        if reason not in verdict:
            return f"{_describe(case, blobs)}\n  docker: {error}\n  reader: {verdict}"
        return None

    # Accepted cases: loaded in batches, then each exported and compared.
    def judge_export(item):
        case, blobs, config, verdict = item
        image_id = ik.sha256(config)
        try:
            actual = exported_view(engine.export(image_id))
        finally:
            engine.remove(image_id)
        if actual != verdict:
            diff = [f"    {p}: docker {actual.get(p)} reader {verdict.get(p)}"
                    for p in sorted(set(actual) | set(verdict)) if actual.get(p) != verdict.get(p)]
            return f"{_describe(case, blobs)}\n  merged views differ:\n" + "\n".join(diff)
        return None

    with ThreadPoolExecutor(4) as pool:
        problems += [p for p in pool.map(judge_refusal, refused) if p]
        for start in range(0, len(accepted), BATCH):
            batch = accepted[start:start + BATCH]
            error = engine.load(docker_archive([(c, b) for _, b, c, _ in batch]))
            if error is not None:  # find which one Docker refuses
                for case, blobs, config, _ in batch:
                    single = engine.load(docker_archive([(config, blobs)]))
                    if single is not None:
                        problems.append(f"{_describe(case, blobs)}\n  reader accepted it, docker load "
                                        f"refused: {single}")
                batch = [item for item in batch if _loaded(engine, item[2])]
            problems += [p for p in pool.map(judge_export, batch) if p]
    assert len(accepted) + len(refused) == (1 if ONLY else CASES)
    assert not problems, f"{len(problems)} of {len(accepted) + len(refused)} cases disagree " \
                         f"(accepted {len(accepted)}, refused {len(refused)}):\n\n" + "\n\n".join(problems[:8])


def _loaded(engine: Engine, config: bytes) -> bool:
    import docker.errors

    try:
        engine.client.images.get(ik.sha256(config))
        return True
    except docker.errors.ImageNotFound:
        return False
