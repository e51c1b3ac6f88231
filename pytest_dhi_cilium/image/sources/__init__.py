"""Where image bytes come from. Every source answers the same two questions — which platforms
do you hold, and give me one platform's config and layer streams — so nothing above this package
knows whether the image lives in a daemon, a ``docker save`` tarball or an OCI layout. One module
per transport; ``open_source`` picks it from the reference.

A registry (``docker://``) is read over the distribution API, pinned to a digest, its layers
streamed as they download. Archives are read in place: a tar is opened for random access and each blob is streamed from
its offset; nothing is unpacked. Only the daemon source writes, spooling ``docker save`` into a
private temporary directory that is removed when the source is closed.
"""

from __future__ import annotations

from ..reference import DAEMON, REGISTRY, Reference
from .base import (ImageSource, LayerBlob, Platform, RawImage, SourceError,  # noqa: F401
                   reading)
from .daemon import DaemonSource, EngineUnreachable, docker_client  # noqa: F401
from .docker_archive import DockerArchiveSource
from .oci_layout import OciLayoutSource
from .registry import RegistrySource
from .blobs import DirBlobs, TarBlobs, open_tar


def open_source(ref: Reference, pull: str = "missing", insecure: tuple[str, ...] = ()) -> ImageSource:
    """``insecure``: registry hosts that may be spoken to without TLS verification (or TLS)."""
    if ref.transport == "docker-archive":
        return DockerArchiveSource(ref)
    if ref.transport == "oci-archive":
        return OciLayoutSource(ref, TarBlobs(open_tar(ref)))
    if ref.transport == "oci":
        return OciLayoutSource(ref, DirBlobs(ref.location))
    if ref.transport == REGISTRY:
        return RegistrySource(ref, insecure)
    if ref.transport == DAEMON:
        return DaemonSource(ref, pull)
    raise SourceError(f"unknown transport {ref.transport!r}")
