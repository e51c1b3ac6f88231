"""The image config read the way Docker reads it, or refused with Docker's reason.

``docker load`` decodes the config with Go's ``encoding/json`` into moby's ``image.Image``: keys
match fields case-insensitively, a repeated key decodes again into the same value (objects
merge), unknown keys are ignored, ``null`` leaves a field as it is, and a value of the wrong
type fails the load with ``json: cannot unmarshal <kind> into Go struct field <path> of type
<type>`` — the first such error, unless a field's own decoder (Entrypoint/Cmd/Shell, which take
a string as a one-element list; ``created``, an RFC 3339 time) failed, which stops at once.
Then it refuses a config with no ``rootfs``, an OS other than linux, more history entries with
layers than diff_ids, more than 125 layers. :func:`decode_image_config` does all of that and
returns plain values (lists, dicts, strings) under Go's field names."""

from __future__ import annotations

import json
import re

MAX_LAYERS = 125  # moby's layer store: "max depth exceeded" beyond this


class ConfigError(ValueError):
    """Docker would refuse this config; the message is its reason, in one sentence."""


# -- a Go-flavoured JSON decoder ------------------------------------------------------------------


class _Obj(list):
    """A JSON object as its (key, value) pairs in document order (Go sees repeated keys)."""


class _Num(str):
    """A JSON number as its literal text (Go decides per target type what fits)."""


def _kind(value) -> str:
    if isinstance(value, _Obj):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, _Num):
        return "number"
    return "string"


def _reject_constant(name: str):
    raise ConfigError(f"invalid character {name[0]!r} looking for beginning of value")


def parse_json(data: bytes):
    """JSON as Go's decoder sees it: invalid UTF-8 replaced, NaN/Infinity refused, objects as
    ordered pairs, numbers as their text."""
    text = data.decode("utf-8", "replace")
    return json.loads(text, object_pairs_hook=_Obj, parse_int=_Num, parse_float=_Num,
                      parse_constant=_reject_constant)


class _Immediate(Exception):
    """An error from a field's own UnmarshalJSON: Go stops decoding at once."""


# Schema: "string", "bool", "int64", "int", "time", "strslice", "any",
# ("slice", elem, gotype), ("map", elem, gotype), ("struct"|"ptr", GoName, gotype, {json name: schema}).
_HEALTH = ("ptr", "HealthConfig", "container.HealthConfig", {
    "Test": ("slice", "string", "[]string"), "Interval": "int64", "Timeout": "int64",
    "StartPeriod": "int64", "Retries": "int"})
_CONTAINER_FIELDS = {
    "Hostname": "string", "Domainname": "string", "User": "string", "AttachStdin": "bool",
    "AttachStdout": "bool", "AttachStderr": "bool",
    "ExposedPorts": ("map", ("struct", "", "struct {}", {}), "nat.PortSet"),
    "Tty": "bool", "OpenStdin": "bool", "StdinOnce": "bool",
    "Env": ("slice", "string", "[]string"), "Cmd": "strslice", "Healthcheck": _HEALTH,
    "ArgsEscaped": "bool", "Image": "string",
    "Volumes": ("map", ("struct", "", "struct {}", {}), "map[string]struct {}"),
    "WorkingDir": "string", "Entrypoint": "strslice", "NetworkDisabled": "bool",
    "MacAddress": "string", "OnBuild": ("slice", "string", "[]string"),
    "Labels": ("map", "string", "map[string]string"), "StopSignal": "string",
    "StopTimeout": "int", "Shell": "strslice"}
_HISTORY = ("struct", "History", "image.History", {
    "created": "time", "author": "string", "created_by": "string", "comment": "string",
    "empty_layer": "bool"})
IMAGE_SCHEMA = ("struct", "Image", "image.Image", {
    "id": "string", "parent": "string", "comment": "string", "created": "time",
    "container": "string",
    "container_config": ("struct", "Config", "container.Config", _CONTAINER_FIELDS),
    "docker_version": "string", "author": "string",
    "config": ("ptr", "Config", "container.Config", _CONTAINER_FIELDS),
    "architecture": "string", "variant": "string", "os": "string", "Size": "int64",
    "rootfs": ("ptr", "RootFS", "image.RootFS", {
        "type": "string", "diff_ids": ("slice", "string", "[]layer.DiffID")}),
    "history": ("slice", _HISTORY, "[]image.History"),
    "os.version": "string", "os.features": ("slice", "string", "[]string")})

