"""Command-line options, ini keys and environment variables, turned into one ``Settings``.

Precedence for every option that has all three: command line > environment > ini > default.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import pytest

from .image.reference import Reference, ReferenceError, parse_reference
from .settings import Profile, ProfileError, load_profile

TIERS = ("image", "runtime", "cluster")

# (option, dest, env var, ini key, default, help). Options with an env var and ini key are the
# "main" ones users set once per project or CI job.
_MAIN = [
    ("--dhi-image", "dhi_images", "DHI_IMAGE", "dhi_images", None,
     "image to certify, repeatable: NAME[:TAG][@DIGEST] (Docker daemon), docker://REGISTRY/REPO:TAG "
     "(a registry, every platform), docker-archive:PATH, oci-archive:PATH or oci:DIR (daemonless). "
     "Env DHI_IMAGE takes a comma-separated list."),
    ("--dhi-pull", "dhi_pull", "DHI_PULL", "dhi_pull", "missing",
     "daemon references: pull when missing (default), always, or never"),
    ("--dhi-profile", "dhi_profile", "DHI_PROFILE", "dhi_profile", "dhi",
     "expectations: dhi (default), chainguard, upstream, or a TOML/YAML profile file"),
    ("--dhi-variant", "dhi_variant", "DHI_VARIANT", "dhi_variant", "auto",
     "auto (default: -dev tags / DHI labels mean dev), runtime, or dev"),
    ("--dhi-platform", "dhi_platform", "DHI_PLATFORM", "dhi_platform", "all",
     "multi-platform inputs: comma-separated os/arch[/variant] list, or all (default)"),
    ("--dhi-tier", "dhi_tier", "DHI_TIER", "dhi_tier", "auto",
     "comma-separated tiers among image, runtime, cluster; auto (default) = image, plus runtime "
     "for Docker daemon references"),
    ("--dhi-report", "dhi_report", "DHI_REPORT", "dhi_report", None,
     "write the JSON report (pytest-dhi-cilium/report/v1) to this path"),
    ("--dhi-report-md", "dhi_report_md", "DHI_REPORT_MD", "dhi_report_md", None,
     "write the Markdown summary to this path"),
    ("--dhi-timeout", "dhi_timeout", "DHI_TIMEOUT", "dhi_timeout", "60",
     "runtime tier: seconds one container may run before it is killed and the check fails"),
]


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("dhi-cilium", "hardened Cilium operator image conformance")
    for opt, dest, env, ini, default, help_text in _MAIN:
        kwargs = {"action": "append"} if dest == "dhi_images" else {}
        group.addoption(opt, dest=dest, default=None, help=f"{help_text} [env {env}, ini {ini}]",
                        **kwargs)
        parser.addini(ini, help=help_text, type="linelist" if dest == "dhi_images" else "string",
                      default=[] if dest == "dhi_images" else "")
    group.addoption("--dhi-expect", dest="dhi_expect", action="append", default=[],
                    metavar="KEY=VALUE",
                    help="override one profile key, e.g. uid=1000 or entrypoint='[\"/op\"]'")
    group.addoption("--dhi-no-suite", dest="dhi_no_suite", action="store_true",
                    help="do not collect the built-in suite (only provide the dhi_* fixtures)")
    group.addoption("--dhi-insecure-registry", dest="dhi_insecure_registries", action="append",
                    default=[], metavar="HOST[:PORT]",
                    help="docker:// references: talk to this registry over plain HTTP or unverified "
                         "TLS, as Docker's insecure-registries does (loopback always may); repeatable")
    group.addoption("--dhi-reference-image", dest="dhi_reference_image", default=None,
                    help="runtime tier: the upstream image the hardened one replaces; their "
                         "--help flag sets and versions are compared (reference-flags)")
    group.addoption("--dhi-settle", dest="dhi_settle", default="15",
                    help="operator-starts: seconds the operator must stay up (default 15)")
    group.addoption("--dhi-operator-arg", dest="dhi_operator_args", action="append", default=[],
                    help="operator-starts: one more argument for the operator, repeatable")


def _value(config: pytest.Config, dest: str, env: str, ini: str, default):
    cli = config.getoption(dest)
    if cli not in (None, []):
        return cli
    if os.environ.get(env):
        return os.environ[env]
    ini_value = config.getini(ini)
    if ini_value not in ("", [], None):
        return ini_value
    return default


@dataclass(frozen=True)
class Settings:
    images: tuple[Reference, ...]
    pull: str
    profile: Profile
    variant: str
    platforms: tuple[str, ...] | None  # None: all
    tiers: tuple[str, ...] | None  # None: auto
    report: str | None
    report_md: str | None
    timeout: float
    reference_image: Reference | None = None
    settle: float = 15.0
    operator_args: tuple[str, ...] = field(default=())
    insecure_registries: tuple[str, ...] = field(default=())

    def tiers_for(self, ref: Reference) -> tuple[str, ...]:
        if self.tiers is not None:
            return self.tiers
        return ("image",) if ref.daemonless else ("image", "runtime")


def read_settings(config: pytest.Config) -> Settings | None:
    """Settings from the command line, or None when no --dhi-image was given (plugin idle).
    Every problem becomes a pytest.UsageError: one line, no traceback, exit code 4."""
    values = {dest: _value(config, dest, env, ini, default)
              for _, dest, env, ini, default, _ in _MAIN}
    images = values["dhi_images"]
    if isinstance(images, str):
        images = [i for i in images.replace(",", " ").split()]
    if not images:
        return None
    try:
        refs = tuple(parse_reference(i) for i in images)
        reference_image = (parse_reference(config.getoption("dhi_reference_image"))
                           if config.getoption("dhi_reference_image") else None)
        profile = load_profile(values["dhi_profile"], config.getoption("dhi_expect"))
    except (ReferenceError, ProfileError) as exc:
        raise pytest.UsageError(str(exc)) from None
    operator_args = tuple(config.getoption("dhi_operator_args") or ())
    if operator_args:
        from dataclasses import replace

        profile = replace(profile, operator_args=profile.operator_args + operator_args)
    pull = values["dhi_pull"]
    if pull not in ("missing", "always", "never"):
        raise pytest.UsageError(f"--dhi-pull={pull!r}: expected missing, always or never")
    variant = values["dhi_variant"]
    if variant not in ("auto", "runtime", "dev"):
        raise pytest.UsageError(f"--dhi-variant={variant!r}: expected auto, runtime or dev")
    tiers = _tiers(values["dhi_tier"])
    platforms = None if values["dhi_platform"] == "all" else tuple(
        p.strip() for p in values["dhi_platform"].split(",") if p.strip())
    if platforms:
        from .image.sources import Platform

        for p in platforms:
            try:
                Platform.parse(p)
            except ValueError as exc:
                raise pytest.UsageError(f"--dhi-platform: {exc}") from None
    timeout = _seconds("--dhi-timeout", values["dhi_timeout"])
    settle = _seconds("--dhi-settle", config.getoption("dhi_settle"))
    insecure = tuple(h.strip() for v in config.getoption("dhi_insecure_registries") or ()
                     for h in v.split(",") if h.strip())
    bad = [h for h in insecure if "/" in h or not h.replace(".", "").replace(":", "").replace("-", "").isalnum()]
    if bad:
        raise pytest.UsageError(f"--dhi-insecure-registry={bad[0]!r}: expected a registry HOST or HOST:PORT")
    return Settings(refs, pull, profile, variant, platforms, tiers, values["dhi_report"],
                    values["dhi_report_md"], timeout, reference_image, settle, operator_args, insecure)


def _seconds(option: str, value) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not math.isfinite(seconds) or seconds <= 0:
        raise pytest.UsageError(f"{option}={value!r}: expected a positive number of seconds")
    return seconds


def _tiers(value: str) -> tuple[str, ...] | None:
    if value == "auto":
        return None
    tiers = tuple(t.strip() for t in value.split(",") if t.strip())
    unknown = [t for t in tiers if t not in TIERS]
    if unknown or not tiers:
        raise pytest.UsageError(f"--dhi-tier={value!r}: tiers are {', '.join(TIERS)} (or auto)")
    return tiers
