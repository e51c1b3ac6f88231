"""Build test images without a registry: layer tars and docker-archive / OCI layouts written
directly in Python (any layout, whiteouts and hostile names included), and the same specs
loaded into a real Docker engine with ``docker load`` when a test needs the daemon."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

OPERATOR = "cilium-operator-generic"
BUSYBOX = "/bin/busybox"  # Debian's busybox-static: a real static shell for dev-like images


@dataclass
class Member:
    name: str  # the raw tar member name (may be hostile on purpose)
    kind: str = "file"  # file, dir, symlink, hardlink; fifo, char00 (mknod c 0 0), dir-opaque (xattr)
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    link: str = ""


def file(path: str, data: bytes = b"", mode: int = 0o644, uid: int = 0, gid: int = 0) -> Member:
    return Member(path.lstrip("/"), "file", data, mode, uid, gid)


def exe(path: str, data: bytes = b"\x7fELF fake", mode: int = 0o755, uid: int = 0, gid: int = 0) -> Member:
    return file(path, data, mode, uid, gid)


def host_file(path: str, source: str | os.PathLike, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Member:
    return file(path, Path(source).read_bytes(), mode, uid, gid)


def directory(path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Member:
    return Member(path.strip("/"), "dir", b"", mode, uid, gid)


def symlink(path: str, target: str) -> Member:
    return Member(path.lstrip("/"), "symlink", b"", 0o777, 0, 0, target)


def hardlink(path: str, target: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Member:
    """A hard link. Its header's mode and owner apply to the shared inode (Docker chmods and
    chowns the new name), so they are the target's too: give the target's own here."""
    return Member(path.lstrip("/"), "hardlink", b"", mode, uid, gid, target.lstrip("/"))


def whiteout(path: str) -> Member:
    head, _, base = path.strip("/").rpartition("/")
    return file(f"{head}/.wh.{base}" if head else f".wh.{base}")


def opaque(path: str) -> Member:
    return file(f"{path.strip('/')}/.wh..wh..opq")


def passwd(*lines: str) -> Member:
    return file("/etc/passwd", ("\n".join(lines) + "\n").encode())


def group(*lines: str) -> Member:
    return file("/etc/group", ("\n".join(lines) + "\n").encode())


NONROOT_PASSWD = passwd("root:x:0:0:root:/root:/sbin/nologin",
                        "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin")
NONROOT_GROUP = group("root:x:0:", "nonroot:x:65532:")


OPAQUE_XATTR = "SCHILY.xattr.trusted.overlay.opaque"  # what overlayfs reads, set by the layer itself
_TYPES = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
          "fifo": tarfile.FIFOTYPE, "char00": tarfile.CHRTYPE}


def layer_tar(members: list[Member]) -> bytes:
    """A layer tar, names exactly as given (hostile ones included)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.mode, info.uid, info.gid, info.mtime = m.mode, m.uid, m.gid, 1700000000
            if m.kind == "dir-opaque":
                info.type, info.pax_headers = tarfile.DIRTYPE, {OPAQUE_XATTR: "y"}
                tar.addfile(info)
            elif m.kind in _TYPES:
                info.type, info.linkname = _TYPES[m.kind], m.link
                tar.addfile(info)
            else:
                info.size = len(m.data)
                tar.addfile(info, io.BytesIO(m.data))
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


_DIGESTS: dict[tuple[Path, int, int], str] = {}


def layer_digest(blob: bytes | Path) -> str:
    """A layer's diff_id: of the bytes, or streamed from a tar file (hashed once per version of
    the file: a file rewritten at the same path is hashed again)."""
    if not isinstance(blob, Path):
        return sha256(blob)
    stat = blob.stat()
    key = (blob.resolve(), stat.st_mtime_ns, stat.st_size)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(blob, "rb") as data:
            for chunk in iter(lambda: data.read(1 << 20), b""):
                h.update(chunk)
        _DIGESTS[key] = "sha256:" + h.hexdigest()
    return _DIGESTS[key]


def merged_view(*layers, limits=None):
    """The reader's merged view of layers given as member lists or raw layer bytes (each
    verified against its own diff_id, as an image would declare it)."""
    blobs = [layer if isinstance(layer, bytes) else layer_tar(layer) for layer in layers]
    return merged_view_stored(blobs, blobs, limits)


def merged_view_stored(stored: list[bytes], uncompressed: list[bytes], limits=None):
    """The merged view of layer blobs as stored (compressed or not), verified against the
    diff_ids of ``uncompressed``."""
    from pytest_dhi_cilium.image.layers import FileSystem, read_layer
    from pytest_dhi_cilium.image.layerstream import LayerStream, Limits

    fs, limits = FileSystem(), limits or Limits()
    for index, (blob, plain) in enumerate(zip(stored, uncompressed)):
        stream = LayerStream(io.BytesIO(blob), digest="", size=None, diff_id=sha256(plain), limits=limits)
        read_layer(index, stream, fs, limits)
    return fs


