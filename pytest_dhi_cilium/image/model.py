"""The image model the checks read: config + merged filesystem + the few file contents needed."""

from __future__ import annotations

from dataclasses import dataclass, field

from .layers import (Entry, FileSystem, LayerFormatError, normalize_member_name, open_layer_tar,
                     read_layer_headers)
from .sources import Platform, RawImage, SourceError

# Small files whose content the checks need, captured during the single pass over the layers.
CAPTURED_FILES = frozenset({"/etc/passwd", "/etc/group"})
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
        c = config.get("config") or config.get("Config") or {}
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
    digest: str  # manifest digest when the transport has one, else the config digest
    config_digest: str
    platform: Platform
    config: ImageConfig
    layers: list[Layer]
    fs: FileSystem
    files: dict[str, bytes] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)

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


def _read_member(raw: RawImage, entry: Entry, limit: int = 1 << 20) -> bytes | None:
    wanted = entry.link if entry.hardlink else entry.path
    with raw.layers[entry.layer].open() as stream, open_layer_tar(stream) as tar:
        for member in tar:
            if normalize_member_name(member.name) == wanted and member.isreg():
                if member.size > limit:
                    return None
                data = tar.extractfile(member)
                return data.read() if data else None
    return None


def build_image(ref: str, raw: RawImage) -> Image:
    """Stream every layer once (headers, plus the captured small files) into the model."""
    fs = FileSystem()
    captured: dict[str, tuple[int, bytes]] = {}
    for index, blob in enumerate(raw.layers):
        try:
            with blob.open() as stream:
                read_layer_headers(index, stream, fs, set(CAPTURED_FILES), captured)
        except LayerFormatError as exc:
            raise SourceError(f"{ref}: {exc}") from None
    files = {}
    for path, (layer, data) in captured.items():
        entry = fs.entry(path)
        # Keep a capture only if that very copy is what the merged view shows.
        if entry is not None and entry.kind == "file" and not entry.hardlink and entry.layer == layer:
            files[path] = data
    for path in CAPTURED_FILES - files.keys():
        # Rare: /etc/passwd reached through a link. Fetch the target from its layer.
        res = fs.resolve(path)
        if res.found and res.entry.kind == "file":
            data = _read_member(raw, res.entry)
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
    )
