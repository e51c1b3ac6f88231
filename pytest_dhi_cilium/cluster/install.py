"""One cluster per session, one Cilium install per image: the steps between "a cluster
exists" and "a snapshot the checks can judge"."""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, replace

from ..checks.cluster import (ImageUnderTest, ProcessUser, Snapshot, Upgrade, container_status, hopeless,
                              pod_name, pod_readiness_problems, restart_problems, rollout_pending)
from ..image.reference import DAEMON, Reference, image_tags, tag_of
from . import diagnostics
from .helm import NAMESPACE, Helm, HelmError, chart_version
from .kind import LoadError, in_cluster_name, kind_cluster, load_image
from .nodes import NodeContainer, NodeShell, user_unobservable
from .options import ClusterSettings
from .waiting import Progress, elapsed_text, hold_for, wait_for


class InstallError(Exception):
    """The install could not even be attempted or did not go through; one sentence why."""


@dataclass
class ClusterEnv:
    settings: ClusterSettings
    kubeconfig: str
    workdir: str
    progress: Progress
    kube: object  # cluster.kube.Kube
    helm: Helm
    nodes: NodeShell | None  # None: no container CLI to reach kind/k3d nodes with
    kind: object | None = None  # pytest_kind.KindCluster, None on a BYO cluster
    release_installed: bool = False  # by this session


@dataclass
class Installed:
    image: ImageUnderTest
    chart_version: str | None
    snapshot: Snapshot
    upgrade: Upgrade | None = None


def _env(settings: ClusterSettings, kubeconfig: str, workdir: str, progress: Progress, kind=None) -> ClusterEnv:
    from .kube import Kube

    return ClusterEnv(settings, kubeconfig, workdir, progress, Kube(kubeconfig),
                      Helm(settings.helm_bin, kubeconfig, workdir, settings.timeout),
                      NodeShell(settings.node_cli_bin) if settings.node_cli_bin else None, kind)


@contextmanager
def open_cluster(settings: ClusterSettings, progress: Progress, workdir: str):
    """The session's cluster. A BYO cluster keeps everything but the release this run
    installed; a kind cluster is handled by kind.kind_cluster (deleted unless kept)."""
    if settings.byo:
        env = _env(settings, settings.byo_kubeconfig, workdir, progress)
        try:
            yield env
        finally:
            if env.release_installed:
                with progress.step("helm uninstall cilium from the BYO cluster"):
                    env.helm.uninstall()
        return
    with kind_cluster(settings, progress) as (cluster, _created):
        yield _env(settings, str(cluster.kubeconfig_path), workdir, progress, kind=cluster)


def platform_mismatch(image_arch: str, nodes: list[dict]) -> str:
    arches = {((n.get("status") or {}).get("nodeInfo") or {}).get("architecture") for n in nodes} - {None}
    if image_arch and arches and image_arch not in arches:
        return f"the image is linux/{image_arch}; the cluster's nodes are {', '.join(sorted(arches))}"
    return ""


def platform_skip_reason(env: ClusterEnv, image) -> str:
    mismatch = platform_mismatch(image.platform.architecture, _observe(env).nodes)
    return f"{image.ref}: cannot run on this cluster: {mismatch}" if mismatch else ""


def _observe(env: ClusterEnv) -> Snapshot:
    return env.kube.observe(NAMESPACE)


def _settle_problems(snap: Snapshot) -> list[str]:
    if snap.api_error:
        return []  # an unreadable API server says nothing about the pods; keep observing
    return [p for pod in snap.pods for p in restart_problems(pod) + pod_readiness_problems(pod)]


def deploy(env: ClusterEnv, image: str, version: str | None, settle: bool = True) -> Snapshot:
    """helm upgrade --install, then wait for the rollout and (optionally) the settle window.
    The result is a snapshot either way: a rollout that never converges is for the checks to
    judge, with what was still pending."""
    s = env.settings
    if s.byo and not env.release_installed and env.helm.release_exists():
        raise InstallError(f"a helm release 'cilium' already exists in {NAMESPACE} on the cluster of "
                           f"{s.byo_kubeconfig}; the cluster tier installs (and at the end uninstalls) "
                           "its own — use a scratch cluster")
    with env.progress.step(f"helm upgrade --install cilium (chart {s.chart} {version or 'latest'}, operator {image})"):
        try:
            env.helm.install(image, s.chart, version, s.helm_values, s.helm_sets)
        except HelmError as exc:
            raise InstallError(str(exc)) from None
        finally:
            env.release_installed = True  # whatever helm got to, the uninstall must run
    waited = wait_for(lambda: _observe(env), rollout_pending, hopeless=lambda snap: hopeless(snap.pods),
                      deadline=s.timeout, what="the Cilium rollout", progress=env.progress)
    snap, how = waited.state, waited.describe()
    if waited.ok and settle and s.settle > 0:
        held = hold_for(lambda: _observe(env), _settle_problems, window=s.settle,
                        what="operator settle window", progress=env.progress)
        snap = held.state
        how += f"; settle window: {'held ' + elapsed_text(held.elapsed) if held.ok else held.hopeless}"
    return replace(snap, waited=how, settle=s.settle)


