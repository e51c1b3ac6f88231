"""What is expected of an image: profiles (dhi, chainguard, upstream, or a file) and variants."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

OPERATOR_NAME = "cilium-operator-generic"

# Flags every operator release since 1.14 lists in --help (REFERENCE.md; --enable-gops is 1.18+).
STABLE_HELP_FLAGS = (
    "--cluster-pool-ipv4-cidr", "--config-dir", "--debug", "--gops-port", "--help",
    "--identity-allocation-mode", "--ipam", "--k8s-namespace", "--leader-election-lease-duration",
    "--operator-api-serve-addr", "--operator-prometheus-serve-addr", "--version",
)

# What the chart's cilium-config ConfigMap gives the operator for cluster-pool IPAM, trimmed to
# the options the operator reads (operator-starts writes one file per option under --config-dir).
DEFAULT_OPERATOR_CONFIG = {
    "cluster-pool-ipv4-cidr": "10.0.0.0/8",
    "enable-ipv4": "true",
    "enable-ipv6": "false",
    "ipam": "cluster-pool",
    "identity-allocation-mode": "crd",
}


class ProfileError(ValueError):
    """A profile name, file or override that cannot be used."""


@dataclass(frozen=True)
class Profile:
    name: str
    entrypoint: tuple[str, ...]  # () means: the image must not set an ENTRYPOINT
    binary: str  # absolute path of the operator binary inside the image
    uid: int | None = None  # expected runtime UID (None: any non-root UID)
    gid: int | None = None
    help_flags: tuple[str, ...] = STABLE_HELP_FLAGS
    operator_config: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_OPERATOR_CONFIG))
    operator_args: tuple[str, ...] = ()

    @property
    def uses_cmd_only(self) -> bool:
        """The upstream layout: no ENTRYPOINT, the chart's `command:` runs the binary."""
        return not self.entrypoint


BUILTIN_PROFILES: dict[str, Profile] = {
    "dhi": Profile("dhi", (f"/usr/local/bin/{OPERATOR_NAME}",), f"/usr/local/bin/{OPERATOR_NAME}",
                   uid=65532, gid=65532),
    "chainguard": Profile("chainguard", (f"/usr/bin/{OPERATOR_NAME}",), f"/usr/bin/{OPERATOR_NAME}",
                          uid=65532),
    "upstream": Profile("upstream", (), f"/usr/bin/{OPERATOR_NAME}"),
}

_KEYS = {f.name for f in fields(Profile)}


def load_profile(spec: str, overrides: list[str] | None = None, shown: str = "") -> Profile:
    """``spec`` is a built-in name or a TOML/YAML file; ``overrides`` are KEY=VALUE strings;
    ``shown`` is how errors name the setting (``DHI_PROFILE='x' (environment variable)``)."""
    if spec in BUILTIN_PROFILES:
        profile = BUILTIN_PROFILES[spec]
    elif os.path.isfile(spec):
        profile = _from_file(spec)
    else:
        raise ProfileError(f"{shown or f'--dhi-profile={spec!r}'}: not one of "
                           f"{', '.join(BUILTIN_PROFILES)} and no such file")
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ProfileError(f"--dhi-expect {item!r}: expected KEY=VALUE")
        profile = _with(profile, key.strip().replace("-", "_"), _parse_cli_value(value), f"--dhi-expect {item!r}")
    return profile


def _from_file(path: str) -> Profile:
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        if path.endswith(".toml"):
            try:
                import tomllib
            except ImportError:  # Python 3.10
                import tomli as tomllib
            data = tomllib.loads(raw.decode())
        else:
            import yaml

            data = yaml.safe_load(raw) or {}
    except Exception as exc:
        raise ProfileError(f"profile {path}: cannot parse ({exc})") from None
    if not isinstance(data, dict):
        raise ProfileError(f"profile {path}: top level must be a table/mapping")
    base_name = data.pop("extends", "dhi")
    if base_name not in BUILTIN_PROFILES:
        raise ProfileError(f"profile {path}: extends={base_name!r} is not a built-in profile")
    profile = replace(BUILTIN_PROFILES[base_name], name=os.path.basename(path))
    for key, value in data.items():
        profile = _with(profile, key.replace("-", "_"), value, f"{path}: {key}")
    return profile


def _parse_cli_value(value: str) -> Any:
    value = value.strip()
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            raise ProfileError(f"--dhi-expect value {value!r} is not valid JSON") from None
    return value


def _with(profile: Profile, key: str, value: Any, where: str) -> Profile:
    if key not in _KEYS or key == "name":
        raise ProfileError(f"{where}: unknown profile key {key!r} (known: {', '.join(sorted(_KEYS - {'name'}))})")
    if key in ("uid", "gid"):
        try:
            value = None if value in (None, "", "none", "any") else int(value)
        except (TypeError, ValueError):
            raise ProfileError(f"{where}: {key} must be a number such as 65532, or none for no "
                               f"expectation") from None
        if value is not None and value < 0:
            raise ProfileError(f"{where}: {key} must not be negative")
        return replace(profile, **{key: value})
    try:
        if key in ("entrypoint", "help_flags", "operator_args"):
            if isinstance(value, str):
                value = [value] if value else []
            value = tuple(str(v) for v in value)
        elif key == "operator_config":
            if not isinstance(value, dict):
                raise TypeError("a mapping of option -> value")
            value = {str(k): _config_value(v) for k, v in value.items()}
        else:
            value = str(value)
    except (TypeError, ValueError) as exc:
        raise ProfileError(f"{where}: bad value for {key}: {exc}") from None
    return replace(profile, **{key: value})


def _config_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- variants ---------------------------------------------------------------------------------

DEV_LABELS = ("com.docker.dhi.shell", "com.docker.dhi.package-manager")
_ABSENT = {"", "none", "false", "no", "0"}


def decide_variant(setting: str, tags: list[str], labels: dict[str, str]) -> tuple[str, str]:
    """``(variant, why)``. ``auto`` reads a ``-dev`` tag suffix or DHI labels that declare a
    shell or package manager; anything else is the runtime variant."""
    if setting in ("runtime", "dev"):
        return setting, f"--dhi-variant={setting}"
    for tag in tags:
        if tag == "dev" or tag.endswith("-dev"):
            return "dev", f"tag {tag!r} ends in -dev"
    for label in DEV_LABELS:
        value = labels.get(label)
        if value is not None and value.strip().lower() not in _ABSENT:
            return "dev", f"label {label}={value!r}"
    return "runtime", "no -dev tag and no DHI label declaring a shell or package manager"


@dataclass(frozen=True, repr=False)
class Expectations:
    """Everything a check compares against, for one image."""

    profile: Profile
    variant: str  # runtime | dev
    variant_reason: str

    @property
    def dev(self) -> bool:
        return self.variant == "dev"

    def __repr__(self) -> str:
        return f"<Expectations profile={self.profile.name} variant={self.variant}>"
