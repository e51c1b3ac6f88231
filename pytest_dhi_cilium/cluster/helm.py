"""Helm: which arguments install Cilium with the operator under test (pure, tested), and a
thin runner for them."""

from __future__ import annotations

import os
import subprocess

from ..checks.versions import version_from_tag
from .options import CILIUM_REPO, DEFAULT_CHART

RELEASE = "cilium"
NAMESPACE = "kube-system"


class HelmError(Exception):
    """A helm command failed; the message carries the command and helm's own words."""


def default_values() -> dict:
    """A lean install on a one-node kind cluster. Written to a values file passed first, so the
    user's --dhi-helm-values files and --dhi-helm-set values override it (helm lets any --set
    beat any values file, so these must not be --set)."""
    return {
        "operator": {"replicas": 1,  # the chart's 2 replicas have required anti-affinity per node
                     "image": {"pullPolicy": "IfNotPresent"}},  # loaded into kind, not pulled
        "ipam": {"mode": "kubernetes"},
        "envoy": {"enabled": False},  # 1.16+: no separate Envoy DaemonSet to wait for
    }


def chart_source(chart: str) -> tuple[str, str | None]:
    """``cilium/cilium`` is fetched with ``--repo`` so nothing is added to the user's helm repos."""
    return ("cilium", CILIUM_REPO) if chart == DEFAULT_CHART else (chart, None)


def chart_version(explicit: str | None, tags: list[str]) -> str | None:
    """The chart version to install: --dhi-cilium-version, else the operator version in the
    first tag that carries one. A ``1.18`` tag becomes ``~1.18.0`` (the newest 1.18.x chart)."""
    if explicit:
        return explicit
    for tag in tags:
        version = version_from_tag(tag)
        if version:
            return version if version.count(".") == 2 else f"~{version}.0"
    return None


def install_args(helm: str, *, chart: str, version: str | None, kubeconfig: str, image: str,
                 defaults_file: str, values_files: tuple[str, ...] = (), sets: tuple[str, ...] = (),
                 timeout: float = 600) -> list[str]:
    name, repo = chart_source(chart)
    args = [helm, "upgrade", "--install", RELEASE, name]
    if repo:
        args += ["--repo", repo]
    if version:
        args += ["--version", version]
    args += ["--namespace", NAMESPACE, "--kubeconfig", kubeconfig, "--timeout", f"{int(timeout)}s",
             "--values", defaults_file]
    for path in values_files:
        args += ["--values", path]
    for item in sets:
        args += ["--set", item]
    # Last, and as a string: the image under test is the point of the run, whatever else was set.
    args += ["--set-string", f"operator.image.override={image}"]
    return args


def uninstall_args(helm: str, kubeconfig: str, timeout: float = 600) -> list[str]:
    return [helm, "uninstall", RELEASE, "--namespace", NAMESPACE, "--kubeconfig", kubeconfig,
            "--wait", "--timeout", f"{int(timeout)}s"]


def status_args(helm: str, kubeconfig: str) -> list[str]:
    return [helm, "status", RELEASE, "--namespace", NAMESPACE, "--kubeconfig", kubeconfig]


def get_values_args(helm: str, kubeconfig: str) -> list[str]:
    return [helm, "get", "values", RELEASE, "--namespace", NAMESPACE, "--kubeconfig", kubeconfig,
            "--output", "yaml"]


class Helm:
    def __init__(self, binary: str, kubeconfig: str, workdir: str, timeout: float):
        self.binary, self.kubeconfig, self.workdir, self.timeout = binary, kubeconfig, workdir, timeout

    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=self.timeout + 30)
        except subprocess.TimeoutExpired:
            raise HelmError(f"`{' '.join(args[1:4])}` did not finish within {self.timeout + 30:.0f}s") from None
        if check and done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-10:])
            raise HelmError(f"`{' '.join(args[1:4])}` failed (exit {done.returncode}): {tail}")
        return done

    def release_exists(self) -> bool:
        return self._run(status_args(self.binary, self.kubeconfig), check=False).returncode == 0

    def install(self, image: str, chart: str, version: str | None, values_files, sets) -> None:
        import yaml

        defaults = os.path.join(self.workdir, "dhi-cilium-defaults.yaml")
        with open(defaults, "w") as handle:
            yaml.safe_dump(default_values(), handle)
        self._run(install_args(self.binary, chart=chart, version=version, kubeconfig=self.kubeconfig,
                               image=image, defaults_file=defaults, values_files=tuple(values_files),
                               sets=tuple(sets), timeout=self.timeout))

    def uninstall(self) -> None:
        if self.release_exists():  # an install that failed early may have left nothing behind
            self._run(uninstall_args(self.binary, self.kubeconfig, self.timeout))

    def values(self) -> str:
        done = self._run(get_values_args(self.binary, self.kubeconfig), check=False)
        return done.stdout if done.returncode == 0 else f"(helm get values failed: {done.stderr.strip()[:300]})"
