"""OCI image layout, in a directory (``oci:``) or a tar (``oci-archive:``), read in place."""

from __future__ import annotations

from ..reference import Reference
from .base import (ATTESTATION_ANNOTATION, DIGEST, INDEX_TYPES, REF_NAME_ANNOTATIONS, ImageSource,
                   LayerBlob, Platform, RawImage, SourceError, diff_ids_of, load_json, platform_of)
from .blobs import DirBlobs, TarBlobs


class OciLayoutSource(ImageSource):
    def __init__(self, ref: Reference, blobs: TarBlobs | DirBlobs):
        self.ref = ref
        self.blobs = blobs
        if not blobs.exists("index.json"):
            raise SourceError(f"{ref.raw}: no index.json — not an OCI image layout")
        index = load_json(blobs.read("index.json"), f"{ref.raw}: index.json")
        self.manifests = self._manifests(index, top=True)
        if not self.manifests:
            wanted = f" named {ref.selector!r}" if ref.selector else ""
            raise SourceError(f"{ref.raw}: the layout holds no image manifest{wanted}")
        self._cache: dict[str, RawImage] = {}

    def _blob_name(self, digest: str) -> str:
        if not DIGEST.match(digest or ""):
            raise SourceError(f"{self.ref.raw}: refusing malformed digest {digest!r}")
        return "blobs/sha256/" + digest.split(":", 1)[1]

    def _json_blob(self, digest: str) -> dict:
        return load_json(self.blobs.read(self._blob_name(digest)), f"{self.ref.raw}: blob {digest}")

    def _manifests(self, index: dict, top: bool = False, depth: int = 0) -> list[tuple[dict, list[str]]]:
        """Image manifest descriptors (with the names they carry), nested indexes flattened."""
        if depth > 4:
            raise SourceError(f"{self.ref.raw}: image indexes nested too deep")
        found = []
        for desc in index.get("manifests") or []:
            if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
                raise SourceError(f"{self.ref.raw}: a manifest descriptor has no digest")
            annotations = desc.get("annotations") or {}
            names = [annotations[a] for a in REF_NAME_ANNOTATIONS if a in annotations]
            if top and self.ref.selector and not any(
                n == self.ref.selector or n.endswith(":" + self.ref.selector) for n in names
            ):
                continue
            if desc.get("mediaType") in INDEX_TYPES:
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
        return platform_of(self._json_blob(manifest.get("config", {}).get("digest", "")))

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
        config = load_json(config_bytes, f"{self.ref.raw}: config {config_digest}")
        descriptors = manifest.get("layers") or []
        diff_ids = diff_ids_of(config, len(descriptors), self.ref.raw)
        layers = []
        for desc, diff_id in zip(descriptors, diff_ids):
            name = self._blob_name(desc.get("digest", ""))
            layers.append(LayerBlob(diff_id, (lambda n=name: self.blobs.open(n)),
                                    self.blobs.size(name), desc.get("mediaType", "")))
        return RawImage(config, config_digest, digest, platform_of(config), layers, names,
                        config_bytes)

    def close(self) -> None:
        self.blobs.close()
