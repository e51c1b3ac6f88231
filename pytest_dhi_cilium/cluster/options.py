"""Cluster-tier command-line options (pytest-kind's own options are reused, not redeclared),
read into one ``ClusterSettings``, and the prerequisite check that runs before any image work.

Imported by plugin.py's pytest_addoption in every pytest run: standard library and pytest only.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from typing import Callable

import pytest

DEFAULT_CHART = "cilium/cilium"
CILIUM_REPO = "https://helm.cilium.io"
DEFAULT_TIMEOUT = 600.0
DEFAULT_SETTLE = 30.0
DEFAULT_KIND_NAME = "pytest-kind"  # pytest-kind's --cluster-name default: the same name with or without it
EXTRA_HINT = "pip install 'pytest-dhi-cilium[cluster]'"


def add_cluster_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("dhi-cilium")
    group.addoption("--dhi-kubeconfig", dest="dhi_kubeconfig", default=None, metavar="PATH",
                    help="cluster tier: use this existing cluster instead of creating a kind cluster "
                         "(left as found: the Cilium release is uninstalled and what Cilium created is removed at the end)")
    group.addoption("--helm-bin", dest="helm_bin", default=None, metavar="PATH",
                    help="cluster tier: the helm binary (default: helm on PATH)")
    group.addoption("--dhi-cilium-chart", dest="dhi_cilium_chart", default=DEFAULT_CHART, metavar="CHART",
                    help=f"cluster tier: the Cilium chart (default {DEFAULT_CHART}, fetched from "
                         f"{CILIUM_REPO}; a path or oci:// reference is passed to helm as given)")
    group.addoption("--dhi-cilium-version", dest="dhi_cilium_version", default=None, metavar="VERSION",
                    help="cluster tier: chart version (default: the operator version in the image tag)")
    group.addoption("--dhi-helm-set", dest="dhi_helm_sets", action="append", default=[],
                    metavar="KEY=VALUE", help="cluster tier: one more helm --set, repeatable")
    group.addoption("--dhi-helm-values", dest="dhi_helm_values", action="append", default=[],
                    metavar="FILE", help="cluster tier: one more helm values file, repeatable")
    group.addoption("--dhi-upgrade-from", dest="dhi_upgrade_from", default=None, metavar="REF",
                    help="cluster tier: install this (upstream) operator image first, then helm "
                         "upgrade to the image under test (upgrade-from-upstream)")
    group.addoption("--dhi-cluster-timeout", dest="dhi_cluster_timeout", default=str(DEFAULT_TIMEOUT),
                    metavar="SECONDS", help="cluster tier: seconds each long step (create, load, install, wait) may "
                         f"take (default {DEFAULT_TIMEOUT:.0f})")
    group.addoption("--dhi-cluster-settle", dest="dhi_cluster_settle", default=str(DEFAULT_SETTLE),
                    metavar="SECONDS", help="cluster tier: seconds the operator pods must stay Ready without a restart "
                         f"once the rollout is complete (default {DEFAULT_SETTLE:.0f})")


@dataclass(frozen=True)
class ClusterSettings:
    byo_kubeconfig: str | None  # --dhi-kubeconfig: bring your own cluster
    cluster_name: str
    keep_cluster: bool
    kind_kubeconfig: str | None  # pytest-kind's --kubeconfig: where kind writes its kubeconfig
    kind_image: str | None
    kind_bin: str | None  # resolved paths (None: missing)
    kubectl_bin: str | None
    helm_bin: str | None
    chart: str
    version: str | None
    helm_sets: tuple[str, ...]
    helm_values: tuple[str, ...]
    upgrade_from: str | None
    timeout: float
    settle: float
    node_cli: str = "docker"  # the CLI of kind's node provider (docker exec into nodes)
    node_cli_bin: str | None = None

    @property
    def byo(self) -> bool:
        return self.byo_kubeconfig is not None


CLUSTER_KEY = pytest.StashKey[ClusterSettings]()


def _tool(explicit: str | None, name: str, which: Callable[[str], str | None]) -> str | None:
    if explicit:
        return explicit if os.path.isfile(explicit) and os.access(explicit, os.X_OK) else None
    return which(name)


def _seconds(value, option: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"{option}={value!r} is not a number of seconds") from None
    if seconds < 0:
        raise pytest.UsageError(f"{option}={value!r} must not be negative")
    return seconds


def read_cluster_settings(config: pytest.Config,
                          which: Callable[[str], str | None] = shutil.which) -> ClusterSettings:
    """Every value problem is a pytest.UsageError (one line, exit code 4)."""
    get = config.getoption
    sets = tuple(get("dhi_helm_sets") or ())
    for item in sets:
        if "=" not in item or not item.partition("=")[0].strip():
            raise pytest.UsageError(f"--dhi-helm-set {item!r}: expected KEY=VALUE")
    values = tuple(get("dhi_helm_values") or ())
    for path in values:
        if not os.path.isfile(path):
            raise pytest.UsageError(f"--dhi-helm-values {path!r}: no such file")
    byo = get("dhi_kubeconfig")
    if byo is not None and not os.path.isfile(byo):
        raise pytest.UsageError(f"--dhi-kubeconfig {byo!r}: no such file")
    upgrade_from = get("dhi_upgrade_from")
    if upgrade_from:
        from ..image.reference import DAEMON, ReferenceError, parse_reference

        try:
            if parse_reference(upgrade_from).transport != DAEMON:
                raise ReferenceError("an archive cannot be installed by helm")
        except ReferenceError as exc:
            raise pytest.UsageError(f"--dhi-upgrade-from={upgrade_from!r}: needs a registry "
                                    f"reference such as quay.io/cilium/operator-generic:v1.18.3 ({exc})") from None
    # pytest-kind's options exist only when it is installed; getoption's default covers that.
    provider = os.environ.get("KIND_EXPERIMENTAL_PROVIDER", "docker") or "docker"
    return ClusterSettings(
        byo_kubeconfig=byo,
        cluster_name=get("cluster_name", None) or DEFAULT_KIND_NAME,
        keep_cluster=bool(get("keep_cluster", False)),
        kind_kubeconfig=get("kubeconfig", None),
        kind_image=get("kind_image", None),
        kind_bin=_tool(get("kind_bin", None), "kind", which),
        kubectl_bin=_tool(get("kind_kubectl_bin", None), "kubectl", which),
        helm_bin=_tool(get("helm_bin"), "helm", which),
        chart=get("dhi_cilium_chart") or DEFAULT_CHART,
        version=get("dhi_cilium_version"),
        helm_sets=sets,
        helm_values=values,
        upgrade_from=upgrade_from,
        timeout=_seconds(get("dhi_cluster_timeout"), "--dhi-cluster-timeout"),
        settle=_seconds(get("dhi_cluster_settle"), "--dhi-cluster-settle"),
        node_cli=provider,
        node_cli_bin=which(provider),
    )


def missing_requirements(settings: ClusterSettings, config: pytest.Config | None = None,
                         find_spec: Callable = importlib.util.find_spec) -> list[str]:
    """What keeps the cluster tier from running, one entry per missing thing, each saying how to
    provide it. Nothing is imported or executed."""
    def given(option: str) -> bool:
        return bool(config is not None and config.getoption(option, None))

    missing = []
    packages = ["kubernetes"] + ([] if settings.byo else ["pytest_kind"])
    absent = [p.replace("_", "-") for p in packages if find_spec(p) is None]
    if absent:
        missing.append(f"Python package{'s' if len(absent) > 1 else ''} {', '.join(absent)} "
                       f"({EXTRA_HINT})")
    tools = [("helm", settings.helm_bin, "helm_bin", "--helm-bin")]
    if not settings.byo:
        tools += [("kind", settings.kind_bin, "kind_bin", "--kind-bin"),
                  ("kubectl", settings.kubectl_bin, "kind_kubectl_bin", "--kind-kubectl-bin")]
    for name, path, dest, option in tools:
        if path is None:
            # --kind-bin and --kind-kubectl-bin are pytest-kind's: only offered when they exist.
            offered = config is not None and hasattr(config.option, dest)
            where = (f"{option}={config.getoption(dest)} is not an executable file" if given(dest)
                     else f"not on PATH; install it or pass {option}=PATH" if offered
                     else "not on PATH; install it")
            missing.append(f"{name} ({where})")
    if not settings.byo and settings.node_cli_bin is None:
        missing.append(f"{settings.node_cli} (kind's node provider; not on PATH)")
    return missing


def requirements_message(missing: list[str], settings: ClusterSettings) -> str:
    mode = (f"--dhi-kubeconfig={settings.byo_kubeconfig}" if settings.byo
            else f"a kind cluster named {settings.cluster_name!r}")
    return (f"the cluster tier ({mode}) cannot run; missing: "
            + "; ".join(missing))
