"""OCI image layout, in a directory (``oci:``) or a tar (``oci-archive:``), read in place.

Every document is verified before it is believed: a nested index, a manifest and a config must
have their descriptor's size and digest. Descriptors of the same digest collapse into one
target (their names merged); nesting and the number of targets are capped."""

from __future__ import annotations

from ..config import OCI_INDEX_SCHEMA, OCI_MANIFEST_SCHEMA
from ..reference import Reference
from .base import (ATTESTATION_ANNOTATION, DIGEST, INDEX_TYPES, REF_NAME_ANNOTATIONS, ImageSource,
                   LayerBlob, Platform, RawImage, SourceError, decode_config, decode_document,
                   diff_ids_of, platform_of, verify_document)
from .blobs import DirBlobs, TarBlobs

MAX_INDEX_DEPTH = 4  # index.json -> index -> manifests is what buildx writes
MAX_TARGETS = 256  # distinct image manifests in one layout


class OciLayoutSource(ImageSource):
    def __init__(self, ref: Reference, blobs: TarBlobs | DirBlobs):
        self.ref = ref
        self.blobs = blobs
        try:
            if not blobs.exists("index.json"):
                raise SourceError(f"{ref.raw}: no index.json — not an OCI image layout")
            index = decode_document(blobs.read("index.json"), OCI_INDEX_SCHEMA, f"{ref.raw}: index.json")
            self.manifests = self._manifests(index)
            if not self.manifests:
                wanted = f" named {ref.selector!r}" if ref.selector else ""
                raise SourceError(f"{ref.raw}: the layout holds no image manifest{wanted}")
        except BaseException:
            blobs.close()
            raise
        self._cache: dict[str, RawImage] = {}

    def _blob_name(self, digest: str) -> str:
        if not DIGEST.match(digest or ""):
            raise SourceError(f"{self.ref.raw}: refusing malformed digest {digest!r}")
        return "blobs/sha256/" + digest.split(":", 1)[1]

    def _document(self, desc: dict, schema, what: str) -> tuple[dict, bytes]:
        """A JSON blob a descriptor names, verified against it (size and digest), decoded."""
        digest = desc.get("digest") or ""
        data = verify_document(self.blobs.read(self._blob_name(digest)), digest, desc.get("size"),
                               f"{self.ref.raw}: {what} {digest}")
        return decode_document(data, schema, f"{self.ref.raw}: {what} {digest}"), data

    def _manifests(self, index: dict) -> list[tuple[dict, list[str]]]:
        """Image manifest descriptors (each digest once, with the names it goes by), nested
        indexes flattened breadth-first, each index read once."""
        found: dict[str, tuple[dict, list[str]]] = {}
        level = [(index, [], True)]
        seen_indexes: set[str] = set()
        for depth in range(MAX_INDEX_DEPTH + 1):
            nested = []
            for doc, inherited, top in level:
                for desc in doc.get("manifests") or []:
                    if not isinstance(desc, dict) or not desc.get("digest"):
                        raise SourceError(f"{self.ref.raw}: a manifest descriptor has no digest")
                    annotations = desc.get("annotations") or {}
                    names = [annotations[a] for a in REF_NAME_ANNOTATIONS if a in annotations]
                    if top and self.ref.selector and not any(
                        n == self.ref.selector or n.endswith(":" + self.ref.selector) for n in names
                    ):
                        continue
                    digest = desc["digest"]
                    if desc.get("mediaType") in INDEX_TYPES:
                        if digest not in seen_indexes:
                            seen_indexes.add(digest)
                            child, _ = self._document(desc, OCI_INDEX_SCHEMA, "index")
                            nested.append((child, inherited + names, False))
                    elif annotations.get(ATTESTATION_ANNOTATION) != "attestation-manifest":
                        if digest in found:
                            found[digest][1].extend(n for n in inherited + names if n not in found[digest][1])
                        else:
                            found[digest] = (desc, list(dict.fromkeys(inherited + names)))
                        if len(found) > MAX_TARGETS:
                            raise SourceError(f"{self.ref.raw}: the layout lists more than "
                                              f"{MAX_TARGETS} image manifests")
            if not nested:
                return list(found.values())
            level = nested
        raise SourceError(f"{self.ref.raw}: image indexes nested more than {MAX_INDEX_DEPTH} deep")

    def _descriptor_platform(self, desc: dict, names: list[str]) -> Platform:
        p = desc.get("platform")
        if p:
            return Platform(p.get("os") or "", p.get("architecture") or "", p.get("variant") or "")
        return self.read_digest(desc, names).platform  # no platform stated (skopeo writes none)

    def platforms(self) -> list[Platform]:
        plats = [self._descriptor_platform(d, n) for d, n in self.manifests]
        return [p for p in plats if not p.is_attestation]

    def read(self, platform: Platform | None = None) -> RawImage:
        candidates = [(d, n) for d, n in self.manifests
                      if not self._descriptor_platform(d, n).is_attestation]
        if platform is not None:
            candidates = [(d, n) for d, n in candidates
                          if self._descriptor_platform(d, n).matches(platform)]
        if not candidates:
            raise SourceError(f"{self.ref.raw}: no manifest for platform {platform}")
        if platform is None and len(candidates) > 1:
            listed = ", ".join(str(self._descriptor_platform(d, n)) for d, n in candidates)
            raise SourceError(f"{self.ref.raw}: several platforms ({listed}); pick one")
        return self.read_digest(*candidates[0])

    def read_digest(self, desc: dict, names: list[str]) -> RawImage:
        digest = desc["digest"]
        if digest not in self._cache:
            self._cache[digest] = self._read_manifest(desc, list(names))
        return self._cache[digest]

    def _read_manifest(self, desc: dict, names: list[str]) -> RawImage:
        digest = desc["digest"]
        manifest, _ = self._document(desc, OCI_MANIFEST_SCHEMA, "manifest")
        config_desc = manifest.get("config") or {}
        config_digest = config_desc.get("digest") or ""
        descriptors = manifest.get("layers") or []
        config_bytes = verify_document(self.blobs.read(self._blob_name(config_digest)), config_digest,
                                       config_desc.get("size"), f"{self.ref.raw}: config {config_digest}")
        config = decode_config(config_bytes, len(descriptors), f"{self.ref.raw}: config {config_digest}")
        layers = []
        for layer, diff_id in zip(descriptors, diff_ids_of(config)):
            name = self._blob_name(layer.get("digest") or "")
            layers.append(LayerBlob(diff_id, (lambda n=name: self.blobs.open(n)), layer.get("size") or 0,
                                    layer.get("mediaType") or "", layer.get("digest") or ""))
        return RawImage(config, config_digest, digest, platform_of(config), layers, names,
                        config_bytes, verified={"manifest": digest, "config": config_digest})

    def close(self) -> None:
        self.blobs.close()
