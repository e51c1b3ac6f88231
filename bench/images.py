"""Benchmark images, written as `docker save` archives without ever holding a large layer in
memory: small layers come from tests/imagekit.py, the data layers are streamed to disk from
os.urandom (incompressible) in 1 MiB chunks and hashed on the way.

Layout (the same at every size; only the data files grow):

    layer 1  base     /etc/passwd, /etc/group (nonroot 65532), /tmp 1777, /home/nonroot,
                      /home/gops and /run/cilium (65532, 0700), CA bundle    (imagekit.dhi_like)
    layer 2  data-a   /usr/share/bench/data-a.bin   half of the data
    layer 3  data-b   /usr/share/bench/data-b.bin   the other half
    layer 4  app      /usr/local/bin/cilium-operator-generic (the static fake operator)

Config: USER 65532:65532, ENTRYPOINT ["/usr/local/bin/cilium-operator-generic"],
Env PATH and GOPS_CONFIG_DIR=/home/gops.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import imagekit as ik  # noqa: E402

CHUNK = 1 << 20
MTIME = 1700000000


class _Random:
    """A file-like source of ``size`` random bytes, produced chunk by chunk."""

    def __init__(self, size: int):
        self.left = size

    def read(self, n: int = CHUNK) -> bytes:
        n = min(n if n >= 0 else self.left, self.left)
        self.left -= n
        return os.urandom(n)


class _Hashing:
    """A write-only file wrapper that hashes what passes through it."""

    def __init__(self, raw):
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def tell(self) -> int:  # tarfile may ask
        return self.size


def _data_layer(path: Path, member: str, size: int) -> tuple[str, int]:
    """Write one layer tar holding a ``size``-byte random file; return (sha256 hex, bytes)."""
    with open(path, "wb") as raw:
        out = _Hashing(raw)
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, copybufsize=CHUNK) as tar:
            for d in ("usr", "usr/share", "usr/share/bench"):
                info = tarfile.TarInfo(d)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, MTIME
                tar.addfile(info)
            info = tarfile.TarInfo(member)
            info.size, info.mode, info.mtime = size, 0o644, MTIME
            tar.addfile(info, _Random(size))
    return out.sha.hexdigest(), out.size


@dataclass
class BenchImage:
    label: str  # "100MB", "1GB"
    tag: str  # daemon reference after docker load
    archive: Path
    archive_bytes: int
    image_id: str  # sha256 of the config
    layers: int


def write_bench_archive(path: Path, operator: Path, target_bytes: int, tag: str, label: str,
                        **platform) -> BenchImage:
    """Write the benchmark image as a docker-archive of about ``target_bytes`` bytes
    (``platform``: architecture=, variant= for the config, default linux/amd64)."""
    spec = ik.dhi_like(operator, **platform)  # layers [base, app], entrypoint, USER, GOPS_CONFIG_DIR
    base_blob, app_blob = spec.layer_blobs()
    data_bytes = max(0, target_bytes - len(base_blob) - len(app_blob) - 16 * 1024)
    halves = (data_bytes // 2, data_bytes - data_bytes // 2)
    work = path.parent
    layers: list[tuple[str, Path | bytes]] = [("base", base_blob)]
    diff_ids = ["sha256:" + hashlib.sha256(base_blob).hexdigest()]
    for name, size in zip(("data-a", "data-b"), halves):
        tmp = work / f".{path.name}.{name}.tar"
        digest, _ = _data_layer(tmp, f"usr/share/bench/{name}.bin", size)
        layers.append((name, tmp))
        diff_ids.append("sha256:" + digest)
    layers.append(("app", app_blob))
    diff_ids.append("sha256:" + hashlib.sha256(app_blob).hexdigest())

    config = json.dumps({
        "architecture": spec.architecture, "os": spec.os, "created": "2025-01-01T00:00:00Z",
        **({"variant": spec.variant} if spec.variant else {}),
        "config": {"Env": spec.env, "User": spec.user, "Entrypoint": spec.entrypoint, "Cmd": None,
                   "WorkingDir": "", "Labels": None},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": f"bench layer {name}"} for name, _ in layers],
    }, sort_keys=True).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    layer_names = []
    try:
        with tarfile.open(path, "w", copybufsize=CHUNK) as tar:
            for (name, blob), diff_id in zip(layers, diff_ids):
                member = f"{diff_id.split(':')[1]}/layer.tar"
                info = tarfile.TarInfo(member)
                info.mtime = MTIME
                if isinstance(blob, bytes):
                    info.size = len(blob)
                    tar.addfile(info, io.BytesIO(blob))
                else:
                    info.size = blob.stat().st_size
                    with open(blob, "rb") as data:
                        tar.addfile(info, data)
                layer_names.append(member)
            for member, data in ((f"{config_hex}.json", config),
                                 ("manifest.json", json.dumps([{"Config": f"{config_hex}.json",
                                                                "RepoTags": [tag],
                                                                "Layers": layer_names}]).encode())):
                info = tarfile.TarInfo(member)
                info.size, info.mtime = len(data), MTIME
                tar.addfile(info, io.BytesIO(data))
    finally:
        for _, blob in layers:
            if isinstance(blob, Path):
                blob.unlink(missing_ok=True)
    return BenchImage(label, tag, path, path.stat().st_size, "sha256:" + config_hex, len(layers))



def _header(name: str, type_: bytes, mode: int, size: int = 0) -> bytes:
    """One ustar header, written directly (tarfile takes minutes for a million entries)."""
    block = bytearray(512)
    raw = name.encode()
    block[0:len(raw)] = raw
    block[100:108] = b"%07o\0" % mode
    block[108:116] = block[116:124] = b"%07o\0" % 0
    block[124:136] = b"%011o\0" % size
    block[136:148] = b"%011o\0" % MTIME
    block[156:157] = type_
    block[257:265] = b"ustar\x0000"
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def _extra_layer_archive(path: Path, operator: Path, layer: Path, diff_id: str, label: str) -> BenchImage:
    """The benchmark image's base and app layers plus one more layer (a file on disk)."""
    spec = ik.dhi_like(operator)
    blobs = spec.layer_blobs()
    diff_ids = [ik.sha256(b) for b in blobs] + [diff_id]
    config = json.dumps({
        "architecture": spec.architecture, "os": spec.os, "created": "2025-01-01T00:00:00Z",
        "config": {"Env": spec.env, "User": spec.user, "Entrypoint": spec.entrypoint},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}}, sort_keys=True).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    names = [f"{i}/layer.tar" for i in range(3)]
    with tarfile.open(path, "w", copybufsize=CHUNK) as tar:
        for name, blob in zip(names, blobs):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(blob), MTIME
            tar.addfile(info, io.BytesIO(blob))
        info = tarfile.TarInfo(names[2])
        info.size, info.mtime = layer.stat().st_size, MTIME
        with open(layer, "rb") as data:
            tar.addfile(info, data)
        for member, data in ((f"{config_hex}.json", config), ("manifest.json", json.dumps(
                [{"Config": f"{config_hex}.json", "RepoTags": None, "Layers": names}]).encode())):
            info = tarfile.TarInfo(member)
            info.size, info.mtime = len(data), MTIME
            tar.addfile(info, io.BytesIO(data))
    layer.unlink()
    return BenchImage(label, "", path, path.stat().st_size, "sha256:" + config_hex, 3)