_GO_TYPE = {"string": "string", "bool": "bool", "int64": "int64", "int": "int",
            "strslice": "strslice.StrSlice", "time": "time.Time"}
_ZERO = {"string": "", "bool": False, "int64": 0, "int": 0}
_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_INT = re.compile(r"^-?(0|[1-9]\d*)$")


def _fold(key: str) -> str:
    """Go's case-insensitive field match (for ASCII field names): K (Kelvin) and ſ fold too."""
    return key.replace("\u212a", "k").replace("\u017f", "s").lower()


class _Decoder:
    def __init__(self) -> None:
        self.saved: str | None = None

    def _type_error(self, kind: str, struct: str, field: str, gotype: str) -> None:
        if self.saved is None:
            where = f"Go struct field {struct}.{field}" if struct else "Go value"
            self.saved = f"json: cannot unmarshal {kind} into {where} of type {gotype}"

    def decode(self, value, schema, current, struct: str, field: str):
        """Decode ``value`` into a target holding ``current``; returns the new target value."""
        if isinstance(schema, str):
            return self._scalar(value, schema, current, struct, field)
        tag = schema[0]
        if tag in ("struct", "ptr"):
            _, name, gotype, fields = schema
            if value is None:
                return None if tag == "ptr" else current
            if not isinstance(value, _Obj):
                self._type_error(_kind(value), struct, field, gotype)
                return current
            target = dict(current) if isinstance(current, dict) else {}
            exact = {k: k for k in fields}
            folded = {_fold(k): k for k in fields}
            for key, item in value:
                known = exact.get(key) or folded.get(_fold(key))
                if known is None:
                    continue
                path = f"{field}.{known}" if field else known
                target[known] = self.decode(item, fields[known], target.get(known), name, path)
            return target
        _, elem, gotype = schema
        if value is None:
            return None
        if tag == "slice":
            if not isinstance(value, list) or isinstance(value, _Obj):
                self._type_error(_kind(value), struct, field, gotype)
                return current
            return [self.decode(item, elem, None, struct, field) for item in value]
        # map
        if not isinstance(value, _Obj):
            self._type_error(_kind(value), struct, field, gotype)
            return current
        target = dict(current) if isinstance(current, dict) else {}
        for key, item in value:
            target[key] = self.decode(item, elem, target.get(key), struct, field)
        return target

    def _scalar(self, value, kind: str, current, struct: str, field: str):
        if kind == "any":
            return value
        if kind == "strslice":
            if value is None:
                return None
            if isinstance(value, list) and not isinstance(value, _Obj) and \
                    all(v is None or (isinstance(v, str) and not isinstance(v, _Num)) for v in value):
                return ["" if v is None else str(v) for v in value]
            if isinstance(value, str) and not isinstance(value, _Num):
                return [str(value)]
            raise _Immediate(f"json: cannot unmarshal {_kind(value)} into Go struct field "
                             f"{struct}.{field} of type string")
        if kind == "time":
            if value is None:
                return current
            literal = json.dumps(value) if not isinstance(value, (_Obj, list, _Num)) else (
                str(value) if isinstance(value, _Num) else _kind(value))
            if not isinstance(value, str) or isinstance(value, _Num) or not _valid_time(value):
                raise _Immediate(f"parsing time {literal} as \"2006-01-02T15:04:05Z07:00\": "
                                 f"{field} must be an RFC 3339 time")
            return str(value)
        if value is None:
            return current if current is not None else _ZERO[kind]
        if kind == "string":
            if isinstance(value, str) and not isinstance(value, _Num):
                return str(value)
        elif kind == "bool":
            if isinstance(value, bool):
                return value
        elif isinstance(value, _Num):  # int64, int
            if _INT.match(value) and -(1 << 63) <= int(value) < (1 << 63):
                return int(value)
            self._type_error(f"number {value}", struct, field, _GO_TYPE[kind])
            return current if current is not None else 0
        self._type_error(_kind(value), struct, field, _GO_TYPE[kind])
        return current if current is not None else _ZERO[kind]