@dataclass
class ImageSpec:
    layers: list[list[Member] | Path]  # members, or an uncompressed layer tar already on disk
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    user: str = ""
    env: list[str] = field(default_factory=lambda: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    labels: dict[str, str] = field(default_factory=dict)
    working_dir: str = ""
    os: str = "linux"
    architecture: str = "amd64"
    variant: str = ""

    def layer_blobs(self) -> list[bytes | Path]:
        return [layer if isinstance(layer, Path) else layer_tar(layer) for layer in self.layers]

    def config(self, blobs: list[bytes | Path]) -> bytes:
        config = {"Env": self.env, "Labels": self.labels or None, "User": self.user,
                  "WorkingDir": self.working_dir, "Entrypoint": self.entrypoint, "Cmd": self.cmd}
        doc = {"architecture": self.architecture, "os": self.os, "config": config,
               "created": "2025-01-01T00:00:00Z",
               "rootfs": {"type": "layers", "diff_ids": [layer_digest(b) for b in blobs]},
               "history": [{"created_by": f"layer {i}"} for i in range(len(blobs))]}
        if self.variant:
            doc["variant"] = self.variant
        return json.dumps(doc, sort_keys=True).encode()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), 1700000000
    tar.addfile(info, io.BytesIO(data))


def write_docker_archive(path: str | os.PathLike, spec: ImageSpec, tags: list[str] | None = None,
                         extra_members: list[Member] = ()) -> Path:
    """The legacy `docker save` layout (what Engine 20.10 writes and loads)."""
    return write_docker_archive_images(path, [(spec, tags)], extra_members)


def write_docker_archive_images(path: str | os.PathLike, images: list[tuple[ImageSpec, list[str] | None]],
                                extra_members: list[Member] = ()) -> Path:
    """Several images in one `docker save` archive (select one as docker-archive:PATH:NAME:TAG),
    layers they share stored once; a layer given as a tar file is streamed from disk."""
    def built():
        for spec, tags in images:
            blobs = spec.layer_blobs()
            yield spec.config(blobs), blobs, tags

    with tarfile.open(path, "w") as tar:
        _docker_save(tar, built())
        for m in extra_members:
            _add(tar, m.name, m.data)
    return Path(path)


