"""Parse ``--dhi-image`` values into a transport and a location."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

ARCHIVE_TRANSPORTS = ("docker-archive", "oci-archive", "oci")
DAEMON = "docker-daemon"
REGISTRY = "docker"  # docker://REGISTRY/REPO:TAG, as skopeo and podman spell a registry image
DOCKER_HUB = "docker.io"

# name[:tag][@digest], the grammar docker itself accepts (lower-case path components).
_DOCKER_REF = re.compile(
    r"^(?P<name>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


class ReferenceError(ValueError):
    """A --dhi-image value that names no image we can read."""


@dataclass(frozen=True)
class Reference:
    raw: str
    transport: str  # docker-daemon, docker (a registry), docker-archive, oci-archive, oci
    location: str  # docker reference (a registry's: normalized, host first), or the archive / layout path
    selector: str = ""  # archive-only: which image inside (a RepoTag or an OCI ref.name)

    @property
    def daemonless(self) -> bool:
        return self.transport in ARCHIVE_TRANSPORTS or self.transport == REGISTRY

    @property
    def tag(self) -> str:
        """The tag, when the reference names one (used for -dev detection and versions)."""
        if self.transport in (DAEMON, REGISTRY):
            return tag_of(self.location)
        return tag_of(self.selector, bare_is_tag=True)


def tag_of(name: str, bare_is_tag: bool = False) -> str:
    """``repo/op:1.18.3`` -> ``1.18.3``. With ``bare_is_tag``, a name with neither ``/`` nor
    ``:`` is itself the tag: an OCI ref.name is often just ``1.18.3-dev``."""
    bare = bare_is_tag and "@" not in name and "/" not in name
    name = name.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return last.split(":", 1)[1]
    return name if bare else ""


def parse_reference(raw: str) -> Reference:
    value = raw.strip()
    if not value:
        raise ReferenceError("empty --dhi-image value")
    for transport in ARCHIVE_TRANSPORTS:
        prefix = transport + ":"
        if value.startswith(prefix):
            path, selector = _split_selector(value[len(prefix):])
            if not path:
                raise ReferenceError(f"{raw!r}: {transport}: needs a path")
            return Reference(raw, transport, path, selector)
    if value.startswith("docker://"):
        return Reference(raw, REGISTRY, normalize_registry_name(raw, value[len("docker://"):]))
    value = value.removeprefix("docker-daemon:")
    if not _DOCKER_REF.match(value):
        raise ReferenceError(
            f"{raw!r} is not a Docker reference (name[:tag][@sha256:...]) nor one of "
            "docker://REGISTRY/REPO:TAG, docker-archive:PATH, oci-archive:PATH, oci:DIR"
        )
    return Reference(raw, DAEMON, value)


def split_registry_name(location: str) -> tuple[str, str, str, str]:
    """A normalized registry location -> (host, repository, tag, digest)."""
    match = _DOCKER_REF.match(location)
    if not match:
        raise ReferenceError(f"{location!r} is not a registry reference")
    host, _, repo = match["name"].partition("/")
    return host, repo, match["tag"] or "", match["digest"] or ""


def normalize_registry_name(raw: str, value: str) -> str:
    """``HOST/REPO[:TAG][@sha256:…]`` with Docker's defaults filled in, as ``docker pull`` and
    skopeo read it: no host (a first component without ``.``, ``:`` or ``localhost``) is Docker
    Hub, a one-component Hub name is under ``library/``, no tag and no digest is ``:latest``."""
    match = _DOCKER_REF.match(value)
    if not match or not value:
        raise ReferenceError(f"{raw!r}: docker:// needs REGISTRY/REPOSITORY[:TAG][@sha256:...] "
                             "(lower-case, as Docker spells references)")
    first, _, rest = match["name"].partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, repo = first, rest
    else:
        host, repo = DOCKER_HUB, match["name"]
    if host in ("index.docker.io", "registry-1.docker.io"):
        host = DOCKER_HUB
    if host == DOCKER_HUB and "/" not in repo:
        repo = "library/" + repo
    tag, digest = match["tag"], match["digest"]
    if not tag and not digest:
        tag = "latest"
    return f"{host}/{repo}" + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def _split_selector(rest: str) -> tuple[str, str]:
    """``PATH[:ref]`` as skopeo spells it; a path that exists as given wins over a split."""
    if os.path.exists(rest) or ":" not in rest:
        return rest, ""
    path, selector = rest.rsplit(":", 1) if rest.count(":") == 1 else _longest_existing(rest)
    return path, selector


def _longest_existing(rest: str) -> tuple[str, str]:
    # "a.tar:name:tag" -> the path is the longest prefix that exists on disk.
    parts = rest.split(":")
    for cut in range(len(parts) - 1, 0, -1):
        path = ":".join(parts[:cut])
        if os.path.exists(path):
            return path, ":".join(parts[cut:])
    return parts[0], ":".join(parts[1:])


def tags_of_names(names: list[str]) -> list[str]:
    """Tags carried by an image's names (RepoTags, OCI ref.name annotations), in order."""
    return [t for t in dict.fromkeys(tag_of(n, bare_is_tag=True) for n in names) if t]


def image_tags(ref: Reference, names: list[str]) -> list[str]:
    """The tags an image goes by: its reference's first, then those its names carry."""
    own = [ref.tag] if ref.tag else []
    return list(dict.fromkeys(own + tags_of_names(names)))


def is_tagged_reference(text: str) -> bool:
    """A ``docker save`` RepoTag as docker load accepts it: name:tag (reference grammar)."""
    return bool(len(text) <= 255 + 129 and _DOCKER_REF.match(text) and tag_of(text))
