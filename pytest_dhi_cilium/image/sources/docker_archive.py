"""docker-archive: the ``docker save`` tarball, read in place and refused where ``docker load``
refuses it (manifest and config decoded as moby decodes them, RepoTags parsed as references)."""

from __future__ import annotations

from ..config import DOCKER_MANIFEST_SCHEMA
from ..reference import Reference, is_tagged_reference
from .base import (ImageSource, LayerBlob, Platform, RawImage, SourceError, decode_config,
                   decode_document, diff_ids_of, platform_of, sha256_digest)
from .blobs import TarBlobs


class DockerArchiveSource(ImageSource):
    def __init__(self, ref: Reference, blobs: TarBlobs | None = None):
        self.ref = ref
        self.blobs = blobs or TarBlobs(ref)
        try:
            if not self.blobs.exists("manifest.json"):
                raise SourceError(
                    f"{ref.raw}: no manifest.json in the archive — not a `docker save` tarball "
                    "(for an OCI archive use oci-archive:PATH)"
                )
            manifest = decode_document(self.blobs.read("manifest.json"), DOCKER_MANIFEST_SCHEMA,
                                       f"{ref.raw}: manifest.json")
            if not manifest or not all(isinstance(e, dict) for e in manifest):
                raise SourceError(f"{ref.raw}: manifest.json lists no image")
            self.entry = self._select(manifest)
        except BaseException:
            self.blobs.close()
            raise
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
        config_name = self.entry.get("Config") or ""
        config_bytes = self.blobs.read(config_name)
        layer_names = self.entry.get("Layers") or []
        config = decode_config(config_bytes, len(layer_names), f"{self.ref.raw}: {config_name}")
        for tag in self.entry.get("RepoTags") or []:
            if not is_tagged_reference(tag):  # docker load fails on it, after the layers
                raise SourceError(f"{self.ref.raw}: manifest.json: invalid tag {tag!r} in RepoTags "
                                  "(docker load refuses it)")
        layers = [
            LayerBlob(diff_id, (lambda n=name: self.blobs.open(n)), self.blobs.size(name))
            for name, diff_id in zip(layer_names, diff_ids_of(config))
        ]
        config_digest = sha256_digest(config_bytes)  # the image ID: computed, so verified
        return RawImage(config, config_digest, "", platform_of(config), layers,
                        list(self.entry.get("RepoTags") or []), config_bytes,
                        verified={"config": config_digest})

    def close(self) -> None:
        self.blobs.close()