def _kubelet_user(pod: dict) -> ProcessUser | None:
    """containerStatuses[].user (KEP-3619; see nodes.user_unobservable for which clusters fill
    it): the IDs the runtime gave the first process — configured, not observed."""
    linux = ((container_status(pod) or {}).get("user") or {}).get("linux") or {}
    if linux.get("uid") is None:
        return None
    return ProcessUser(pod_name(pod), linux.get("uid"), linux.get("gid"),
                       "pod status containerStatuses[].user (the runtime's configured user, reported by the kubelet)")


def observe_deep(env: ClusterEnv, snap: Snapshot, image_name: str) -> Snapshot:
    """Add what needs more than the API objects: /healthz, the process user, the node's image
    record, and the diagnostics a failure will show."""
    healthz, users, unobservable, node_images = [], [], [], []
    containers: dict[str, NodeContainer] = {}
    for pod in snap.pods:
        node = (pod.get("spec") or {}).get("nodeName", "")
        if node not in containers:
            containers[node] = (env.nodes.node_container(node) if env.nodes
                                else NodeContainer(node, "", "no container engine CLI to reach nodes with"))
        pid = None
        if containers[node].provider:
            pid, user = env.nodes.process(pod)
            users.append(user)
        else:
            user = _kubelet_user(pod)
            if user:
                users.append(user)
            else:
                node_object = next((n for n in snap.nodes if (n.get("metadata") or {}).get("name") == node), None)
                unobservable.append(user_unobservable(pod_name(pod), node, containers[node], node_object))
        healthz.append(env.nodes.healthz(pod, pid) if pid else env.kube.healthz_via_proxy(pod))
    for node, container in containers.items():
        if container.provider:
            node_images.append(env.nodes.image(node, image_name))
    return replace(snap, healthz=healthz, users=users, users_unobservable="; ".join(unobservable),
                   node_images=node_images,
                   diagnostics=diagnostics.gather(env.kube, env.helm, snap.pods))


def _bring_in(env: ClusterEnv, ref: Reference, names: list[str], digest: str = "") -> str:
    """Load the image into kind (BYO: nothing to do) and return the name the chart gets."""
    try:
        name = in_cluster_name(ref, names, loaded=env.kind is not None, digest=digest)
        if env.kind is not None:
            load_image(env.settings, env.kind, ref, name, env.workdir, env.progress)
    except LoadError as exc:
        raise InstallError(str(exc)) from None
    return name


def _bring_in_upstream(env: ClusterEnv, ref: str) -> None:
    """The upstream image is pulled by the node, unless the local Docker has it (offline CI)."""
    if env.kind is None or not env.settings.node_cli_bin or "@" in ref:
        return
    local = subprocess.run([env.settings.node_cli_bin, "image", "inspect", ref], capture_output=True, timeout=60)
    if local.returncode == 0:
        _bring_in(env, Reference(ref, DAEMON, ref), [ref])


def install_target(env: ClusterEnv, ref: Reference, image) -> Installed:
    """Install Cilium with ``image`` (the image model) as the operator, wait, settle, observe.
    With --dhi-upgrade-from: install that first (from scratch), then upgrade to ``image``."""
    s = env.settings
    version = chart_version(s.version, image_tags(ref, image.names))
    if version is None and not os.path.exists(s.chart):  # a local chart has its own version
        raise InstallError(f"{ref.raw}: no operator version in its tag(s) "
                           f"({', '.join(image_tags(ref, image.names)) or 'none'}) to pick the Cilium chart "
                           "version from; pass --dhi-cilium-version=X.Y.Z")
    name = _bring_in(env, ref, image.names, image.digest)
    # A pulled daemon image's registry digest is what a node that pulls it reports; it is the
    # engine's record (not verified by the reader: `docker save` has no manifest), accepted here
    # as the manifest digest.
    under_test = ImageUnderTest(name, image.repo_digest or image.digest, image.config_digest)
    upgrade = None
    if s.upgrade_from:
        if env.release_installed:  # a previous image's install: start the upgrade from scratch
            with env.progress.step("helm uninstall cilium (fresh start for the upgrade)"):
                env.helm.uninstall()
        from_version = chart_version(None, [tag_of(s.upgrade_from)]) or version
        try:
            _bring_in_upstream(env, s.upgrade_from)
            before = deploy(env, s.upgrade_from, from_version, settle=False)
        except InstallError as exc:
            upgrade = Upgrade(s.upgrade_from, None, None, f"installing {s.upgrade_from} failed: {exc}")
        else:
            upgrade = Upgrade(s.upgrade_from, before, None)
    snap = observe_deep(env, deploy(env, name, version), name)
    if upgrade is not None and upgrade.before is not None:
        upgrade.after = snap
    return Installed(under_test, version, snap, upgrade)
