"""Where image bytes come from. Every source answers the same two questions — which platforms
do you hold, and give me one platform's config and layer streams — so nothing above this module
knows whether the image lives in a daemon, a ``docker save`` tarball or an OCI layout.

Archives are read in place: a tar is opened for random access and each blob is streamed from
its offset; nothing is unpacked. Only the daemon source writes, spooling ``docker save`` into a
private temporary directory that is removed when the source is closed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Callable

from .layers import normalize_member_name
from .reference import DAEMON, Reference

ATTESTATION_ANNOTATION = "vnd.docker.reference.type"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
_REF_NAME_ANNOTATIONS = ("org.opencontainers.image.ref.name", "io.containerd.image.name")
MAX_JSON_BYTES = 16 << 20  # manifests and configs are small; refuse a hostile giant


class SourceError(Exception):
    """The image cannot be read: message says what was tried and how to fix it."""


# What a malformed input (wrong JSON shapes, link loops inside the archive, truncation) raises
# from deep inside tarfile/json handling; `reading` turns it into one SourceError sentence.
_MALFORMED = (KeyError, TypeError, AttributeError, ValueError, IndexError, RecursionError,
              OSError, EOFError, tarfile.TarError)


@contextmanager
def reading(ref: Reference):
    """Reading an input: every failure ends as a SourceError naming the input."""
    try:
        yield
    except SourceError:
        raise
    except _MALFORMED as exc:
        raise SourceError(f"{ref.raw}: malformed image input ({type(exc).__name__}: "
                          f"{_short(exc)})") from None


@dataclass(frozen=True, order=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    @classmethod
    def parse(cls, text: str) -> "Platform":
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"platform {text!r} is not os/arch[/variant]")
        return cls(*parts)

    def matches(self, wanted: "Platform") -> bool:
        """``linux/arm64`` matches ``linux/arm64/v8``: an unspecified variant is a wildcard."""
        return (self.os, self.architecture) == (wanted.os, wanted.architecture) and (
            not wanted.variant or not self.variant or self.variant == wanted.variant
        )

    @property
    def is_attestation(self) -> bool:
        return self.os == "unknown" or self.architecture == "unknown"


@dataclass
class LayerBlob:
    diff_id: str  # digest of the uncompressed layer: the same whatever the transport
    open: Callable[[], IO[bytes]]
    size: int  # bytes of the blob as stored (compressed or not)
    media_type: str = ""


@dataclass
class RawImage:
    config: dict
    config_digest: str
    manifest_digest: str  # "" when the transport has no manifest (docker-archive)
    platform: Platform
    layers: list[LayerBlob]
    names: list[str] = field(default_factory=list)  # RepoTags / ref.name annotations
    config_bytes: bytes = b""  # the config exactly as stored: its sha256 is the image ID

    @property
    def digest(self) -> str:
        return self.manifest_digest or self.config_digest


class ImageSource:
    """One image input. Subclasses implement ``platforms`` and ``read``."""

    ref: Reference

    def platforms(self) -> list[Platform]:
        raise NotImplementedError

    def read(self, platform: Platform | None = None) -> RawImage:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "ImageSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_source(ref: Reference, pull: str = "missing") -> ImageSource:
    if ref.transport == "docker-archive":
        return DockerArchiveSource(ref)
    if ref.transport == "oci-archive":
        return OciLayoutSource(ref, _TarBlobs(_open_tar(ref)))
    if ref.transport == "oci":
        return OciLayoutSource(ref, _DirBlobs(ref.location))
    if ref.transport == DAEMON:
        return DaemonSource(ref, pull)
    raise SourceError(f"unknown transport {ref.transport!r}")


# -- helpers shared by the archive readers ----------------------------------------------------


def _open_tar(ref: Reference) -> tarfile.TarFile:
    path = ref.location
    if not os.path.exists(path):
        raise SourceError(f"{ref.raw}: no such file {path!r}")
    if os.path.isdir(path):
        raise SourceError(f"{ref.raw}: {path!r} is a directory (use oci:{path} for an OCI layout)")
    try:
        return tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise SourceError(f"{ref.raw}: {path!r} is not a readable tar archive ({_short(exc)})") from None


def _load_json(data: bytes, what: str, shape: type = dict) -> dict | list:
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise SourceError(f"{what} is not valid JSON ({exc})") from None
    if not isinstance(value, shape):
        raise SourceError(f"{what}: expected a JSON {'object' if shape is dict else 'array'}, "
                          f"got {type(value).__name__}")
    return value


def _platform_of(config: dict) -> Platform:
    return Platform(config.get("os", ""), config.get("architecture", ""), config.get("variant", ""))


def _diff_ids(config: dict, layer_count: int, what: str) -> list[str]:
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != layer_count:
        raise SourceError(
            f"{what}: config lists {len(diff_ids)} layer diff_ids but the manifest has "
            f"{layer_count} layers"
        )
    return list(diff_ids)


class _TarBlobs:
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


class _DirBlobs:
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


# -- docker-archive: the `docker save` format -------------------------------------------------


class DockerArchiveSource(ImageSource):
    def __init__(self, ref: Reference, blobs: _TarBlobs | None = None):
        self.ref = ref
        self.blobs = blobs or _TarBlobs(_open_tar(ref))
        if not self.blobs.exists("manifest.json"):
            raise SourceError(
                f"{ref.raw}: no manifest.json in the archive — not a `docker save` tarball "
                "(for an OCI archive use oci-archive:PATH)"
            )
        manifest = _load_json(self.blobs.read("manifest.json"), f"{ref.raw}: manifest.json", list)
        if not manifest or not all(isinstance(e, dict) for e in manifest):
            raise SourceError(f"{ref.raw}: manifest.json lists no image")
        self.entry = self._select(manifest)
        self._raw: RawImage | None = None

    def _select(self, manifest: list) -> dict:
        if self.ref.selector:
            for entry in manifest:
                tags = entry.get("RepoTags") or []
                if self.ref.selector in tags or any(t.endswith(":" + self.ref.selector) for t in tags):
                    return entry
            raise SourceError(f"{self.ref.raw}: no image tagged {self.ref.selector!r} in the archive")
        if len(manifest) > 1:
            tags = [t for e in manifest for t in (e.get("RepoTags") or ["<untagged>"])]
            raise SourceError(
                f"{self.ref.raw}: the archive holds {len(manifest)} images ({', '.join(tags)}); "
                f"name one as docker-archive:{self.ref.location}:NAME:TAG"
            )
        return manifest[0]

    def platforms(self) -> list[Platform]:
        return [self.read().platform]

    def read(self, platform: Platform | None = None) -> RawImage:
        if self._raw is None:
            self._raw = self._read()
        if platform is not None and not self._raw.platform.matches(platform):
            raise SourceError(f"{self.ref.raw}: holds {self._raw.platform}, not {platform}")
        return self._raw

    def _read(self) -> RawImage:
        config_name = self.entry.get("Config", "")
        config_bytes = self.blobs.read(config_name)
        config = _load_json(config_bytes, f"{self.ref.raw}: {config_name}")
        layer_names = self.entry.get("Layers") or []
        diff_ids = _diff_ids(config, len(layer_names), self.ref.raw)
        layers = [
            LayerBlob(diff_id, (lambda n=name: self.blobs.open(n)), self.blobs.size(name))
            for name, diff_id in zip(layer_names, diff_ids)
        ]
        config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        return RawImage(config, config_digest, "", _platform_of(config), layers,
                        list(self.entry.get("RepoTags") or []), config_bytes)

    def close(self) -> None:
        self.blobs.close()


# -- OCI image layout, in a directory or a tar ------------------------------------------------


class OciLayoutSource(ImageSource):
    def __init__(self, ref: Reference, blobs: _TarBlobs | _DirBlobs):
        self.ref = ref
        self.blobs = blobs
        if not blobs.exists("index.json"):
            raise SourceError(f"{ref.raw}: no index.json — not an OCI image layout")
        index = _load_json(blobs.read("index.json"), f"{ref.raw}: index.json")
        self.manifests = self._manifests(index, top=True)
        if not self.manifests:
            wanted = f" named {ref.selector!r}" if ref.selector else ""
            raise SourceError(f"{ref.raw}: the layout holds no image manifest{wanted}")
        self._cache: dict[str, RawImage] = {}

    def _blob_name(self, digest: str) -> str:
        if not _DIGEST.match(digest or ""):
            raise SourceError(f"{self.ref.raw}: refusing malformed digest {digest!r}")
        return "blobs/sha256/" + digest.split(":", 1)[1]

    def _json_blob(self, digest: str) -> dict:
        return _load_json(self.blobs.read(self._blob_name(digest)), f"{self.ref.raw}: blob {digest}")

    def _manifests(self, index: dict, top: bool = False, depth: int = 0) -> list[tuple[dict, list[str]]]:
        """Image manifest descriptors (with the names they carry), nested indexes flattened."""
        if depth > 4:
            raise SourceError(f"{self.ref.raw}: image indexes nested too deep")
        found = []
        for desc in index.get("manifests") or []:
            if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
                raise SourceError(f"{self.ref.raw}: a manifest descriptor has no digest")
            annotations = desc.get("annotations") or {}
            names = [annotations[a] for a in _REF_NAME_ANNOTATIONS if a in annotations]
            if top and self.ref.selector and not any(
                n == self.ref.selector or n.endswith(":" + self.ref.selector) for n in names
            ):
                continue
            if desc.get("mediaType") in _INDEX_TYPES:
                nested = self._json_blob(desc.get("digest", ""))
                found += [(d, names + n) for d, n in self._manifests(nested, depth=depth + 1)]
            elif annotations.get(ATTESTATION_ANNOTATION) != "attestation-manifest":
                found.append((desc, names))
        return found

    def _descriptor_platform(self, desc: dict) -> Platform:
        p = desc.get("platform")
        if p:
            return Platform(p.get("os", ""), p.get("architecture", ""), p.get("variant", ""))
        manifest = self._json_blob(desc.get("digest", ""))
        return _platform_of(self._json_blob(manifest.get("config", {}).get("digest", "")))

    def platforms(self) -> list[Platform]:
        plats = [self._descriptor_platform(d) for d, _ in self.manifests]
        return [p for p in plats if not p.is_attestation]

    def read(self, platform: Platform | None = None) -> RawImage:
        candidates = [(d, n) for d, n in self.manifests
                      if not self._descriptor_platform(d).is_attestation]
        if platform is not None:
            candidates = [(d, n) for d, n in candidates
                          if self._descriptor_platform(d).matches(platform)]
        if not candidates:
            raise SourceError(f"{self.ref.raw}: no manifest for platform {platform}")
        if platform is None and len(candidates) > 1:
            listed = ", ".join(str(self._descriptor_platform(d)) for d, _ in candidates)
            raise SourceError(f"{self.ref.raw}: several platforms ({listed}); pick one")
        desc, names = candidates[0]
        digest = desc.get("digest", "")
        if digest not in self._cache:
            self._cache[digest] = self._read_manifest(digest, names)
        return self._cache[digest]

    def _read_manifest(self, digest: str, names: list[str]) -> RawImage:
        manifest = self._json_blob(digest)
        config_digest = (manifest.get("config") or {}).get("digest", "")
        config_bytes = self.blobs.read(self._blob_name(config_digest))
        config = _load_json(config_bytes, f"{self.ref.raw}: config {config_digest}")
        descriptors = manifest.get("layers") or []
        diff_ids = _diff_ids(config, len(descriptors), self.ref.raw)
        layers = []
        for desc, diff_id in zip(descriptors, diff_ids):
            name = self._blob_name(desc.get("digest", ""))
            layers.append(LayerBlob(diff_id, (lambda n=name: self.blobs.open(n)),
                                    self.blobs.size(name), desc.get("mediaType", "")))
        return RawImage(config, config_digest, digest, _platform_of(config), layers, names,
                        config_bytes)

    def close(self) -> None:
        self.blobs.close()


# -- the local Docker daemon ------------------------------------------------------------------


def docker_client():
    """A docker SDK client, or a SourceError that says how to get one."""
    import docker  # imported here: archive inputs never pay for the SDK

    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except Exception as exc:  # DockerException, requests errors, socket errors
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise SourceError(
            f"cannot reach a Docker engine at {host} ({_short(exc)}); start one "
            "(e.g. scripts/ensure-docker.sh) or read the image daemonless with "
            "docker-archive:PATH (docker save), oci-archive:PATH or oci:DIR"
        ) from None


def _short(exc: Exception) -> str:
    """One line for an exception whose text may span several (tarfile's "r:*" does)."""
    text = "; ".join(line.strip(" -") for line in str(exc).splitlines() if line.strip())
    return (text or type(exc).__name__)[:300]


class DaemonSource(ImageSource):
    """An image in the local Docker engine, pulled per --dhi-pull, read via ``docker save``."""

    def __init__(self, ref: Reference, pull: str = "missing"):
        import docker.errors

        self.ref = ref
        self.client = docker_client()
        name = ref.location
        try:
            if pull == "always":
                self._pull(name)
            try:
                self.image = self.client.images.get(name)
            except docker.errors.ImageNotFound:
                if pull == "never":
                    raise SourceError(
                        f"{ref.raw}: not in the local Docker engine and --dhi-pull=never "
                        "(docker pull it, or --dhi-pull=missing)"
                    ) from None
                self.image = self._pull(name)
        except docker.errors.APIError as exc:
            raise SourceError(f"{ref.raw}: Docker engine error: {_short(exc)}") from None
        self._tmp: str | None = None
        self._archive: DockerArchiveSource | None = None

    def _pull(self, name: str):
        import docker.errors

        try:
            return self.client.images.pull(name)
        except docker.errors.APIError as exc:
            raise SourceError(f"{self.ref.raw}: pull failed: {_short(exc)}") from None

    def platforms(self) -> list[Platform]:
        a = self.image.attrs
        return [Platform(a.get("Os", ""), a.get("Architecture", ""), a.get("Variant", "") or "")]


    def read(self, platform: Platform | None = None) -> RawImage:
        if self._archive is None:
            self._archive = self._spool()
        raw = self._archive.read(platform)
        repo_digests = self.image.attrs.get("RepoDigests") or []
        if repo_digests:  # a pulled image: its registry manifest digest is the one users cite
            raw.manifest_digest = repo_digests[0].split("@", 1)[1]
        raw.names = list(self.image.tags) or [self.ref.location]
        return raw

    def _spool(self) -> DockerArchiveSource:
        # `docker save` streams manifest.json last, so the stream is written to a private
        # temporary file (mkdtemp: mode 0700) and then read like any docker-archive.
        self._tmp = tempfile.mkdtemp(prefix="dhi-cilium-")
        path = os.path.join(self._tmp, "image.tar")
        try:
            with open(path, "wb") as out:
                for chunk in self.image.save(chunk_size=1 << 20, named=False):
                    out.write(chunk)
        except Exception as exc:
            self.close()
            raise SourceError(f"{self.ref.raw}: docker save failed: {_short(exc)}") from None
        archive_ref = Reference(f"docker-archive:{path}", "docker-archive", path)
        return DockerArchiveSource(archive_ref)

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()
            self._archive = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self.client.close()
