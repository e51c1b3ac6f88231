"""OCI image layout, in a directory (``oci:``) or a tar (``oci-archive:``), read in place.

Every document is verified before it is believed: a nested index, a manifest and a config must
have their descriptor's size and digest. Descriptors of the same digest collapse into one
target (their names merged); nesting and the number of targets are capped (base.index_targets)."""

from __future__ import annotations

from ..config import OCI_INDEX_SCHEMA, OCI_MANIFEST_SCHEMA
from ..reference import Reference
from .base import (DIGEST, IndexedSource, LayerBlob, RawImage, SourceError, decode_config,
                   decode_document, diff_ids_of, index_targets, platform_of, verify_document)
from .blobs import DirBlobs, TarBlobs


class OciLayoutSource(IndexedSource):
    def __init__(self, ref: Reference, blobs: TarBlobs | DirBlobs):
        self.ref = ref
        self.blobs = blobs
        self._cache = {}
        try:
            if not blobs.exists("index.json"):
                raise SourceError(f"{ref.raw}: no index.json — not an OCI image layout")
            index = decode_document(blobs.read("index.json"), OCI_INDEX_SCHEMA, f"{ref.raw}: index.json")
            self.targets = index_targets(index, lambda desc: self._document(desc, OCI_INDEX_SCHEMA, "index")[0],
                                         ref.raw, "the layout", ref.selector)
            if not self.targets:
                wanted = f" named {ref.selector!r}" if ref.selector else ""
                raise SourceError(f"{ref.raw}: the layout holds no image manifest{wanted}")
        except BaseException:
            blobs.close()
            raise

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

    def _read_target(self, desc: dict, names: list[str]) -> RawImage:
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
                                    layer.get("digest") or ""))
        return RawImage(config, config_digest, digest, platform_of(config), layers, list(names),
                        config_bytes, verified={"manifest": digest, "config": config_digest})

    def close(self) -> None:
        self.blobs.close()
