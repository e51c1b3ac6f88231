"""Where image bytes come from. Every source answers the same two questions — which platforms
do you hold, and give me one platform's config and layer streams — so nothing above this package
knows whether the image lives in a daemon, a ``docker save`` tarball or an OCI layout. One module
per transport; ``open_source`` picks it from the reference.

A registry (``docker://``) is read over the distribution API, pinned to a digest, its layers
streamed as they download. Archives are read in place: a tar is indexed once and each blob is
streamed from its offset; nothing is unpacked. Sources verify the JSON documents they read
(base.verify_document); layer blobs are verified where they are read, in ``model.build_image``,
whatever the transport. Only the daemon source writes, spooling ``docker save`` into a private
temporary directory that is removed when the source is closed.
"""

from __future__ import annotations

from ..reference import DAEMON, REGISTRY, Reference
from .base import (ImageSource, LayerBlob, Platform, RawImage, SourceError,  # noqa: F401
                   decode_config, open_regular, reading, short_error, verify_document)
from .daemon import DaemonSource, EngineUnreachable, docker_client  # noqa: F401
from .docker_archive import DockerArchiveSource
from .oci_layout import OciLayoutSource
from .registry import RegistrySource
from .blobs import DirBlobs, TarBlobs


def open_source(ref: Reference, pull: str = "missing", insecure: tuple[str, ...] = ()) -> ImageSource:
    """``insecure``: registry hosts that may be spoken to without TLS verification (or TLS)."""
    if ref.transport == "docker-archive":
        return DockerArchiveSource(ref)
    if ref.transport == "oci-archive":
        return OciLayoutSource(ref, TarBlobs(ref))
    if ref.transport == "oci":
        return OciLayoutSource(ref, DirBlobs(ref.location))
    if ref.transport == REGISTRY:
        return RegistrySource(ref, insecure)
    if ref.transport == DAEMON:
        return DaemonSource(ref, pull)
    raise SourceError(f"unknown transport {ref.transport!r}")
