"""What every image source shares: the platform and image records a source hands up, the
``ImageSource`` interface, and the one error type (``SourceError``: one sentence, no traceback)."""

from __future__ import annotations

import json
import re
import tarfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Callable

from ..reference import Reference

ATTESTATION_ANNOTATION = "vnd.docker.reference.type"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
REF_NAME_ANNOTATIONS = ("org.opencontainers.image.ref.name", "io.containerd.image.name")
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
    diff_id: str  # digest of the uncompressed layer: the same whatever the transport
    open: Callable[[], IO[bytes]]  # the blob's bytes exactly as stored (compressed or not)
    size: int  # bytes of the blob as stored (compressed or not)
    media_type: str = ""
    # Digest of the blob as stored, as its descriptor states it; "" where the transport has no
    # such descriptor (a legacy `docker save` layer.tar is the uncompressed tar: diff_id covers it).
    digest: str = ""


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



def load_json(data: bytes, what: str, shape: type = dict) -> dict | list:
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise SourceError(f"{what} is not valid JSON ({exc})") from None
    if not isinstance(value, shape):
        raise SourceError(f"{what}: expected a JSON {'object' if shape is dict else 'array'}, "
                          f"got {type(value).__name__}")
    return value


def platform_of(config: dict) -> Platform:
    return Platform(config.get("os", ""), config.get("architecture", ""), config.get("variant", ""))


def diff_ids_of(config: dict, layer_count: int, what: str) -> list[str]:
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != layer_count:
        raise SourceError(
            f"{what}: config lists {len(diff_ids)} layer diff_ids but the manifest has "
            f"{layer_count} layers"
        )
    return list(diff_ids)



def short_error(exc: Exception) -> str:
    """One line for an exception whose text may span several (tarfile's "r:*" does)."""
    text = "; ".join(line.strip(" -") for line in str(exc).splitlines() if line.strip())
    return (text or type(exc).__name__)[:300]
