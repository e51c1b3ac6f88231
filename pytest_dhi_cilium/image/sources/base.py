"""What every image source shares: the platform and image records a source hands up, the
``ImageSource`` interface, the one error type (``SourceError``: one sentence, no traceback),
the helpers every transport uses to open files and read its JSON documents verified, and the
OCI index walk and platform selection the layout and registry sources share (``IndexedSource``)."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tarfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Callable

from ..config import ConfigError, decode_image_config, go_decode
from ..layerstream import DigestMismatch, Limits, split_digest
from ..reference import Reference

ATTESTATION_ANNOTATION = "vnd.docker.reference.type"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
REF_NAME_ANNOTATIONS = ("org.opencontainers.image.ref.name", "io.containerd.image.name")
MAX_JSON_BYTES = 16 << 20  # manifests and configs are small; refuse a hostile giant
MAX_INDEX_DEPTH = 4  # index -> index -> manifests is what buildx writes
MAX_TARGETS = 256  # distinct image manifests in one index (its nested indexes included)


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
                          f"{short_error(exc)})") from None


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
    """One layer as a transport stores it. Sources only say where the bytes are and what the
    descriptor promises; ``model.build_image`` reads each blob once and verifies everything
    (digest and size, compression from magic bytes, diff_id, gzip trailer)."""

    diff_id: str  # the config's digest of the uncompressed layer: the same whatever the transport
    # The blob's bytes exactly as stored (compressed or not), from its start; a plain readable
    # stream is enough (no seek, may be an HTTP response). Called once per read of the image.
    open: Callable[[], IO[bytes]]
    size: int  # bytes of the blob as stored, as its descriptor states (checked when digest is set)
    # Digest of the blob as stored, as its descriptor states it; "" where the transport has no
    # such descriptor (a legacy `docker save` layer.tar is the uncompressed tar: diff_id covers it).
    digest: str = ""


@dataclass
class RawImage:
    config: dict  # as decoded like Docker decodes it (config.decode_image_config): Go field names
    config_digest: str  # sha256 of config_bytes: verified by construction
    manifest_digest: str  # verified against its index descriptor; "" when there is no manifest
    platform: Platform
    layers: list[LayerBlob]
    names: list[str] = field(default_factory=list)  # RepoTags / ref.name annotations
    config_bytes: bytes = b""  # the config exactly as stored: its sha256 is the image ID
    # What the source verified itself ({"manifest": digest, "config": digest}); build_image
    # adds the layers. Only digests computed from bytes that were read end up here.
    verified: dict = field(default_factory=dict)
    repo_digest: str = ""  # a daemon image's registry digest: the engine's record, not verified

    @property
    def digest(self) -> str:
        return self.manifest_digest or self.config_digest


class ImageSource:
    """One image input. Subclasses implement ``platforms`` and ``read``."""

    ref: Reference
    digest = ""  # a registry's: the digest the reference resolved to, which every read is pinned to
    index_digest = ""  # that digest, when it names an index (a multi-platform image)

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


class IndexedSource(ImageSource):
    """A source whose images an OCI index lists (an OCI layout, a registry). Subclasses set
    ``targets`` (:func:`index_targets`) and ``_cache = {}``, and read one image manifest in
    ``_read_target``. A target's platform is its descriptor's or, when the descriptor states
    none (skopeo writes none), its config's: the image is then read once, names and all."""

    targets: list[tuple[dict, list[str]]]  # image manifest descriptor, the names it goes by
    _cache: dict[str, RawImage]

    def _read_target(self, desc: dict, names: list[str]) -> RawImage:
        raise NotImplementedError

    def read_target(self, desc: dict, names: list[str]) -> RawImage:
        if desc["digest"] not in self._cache:
            self._cache[desc["digest"]] = self._read_target(desc, names)
        return self._cache[desc["digest"]]

    def _platform(self, desc: dict, names: list[str]) -> Platform:
        stated = desc.get("platform")
        return platform_of(stated) if stated else self.read_target(desc, names).platform

    def platforms(self) -> list[Platform]:
        return [p for p in (self._platform(d, n) for d, n in self.targets) if not p.is_attestation]

    def read(self, platform: Platform | None = None) -> RawImage:
        candidates = [(d, n, p) for d, n in self.targets if not (p := self._platform(d, n)).is_attestation]
        if platform is not None:
            candidates = [c for c in candidates if c[2].matches(platform)]
        if not candidates:
            where = f" in {self.digest}" if self.digest else ""
            raise SourceError(f"{self.ref.raw}: no manifest for platform {platform}{where}")
        if platform is None and len(candidates) > 1:
            listed = ", ".join(str(p) for _, _, p in candidates)
            raise SourceError(f"{self.ref.raw}: several platforms ({listed}); pick one")
        desc, names, _ = candidates[0]
        return self.read_target(desc, names)


