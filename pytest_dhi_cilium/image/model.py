"""The image model the checks read: config + merged filesystem + the few file contents needed.

:func:`build_image` is where every transport's layers are read and verified, once, streaming:
each blob hashed against its descriptor (digest and size), decompressed by its magic bytes,
its uncompressed stream hashed against the config's diff_id, its tar applied the way Docker
applies it. The image records what was verified, for the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, TypeVar

from .layers import CAPTURE_FILE_LIMIT, CAPTURED_FILES, Entry, FileSystem, read_file, read_layer
from .layerstream import LayerError, LayerStream, Limits, human
from .sources import Platform, RawImage, SourceError, short_error
from .sources.base import reader_limits

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # what Docker sets


@dataclass(frozen=True)
class ImageConfig:
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    user: str
    env: dict[str, str]
    labels: dict[str, str]
    working_dir: str
    exposed_ports: tuple[str, ...]

    @classmethod
    def from_image_config(cls, config: dict) -> "ImageConfig":
        """From the config as decoded by :func:`~.config.decode_image_config` (Go's field
        names; Entrypoint/Cmd already lists, as Docker reads a string there)."""
        c = config.get("config") or {}
        env: dict[str, str] = {}
        for item in c.get("Env") or []:
            key, _, value = item.partition("=")
            env[key] = value
        return cls(
            entrypoint=tuple(c["Entrypoint"]) if c.get("Entrypoint") is not None else None,
            cmd=tuple(c["Cmd"]) if c.get("Cmd") is not None else None,
            user=c.get("User") or "",
            env=env,
            labels=dict(c.get("Labels") or {}),
            working_dir=c.get("WorkingDir") or "",
            exposed_ports=tuple(sorted((c.get("ExposedPorts") or {}).keys())),
        )

    @property
    def path_dirs(self) -> list[str]:
        return [d for d in self.env.get("PATH", DEFAULT_PATH).split(":") if d]


@dataclass(frozen=True)
class Layer:
    index: int  # 0-based
    diff_id: str


@dataclass(repr=False)
class Image:
    ref: str
    digest: str  # the verified manifest digest when the input has one, else the config digest
    config_digest: str
    platform: Platform
    config: ImageConfig
    layers: list[Layer]
    fs: FileSystem
    files: dict[str, bytes] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    # What was checked on the bytes judged: {"manifest": …, "config": …, "layers": [{"digest",
    # "size", "diff_id", "compression", "entries"}, …]} — the report's `verified`.
    verified: dict = field(default_factory=dict)
    repo_digest: str = ""  # a daemon image's registry digest: the engine's record, not verified here

    @property
    def warnings(self) -> list[str]:
        return self.fs.warnings

    def __repr__(self) -> str:  # short: pytest prints fixture values next to failures
        return f"<Image {self.ref} {self.platform} {short_digest(self.digest)}>"

    def where(self, entry: Entry) -> str:
        """Human-readable provenance of an entry, e.g. ``layer 2 of 3, sha256:ab12cd34ef56``."""
        if entry.layer < 0:
            return "implicit root"
        layer = self.layers[entry.layer]
        return f"layer {entry.layer + 1} of {len(self.layers)}, {short_digest(layer.diff_id)}"

    def describe(self, entry: Entry) -> str:
        """``/bin/busybox (file 0755 0:0, layer 2 of 3, sha256:…)`` — enough to act on."""
        return f"{entry.path} ({entry.kind} {entry.mode:04o} {entry.uid}:{entry.gid}, {self.where(entry)})"


def short_digest(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}" if hexpart else digest


def build_image(ref: str, raw: RawImage, limits: Limits | None = None) -> Image:
    """Read every layer once, streaming and verified, into the model. Any failure is one
    SourceError sentence naming the layer."""
    limits = limits or reader_limits()
    fs = FileSystem(CAPTURED_FILES)
    layers = []
    budget = limits.image_bytes
    for index in range(len(raw.layers)):
        record, layer = _read_blob(ref, raw, index, limits, budget,
                                   lambda stream, i=index: (read_layer(i, stream, fs, limits), stream))
        layers.append(record)
        budget -= layer.inflated
    files = {}
    for path in CAPTURED_FILES:
        data = fs.read(path)
        if data is None and (res := fs.resolve(path)).found and res.entry.kind == "file":
            data = _read_again(ref, raw, fs, path, res.entry, limits)
        if data is not None:
            files[path] = data
    return Image(
        ref=ref,
        digest=raw.digest,
        config_digest=raw.config_digest,
        platform=raw.platform,
        config=ImageConfig.from_image_config(raw.config),
        layers=[Layer(i, b.diff_id) for i, b in enumerate(raw.layers)],
        fs=fs,
        files=files,
        names=raw.names,
        verified={**raw.verified, "layers": layers},
        repo_digest=raw.repo_digest,
    )


_T = TypeVar("_T")


def _read_blob(ref: str, raw: RawImage, index: int, limits: Limits, budget: int | None,
               read: Callable[[LayerStream], _T]) -> _T:
    """``read`` one layer's verified stream; any failure is one SourceError naming the layer."""
    blob = raw.layers[index]
    what = f"{ref}: layer {index + 1} of {len(raw.layers)} ({short_digest(blob.digest or blob.diff_id)})"
    try:
        with blob.open() as stream:
            return read(LayerStream(stream, digest=blob.digest, size=blob.size, diff_id=blob.diff_id,
                                    limits=limits, budget=budget))
    except LayerError as exc:
        raise SourceError(f"{what}: {exc}") from None
    except OSError as exc:
        raise SourceError(f"{what}: cannot be read ({short_error(exc)})") from None


def _read_again(ref: str, raw: RawImage, fs: FileSystem, path: str, entry: Entry,
                limits: Limits) -> bytes | None:
    """A captured path the single pass did not keep (a link to a file of another name, or
    past the capture budget): its layer read again, verified again. Rare; one small file."""
    if entry.size > CAPTURE_FILE_LIMIT:
        fs.warnings.append(f"{path} ({entry.path}, {entry.size} bytes) was not read: larger than the "
                           f"{human(CAPTURE_FILE_LIMIT)} the reader keeps of a file")
        return None
    data = _read_blob(ref, raw, entry.layer, limits, None,
                      lambda stream: read_file(entry.layer, stream, entry, limits))
    if data is None:
        fs.warnings.append(f"{path} ({entry.path}) was not read: layer {entry.layer + 1} of "
                           f"{len(raw.layers)} does not hold it there when read again")
    return data
