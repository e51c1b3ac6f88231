"""One cluster per session, one Cilium install per image: the steps between "a cluster
exists" and "a snapshot the checks can judge"."""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from ..checks.cluster import (LEASE_NAME, OPERATOR_CONTAINER, ImageUnderTest, ProcessUser, SettleObservation,
                              Snapshot, Upgrade, agent_hopeless, container_status, hopeless, operator_pending,
                              pod_name, rollout_pending, settle_blocker, settle_problems)
from ..image.reference import DAEMON, Reference, image_tags, tag_of
from ..signals import sigterm_as_interrupt
from . import diagnostics, leftovers
from .helm import NAMESPACE, RELEASE, Helm, HelmError, chart_version
from .kind import LoadError, in_cluster_name, kind_cluster, load_image
from .kube import api_failure
from .nodes import NodeContainer, NodeShell, user_unobservable
from .options import ClusterSettings
from .waiting import Progress, hold_for, wait_for

LOG_HEAD_BYTES = 1 << 20  # of each operator log read from its start: its start-up is a few hundred lines


class InstallError(Exception):
    """The install could not even be attempted or did not go through; one sentence why."""


class LeftoverError(Exception):
    """A cluster this run did not create was not left as it was found; what was left, and why."""


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
    cleanup: list[str] = field(default_factory=list)  # on a cluster the run did not create: removed / kept


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
    """The session's cluster. One this run did not create (BYO, or a kind cluster reused without
    --keep-cluster) is left as it was found; a kind cluster this run created is handled by
    kind.kind_cluster (deleted unless kept), and a kept one stays as the run leaves it."""
    if settings.byo:
        with sigterm_as_interrupt(), _left_as_found(_env(settings, settings.byo_kubeconfig, workdir, progress)) as env:
            yield env
        return
    with kind_cluster(settings, progress) as (cluster, created):
        env = _env(settings, str(cluster.kubeconfig_path), workdir, progress, kind=cluster)
        if created or settings.keep_cluster:
            yield env
            return
        with _left_as_found(env):
            yield env


@contextmanager
def _left_as_found(env: ClusterEnv):
    before = _inventory_before(env)
    try:
        yield env
    finally:
        _leave_as_found(env, before)


def _inventory_before(env: ClusterEnv) -> leftovers.Inventory | None:
    """Cilium's cluster-wide objects before the first install; None: unreadable, and then none
    of them is removed at the end (what the run created cannot be told from what was there)."""
    with env.progress.step("recording Cilium's CRDs, Lease and node taints before the run"):
        try:
            crds, lease, nodes = env.kube.leftover_objects(NAMESPACE)
        except Exception as exc:  # ApiException, urllib3 connection errors, timeouts
            env.cleanup.append(f"no record of the cluster before the run ({api_failure(exc)}): "
                               "no Cilium CRD, Lease or node taint removed at the end")
            return None
        return leftovers.inventory(crds, lease, nodes, release=env.helm.release_exists())


def _leave_as_found(env: ClusterEnv, before: leftovers.Inventory | None) -> None:
    """After the run — failures and Ctrl-C too: the release this run installed is uninstalled
    (it stops the operator, which would otherwise recreate what is removed next), then what the
    operator and agents created is removed and what was there before is kept."""
    try:
        _uninstall_ours(env, before)
        if before is not None:
            _remove_leftovers(env, before)
    finally:
        for line in env.cleanup:
            env.progress.line(f"cleanup: {line}")


def _uninstall_ours(env: ClusterEnv, before: leftovers.Inventory | None) -> None:
    release = f"helm release {NAMESPACE}/{RELEASE}"
    if env.release_installed and not (before and before.release):
        try:
            with env.progress.step(f"helm uninstall {RELEASE} (installed by this run)"):
                env.helm.uninstall()
        except HelmError:
            env.cleanup.append(f"{release}: helm uninstall failed; nothing else removed (the operator "
                               "may still run and recreate it)")
            raise
        env.cleanup.append(f"{release}: uninstalled (installed by this run)")
    elif env.release_installed:
        env.cleanup.append(f"{release}: kept (existed before the run; this run's helm upgrades are in it)")


def _remove_leftovers(env: ClusterEnv, before: leftovers.Inventory) -> None:
    try:
        todo = leftovers.plan(before, *env.kube.leftover_objects(NAMESPACE))
    except Exception as exc:  # ApiException, urllib3 connection errors, timeouts
        env.cleanup.append(f"could not read the cluster after the run ({api_failure(exc)}): "
                           "no Cilium CRD, Lease or node taint removed")
        raise LeftoverError(env.cleanup[-1]) from None
    failed: dict[str, str] = {}
    unfinished: list[str] = []
    if not todo.empty:
        with env.progress.step(f"removing what the run created ({len(todo.crds_to_delete)} CRD(s), "
                               f"{int(todo.lease_to_delete)} Lease, taints of {len(todo.taints)} node(s))"):
            for name in todo.crds_to_delete:
                _attempt(failed, name, env.kube.delete_crd, name)
            if todo.lease_to_delete:
                _attempt(failed, f"Lease {NAMESPACE}/{LEASE_NAME}", env.kube.delete_lease, NAMESPACE)
            for i, change in enumerate(todo.taints):
                todo.taints[i] = _attempt(failed, f"taints of node {change.node}", _retaint, env, before,
                                          change) or change
            unfinished = _crds_not_gone(env, [n for n in todo.crds_to_delete if n not in failed])
    lines = leftovers.summary(todo, NAMESPACE, failed, unfinished)
    env.cleanup.extend(lines)
    if failed or unfinished:
        raise LeftoverError("the cluster was not left as it was found: " + "; ".join(lines))