def index_targets(index: dict, fetch_index: Callable[[dict], dict], where: str, listing: str,
                  selector: str = "") -> list[tuple[dict, list[str]]]:
    """The image manifests an OCI index lists: each digest once, with the names it goes by
    (ref.name annotations, its enclosing indexes' included); nested indexes flattened
    breadth-first, each fetched once (``fetch_index(descriptor)``: decoded, verified against
    the descriptor); attestation manifests left out. Nesting deeper than MAX_INDEX_DEPTH and
    more than MAX_TARGETS manifests are refused before anything more is fetched.
    ``selector``: keep only the top-level descriptors named so (``oci:DIR:NAME``)."""
    found: dict[str, tuple[dict, list[str]]] = {}
    seen_indexes: set[str] = set()
    level: list[tuple[dict, list[str]]] = [(index, [])]
    depth = 0
    while level:
        nested = []
        for doc, inherited in level:
            for desc in doc.get("manifests") or []:
                if not isinstance(desc, dict) or not desc.get("digest"):
                    raise SourceError(f"{where}: a manifest descriptor has no digest")
                digest = desc["digest"]
                if not DIGEST.match(digest):
                    raise SourceError(f"{where}: refusing malformed digest {digest!r}")
                annotations = desc.get("annotations") or {}
                names = inherited + [annotations[a] for a in REF_NAME_ANNOTATIONS if a in annotations]
                if depth == 0 and selector and not any(
                        n == selector or n.endswith(":" + selector) for n in names):
                    continue
                if desc.get("mediaType") in INDEX_TYPES:
                    if digest in seen_indexes:
                        continue
                    if depth == MAX_INDEX_DEPTH:
                        raise SourceError(f"{where}: image indexes nested more than {MAX_INDEX_DEPTH} deep")
                    seen_indexes.add(digest)
                    nested.append((fetch_index(desc), names))
                elif annotations.get(ATTESTATION_ANNOTATION) != "attestation-manifest":
                    if digest in found:
                        found[digest][1].extend(n for n in names if n not in found[digest][1])
                        continue
                    found[digest] = (desc, list(dict.fromkeys(names)))
                    if len(found) > MAX_TARGETS:
                        raise SourceError(f"{where}: {listing} lists more than {MAX_TARGETS} image manifests")
        level = nested
        depth += 1
    return list(found.values())



def open_regular(path: str, what: str) -> IO[bytes]:
    """Open a file only if it is a regular file: O_NONBLOCK so a FIFO never blocks the open,
    then fstat on the descriptor itself (no race with a swapped path)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise SourceError(f"{what}: cannot open {path!r} ({exc.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
                "a character device" if stat.S_ISCHR(mode) else "a block device"
                if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file")
        raise SourceError(f"{what}: {path!r} is {kind}, not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_limited(stream: IO[bytes], what: str, limit: int = MAX_JSON_BYTES) -> bytes:
    """At most ``limit`` bytes of a small document; more is refused, not truncated."""
    with stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise SourceError(f"{what} is larger than {limit >> 20} MiB: not an image document")
    return data


def verify_document(data: bytes, digest: str, size: int | None, what: str) -> bytes:
    """The one check for every JSON document a descriptor names (index, manifest, config): its
    size and digest must be the descriptor's. Returns the bytes, now trusted."""
    try:
        algorithm, expected = split_digest(digest, f"{what}: descriptor digest")
    except DigestMismatch as exc:
        raise SourceError(str(exc)) from None
    actual = hashlib.new(algorithm, data).hexdigest()
    if actual != expected or (size is not None and size != len(data)):
        raise SourceError(f"{what} does not match its digest: expected {digest} ({size} bytes), "
                          f"the bytes hash to {algorithm}:{actual} ({len(data)} bytes)")
    return data


def reader_limits() -> Limits:
    """The reader's bounds (DHI_MAX_* in the environment), or a bad value's one sentence."""
    try:
        return Limits.from_env()
    except ValueError as exc:
        raise SourceError(str(exc)) from None


def decode_document(data: bytes, schema, what: str):
    """A JSON document decoded as the Go type that reads it (type errors as Go says them)."""
    try:
        return go_decode(data, schema, what)
    except ConfigError as exc:
        raise SourceError(str(exc)) from None


def decode_config(data: bytes, layer_count: int, what: str) -> dict:
    """The image config as docker load reads it (see image/config.py), or its refusal."""
    try:
        return decode_image_config(data, layer_count, what)
    except ConfigError as exc:
        raise SourceError(str(exc)) from None


def platform_of(config: dict) -> Platform:
    return Platform(config.get("os") or "", config.get("architecture") or "",
                    config.get("variant") or "")


def diff_ids_of(config: dict) -> list[str]:
    return list((config.get("rootfs") or {}).get("diff_ids") or [])


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def short_error(exc: Exception) -> str:
    """One line for an exception whose text may span several (tarfile's "r:*" does)."""
    text = "; ".join(line.strip(" -") for line in str(exc).splitlines() if line.strip())
    return (text or type(exc).__name__)[:300]