def write_entries_archive(path: Path, operator: Path, entries: int) -> BenchImage:
    """The benchmark image plus a layer of ``entries`` empty files in 1,000 directories: what
    the reader's memory per path costs."""
    layer = path.parent / f".{path.name}.layer"
    with open(layer, "wb") as raw:
        out = _Hashing(raw)
        dirs = min(1000, entries)
        for d in range(dirs):
            out.write(_header(f"srv/d{d:04}/", b"5", 0o755))
        batch = []
        for i in range(entries - dirs):
            batch.append(_header(f"srv/d{i % dirs:04}/file-{i:07}", b"0", 0o644))
            if len(batch) == 2048:
                out.write(b"".join(batch))
                batch = []
        out.write(b"".join(batch) + bytes(1024))
    return _extra_layer_archive(path, operator, layer, "sha256:" + out.sha.hexdigest(), f"{entries:,} entries")


def write_bomb_archive(path: Path, operator: Path, inflated: int) -> BenchImage:
    """The benchmark image plus a gzip layer of one ``inflated``-byte file of zeros (a
    compression bomb, ~1000:1): the reader must refuse it at its limit, quickly."""
    import gzip

    layer = path.parent / f".{path.name}.layer"
    plain = hashlib.sha256()
    with open(layer, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=6) as gz:
        def write(data: bytes) -> None:
            plain.update(data)
            gz.write(data)

        write(_header("srv/zeros", b"0", 0o644, inflated))
        zeros = bytes(CHUNK)
        for _ in range(inflated // CHUNK):
            write(zeros)
        write(bytes(inflated % CHUNK + (-inflated % 512) + 1024))
    return _extra_layer_archive(path, operator, layer, "sha256:" + plain.hexdigest(),
                                f"{inflated / 10**9:g} GB gzip bomb")


def write_oci_index(out: Path, archives: list[Path]) -> Path:
    """One OCI layout holding an index of the given docker-archives (one platform each), layers
    uncompressed as stored, streamed from archive to blob file: what `skopeo copy --all` pushes."""
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> tuple[str, int]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return "sha256:" + digest, len(data)

    descriptors = []
    for archive in archives:
        with tarfile.open(archive) as tar:
            entry = json.loads(tar.extractfile("manifest.json").read())[0]
            config = tar.extractfile(entry["Config"]).read()
            layers = []
            for name in entry["Layers"]:
                digest = name.split("/")[0]  # docker save names a layer after its diff_id
                member = tar.getmember(name)
                with tar.extractfile(member) as src, open(blobs / digest, "wb") as dst:
                    while chunk := src.read(CHUNK):
                        dst.write(chunk)
                layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                               "digest": "sha256:" + digest, "size": member.size})
        doc = json.loads(config)
        config_digest, config_size = put(config)
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": config_digest, "size": config_size},
                               "layers": layers}).encode()
        digest, size = put(manifest)
        platform = {"os": doc["os"], "architecture": doc["architecture"]}
        if doc.get("variant"):
            platform["variant"] = doc["variant"]
        descriptors.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
                            "size": size, "platform": platform})
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": descriptors}).encode()
    digest, size = put(index)
    (out / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": size}]}))
    (out / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return out