def _attempt(failed: dict[str, str], what: str, call, *args):
    try:
        return call(*args)
    except Exception as exc:  # each object on its own: one failure does not keep the others
        failed[what] = api_failure(exc)
        return None


def _retaint(env: ClusterEnv, before: leftovers.Inventory, change: leftovers.TaintChange,
             attempts: int = 3) -> leftovers.TaintChange:
    """The taints changed between the read and the patch (the patch's test failed): read the
    node again and decide again."""
    from kubernetes.client.exceptions import ApiException

    for _ in range(attempts):
        try:
            env.kube.replace_taints(change.node, change.current, change.wanted)
            return change
        except ApiException as exc:
            if exc.status not in (409, 422):
                raise
        node = env.kube.read_node(change.node)
        again = leftovers.taint_change(before, node) if node else None
        if again is None:
            return change  # gone, or someone else already put it right
        change = again
    raise RuntimeError(f"its taints changed under each of {attempts} patches")


def _crds_not_gone(env: ClusterEnv, deleting: list[str]) -> list[str]:
    """A CRD goes once the API server has deleted its objects; wait for that."""
    if not deleting:
        return []

    def remaining() -> list[str] | None:
        try:
            return env.kube.cilium_crd_names()
        except Exception:  # an API server hiccup: keep polling
            return None

    waited = wait_for(remaining, lambda names: [n for n in deleting if names is None or n in names],
                      deadline=env.settings.timeout, what=f"deletion of {len(deleting)} CRD(s)",
                      progress=env.progress)
    return [] if waited.ok else waited.pending


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


def _settle(env: ClusterEnv, snap: Snapshot) -> tuple[Snapshot, SettleObservation]:
    """Watch the operator's pods (only them: the agents do not decide its verdict) for the whole
    settle window, however the rollout wait ended — unless watching is pointless."""
    blocker = settle_blocker(snap)
    if blocker:
        env.progress.line(f"operator settle window not started: {blocker}")
        return snap, SettleObservation("not started", detail=blocker)
    started = datetime.now(timezone.utc)
    looks: list[Snapshot] = []

    def look() -> Snapshot:
        looks.append(_observe(env))
        return looks[-1]

    held = hold_for(look, settle_problems, window=env.settings.settle,
                    what="operator settle window", progress=env.progress)
    # The checks judge the last look that read the cluster: one that found the API server
    # unreadable has no Deployment in it, which is not "the Deployment does not exist".
    judged = next((s for s in reversed([snap, *looks]) if not s.api_error), held.state)
    return judged, SettleObservation("held" if held.ok else "broke", held.elapsed, started, held.hopeless,
                                     looks=len(looks), unreadable=sum(1 for s in looks if s.api_error))


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
    # An agent that cannot recover ends the wait for the agents, not for the operator: its own
    # rollout, lease and CRDs are still waited for (an upgrade's new pods included), then its
    # settle window held — the operator's verdict must not depend on the agent's image.
    agents_given_up = ""

    def pending(snap: Snapshot) -> list[str]:
        nonlocal agents_given_up
        if not agents_given_up and not snap.api_error:
            agents_given_up = agent_hopeless(snap.agent_pods, snap.taken_at)
            if agents_given_up:
                env.progress.line(f"stopped waiting for the agents: {agents_given_up}; still waiting for the operator")
        return operator_pending(snap) if agents_given_up else rollout_pending(snap)

    waited = wait_for(lambda: _observe(env), pending, hopeless=lambda snap: hopeless(snap.pods),
                      deadline=s.timeout, what="the Cilium rollout", progress=env.progress)
    snap, how = waited.state, waited.describe()
    if agents_given_up:
        how = f"stopped waiting for the agents: {agents_given_up}; the operator's rollout {how}"
    observed = None
    if settle:
        snap, observed = _settle(env, snap)
        how += f"; operator settle window: {observed.describe()}"
    return replace(snap, waited=how, settle=s.settle, settle_observed=observed)


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
    record, and the diagnostics a failure will show (the operator's, and the agents')."""
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
    current_logs, previous_logs = _operator_logs(env, snap.pods)
    return replace(snap, healthz=healthz, users=users, users_unobservable="; ".join(unobservable),
                   node_images=node_images, operator_logs=current_logs, previous_logs=previous_logs,
                   diagnostics=diagnostics.gather(env.kube, env.helm, snap.pods, previous_logs),
                   agent_diagnostics=diagnostics.gather_agents(env.kube, snap.agent_pods))


def _operator_logs(env: ClusterEnv, pods: list[dict]) -> tuple[dict[str, str], dict[str, str]]:
    """The logs the verdict reads: each pod's current container from its start (the lines a
    starting operator writes about its CRDs come early), and the exited container's tail."""
    current, previous = {}, {}
    for pod in pods:
        current[pod_name(pod)] = env.kube.logs(pod, OPERATOR_CONTAINER, lines=None, limit_bytes=LOG_HEAD_BYTES)
        if ((container_status(pod) or {}).get("lastState") or {}).get("terminated"):
            previous[pod_name(pod)] = env.kube.logs(pod, OPERATOR_CONTAINER, previous=True)
    return current, previous


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