def raw_docker_archive(images: list[tuple[bytes, list[bytes], list[str] | None]]) -> bytes:
    """A docker-archive from exact bytes: (config, stored layer blobs, RepoTags) per image;
    blobs shared between images are written once. For tampered and multi-image archives."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _docker_save(tar, images)
    return buf.getvalue()


def _docker_save(tar: tarfile.TarFile, images) -> None:
    """The `docker save` layout into ``tar``: per image (config bytes, layers as bytes or tar
    files on disk, RepoTags); a layer or config two images share is written once, manifest.json
    last. Layers are named by the digest of their bytes as given."""
    written: set[str] = set()
    manifest = []

    def put(name: str, data: bytes | Path) -> None:
        if name in written:
            return
        written.add(name)
        if isinstance(data, Path):
            tar.add(data, arcname=name)
        else:
            _add(tar, name, data)

    for config, blobs, tags in images:
        names = []
        for blob in blobs:
            names.append(f"{layer_digest(blob).split(':')[1]}/layer.tar")
            put(names[-1], blob)
        config_name = hashlib.sha256(config).hexdigest() + ".json"
        put(config_name, config)
        manifest.append({"Config": config_name, "RepoTags": tags, "Layers": names})
    put("manifest.json", json.dumps(manifest).encode())


def image_id(spec: ImageSpec) -> str:
    return sha256(spec.config(spec.layer_blobs()))


def write_oci_layout(target: str | os.PathLike, specs: list[ImageSpec], ref_name: str = "",
                     attestation: bool = False, as_archive: bool = False,
                     compress: bool = True) -> Path:
    """An OCI image layout holding one image, or an index of several platforms (plus an
    attestation manifest like buildx writes, when asked), as a directory or a tar."""
    blobs: dict[str, bytes] = {}

    def put(data: bytes) -> str:
        digest = sha256(data)
        blobs[digest] = data
        return digest

    manifests = []
    for spec in specs:
        layers = spec.layer_blobs()
        config = spec.config(layers)
        layer_descs = []
        for blob in layers:
            stored = gzip.compress(blob, mtime=0) if compress else blob
            layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress else ""),
                                "digest": put(stored), "size": len(stored)})
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": put(config), "size": len(config)},
                               "layers": layer_descs}).encode()
        platform = {"os": spec.os, "architecture": spec.architecture}
        if spec.variant:
            platform["variant"] = spec.variant
        manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "digest": put(manifest), "size": len(manifest), "platform": platform})
    if attestation:
        att_config = b"{}"
        att = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                     "digest": put(att_config), "size": 2}, "layers": []}).encode()
        manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "digest": put(att), "size": len(att),
                          "platform": {"os": "unknown", "architecture": "unknown"},
                          "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                          "vnd.docker.reference.digest": manifests[0]["digest"]}})
    if len(manifests) == 1:
        top = manifests
    else:
        nested = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                             "manifests": manifests}).encode()
        top = [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": put(nested),
                "size": len(nested)}]
    if ref_name:
        for desc in top:
            desc["annotations"] = {"org.opencontainers.image.ref.name": ref_name}
    index = json.dumps({"schemaVersion": 2, "manifests": top}).encode()
    files = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}', "index.json": index}
    files.update({f"blobs/sha256/{d.split(':')[1]}": data for d, data in blobs.items()})
    target = Path(target)
    if as_archive:
        with tarfile.open(target, "w") as tar:
            for name, data in files.items():
                _add(tar, name, data)
    else:
        for name, data in files.items():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(data)
    return target


# -- the image shapes the tests certify -------------------------------------------------------


def dhi_like(operator: bytes | str | os.PathLike, *, tag_user: str = "65532:65532",
             extra_layers: list[list[Member]] = (), **overrides) -> ImageSpec:
    """Debian-minimal-like DHI layout: binary in /usr/local/bin, nonroot 65532, writable gops dir."""
    binary = operator if isinstance(operator, bytes) else Path(operator).read_bytes()
    base = [directory("etc"), NONROOT_PASSWD, NONROOT_GROUP, directory("tmp", 0o1777),
            directory("home"), directory("home/nonroot", 0o700, 65532, 65532),
            directory("home/gops", 0o700, 65532, 65532),
            directory("run"), directory("run/cilium", 0o700, 65532, 65532),
            file("etc/ssl/certs/ca-certificates.crt", b"# certs\n")]
    app = [directory("usr"), directory("usr/local"), directory("usr/local/bin"),
           exe(f"usr/local/bin/{OPERATOR}", binary)]
    fields_ = dict(layers=[base, app, *extra_layers],
                   entrypoint=[f"/usr/local/bin/{OPERATOR}"], user=tag_user,
                   env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "GOPS_CONFIG_DIR=/home/gops"])
    fields_.update(overrides)
    return ImageSpec(**fields_)


def upstream_like(operator: bytes | str | os.PathLike, **overrides) -> ImageSpec:
    """quay.io/cilium/operator-generic: scratch, binary in /usr/bin, CMD only, root."""
    binary = operator if isinstance(operator, bytes) else Path(operator).read_bytes()
    layers = [[file("etc/ssl/certs/ca-certificates.crt", b"# certs\n"), file("LICENSE.all", b"Apache-2.0\n")],
              [exe("bin/gops", b"\x7fELF gops")],
              [directory("usr"), directory("usr/bin"), exe(f"usr/bin/{OPERATOR}", binary)]]
    fields_ = dict(layers=layers, cmd=["/usr/bin/cilium-${OPERATOR_VARIANT}"],
                   env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "GOPS_CONFIG_DIR=/"])
    fields_.update(overrides)
    return ImageSpec(**fields_)


def dev_like(operator: bytes | str | os.PathLike, **overrides) -> ImageSpec:
    """The -dev variant: a busybox shell, dpkg/apt, root (its gops directory in /tmp: root
    without capabilities may not write the 65532-owned /home/gops)."""
    overrides.setdefault("env", ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                 "GOPS_CONFIG_DIR=/tmp/gops"])
    spec = dhi_like(operator, tag_user="", **overrides)
    shell = [directory("bin"), host_file("bin/busybox", BUSYBOX), symlink("bin/sh", "busybox"),
             directory("usr/bin"), exe("usr/bin/dpkg"), exe("usr/bin/apt-get"), symlink("usr/bin/apt", "apt-get"),
             file("var/lib/dpkg/status", b"Package: base-files\n")]
    spec.layers = spec.layers + [shell]
    return spec


def busybox_applets() -> list[str]:
    """Every applet of Debian's busybox-static (`busybox --list`): ~270 names."""
    import subprocess

    return subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()


def busybox_like(operator: bytes | str | os.PathLike, **overrides) -> ImageSpec:
    """An operator on the official busybox image's layout: /bin/busybox and a hard link in /bin
    for each of its ~270 applets (sh, ash, ls, yes, init, ...), running as root."""
    applets = [a for a in busybox_applets() if a != "busybox"]
    shell = [directory("bin"), host_file("bin/busybox", BUSYBOX), *(hardlink(f"bin/{a}", "bin/busybox", 0o755) for a in applets)]
    overrides.setdefault("env", ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                 "GOPS_CONFIG_DIR=/tmp/gops"])
    spec = dhi_like(operator, tag_user="", **overrides)
    spec.layers = [shell] + spec.layers
    return spec