def _valid_time(text: str) -> bool:
    match = _RFC3339.match(text)
    if not match:
        return False
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    days = [31, 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28, 31, 30, 31,
            30, 31, 31, 30, 31, 30, 31]
    zone = match.group(8)
    zone_ok = zone == "Z" or (int(zone[1:3]) < 24 and int(zone[4:6]) < 60)
    return 1 <= month <= 12 and 1 <= day <= days[month - 1] and hour < 24 and minute < 60 \
        and second < 60 and zone_ok


def go_decode(data: bytes, schema, what: str) -> dict:
    """Decode JSON bytes into ``schema`` like Go's json.Unmarshal, or raise ConfigError."""
    try:
        value = parse_json(data)
    except ValueError as exc:  # ConfigError included
        raise ConfigError(f"{what} is not valid JSON ({exc})") from None
    decoder = _Decoder()
    try:
        result = decoder.decode(value, schema, None, "", "")
    except _Immediate as exc:
        raise ConfigError(f"{what}: {exc}") from None
    if decoder.saved:
        raise ConfigError(f"{what}: {decoder.saved}")
    if result is None:
        raise ConfigError(f"{what}: json: cannot unmarshal null into Go value of type {schema[2]}")
    return result


def decode_image_config(data: bytes, layer_count: int, what: str = "image config") -> dict:
    """The config as ``docker load`` reads it, with its checks; ConfigError otherwise."""
    config = go_decode(data, IMAGE_SCHEMA, what)
    rootfs = config.get("rootfs")
    if rootfs is None:
        raise ConfigError(f"{what}: invalid image JSON, no RootFS key (docker load refuses it)")
    os_name = config.get("os") or ""
    if os_name == "windows":
        raise ConfigError(f"{what}: cannot load windows image on linux")
    if os_name not in ("", "linux"):
        raise ConfigError(f"{what}: {os_name!r}: unknown operating system or architecture: "
                          "invalid argument (docker load refuses it)")
    diff_ids = rootfs.get("diff_ids") or []
    if layer_count != len(diff_ids):
        raise ConfigError(f"{what}: invalid manifest, layers length mismatch: the config lists "
                          f"{len(diff_ids)} diff_ids, the manifest {layer_count} layers")
    if len(diff_ids) > MAX_LAYERS:
        raise ConfigError(f"{what}: {len(diff_ids)} layers: max depth exceeded (Docker's layer "
                          f"store holds at most {MAX_LAYERS})")
    non_empty = sum(1 for h in config.get("history") or [] if not (h or {}).get("empty_layer"))
    if non_empty > len(diff_ids):
        raise ConfigError(f"{what}: too many non-empty layers in History section ({non_empty} "
                          f"for {len(diff_ids)} diff_ids; docker load refuses it)")
    return config


# The other JSON documents, as the Go types that read them: moby's docker-archive manifest,
# and the OCI image-spec index and manifest (what containerd and Docker >= 23 decode).
_DESCRIPTOR_FIELDS = {
    "mediaType": "string", "digest": "string", "size": "int64",
    "urls": ("slice", "string", "[]string"), "annotations": ("map", "string", "map[string]string"),
    "platform": ("ptr", "Platform", "v1.Platform", {
        "architecture": "string", "os": "string", "os.version": "string",
        "os.features": ("slice", "string", "[]string"), "variant": "string"})}
DESCRIPTOR = ("struct", "Descriptor", "v1.Descriptor", _DESCRIPTOR_FIELDS)
DOCKER_MANIFEST_SCHEMA = ("slice", ("struct", "manifestItem", "tarexport.manifestItem", {
    "Config": "string", "RepoTags": ("slice", "string", "[]string"),
    "Layers": ("slice", "string", "[]string"), "Parent": "string",
    "LayerSources": ("map", ("struct", "Descriptor", "distribution.Descriptor", _DESCRIPTOR_FIELDS),
                     "map[layer.DiffID]distribution.Descriptor")}), "[]tarexport.manifestItem")
OCI_INDEX_SCHEMA = ("struct", "Index", "v1.Index", {
    "schemaVersion": "int", "mediaType": "string",
    "manifests": ("slice", DESCRIPTOR, "[]v1.Descriptor"),
    "annotations": ("map", "string", "map[string]string")})
OCI_MANIFEST_SCHEMA = ("struct", "Manifest", "v1.Manifest", {
    "schemaVersion": "int", "mediaType": "string", "config": DESCRIPTOR,
    "layers": ("slice", DESCRIPTOR, "[]v1.Descriptor"),
    "annotations": ("map", "string", "map[string]string")})
