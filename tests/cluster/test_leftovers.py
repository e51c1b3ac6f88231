"""A cluster this run did not create is left as it was found: what the run created (the
operator's CRDs and Lease, its agent-not-ready taint) is removed, what was there before is kept.
The decisions over API objects; then the real kubernetes client against a fake API server,
through open_cluster's whole life."""

import copy
import io
import json
from functools import partial
from types import SimpleNamespace

import pytest

from pytest_dhi_cilium.cluster import leftovers
from pytest_dhi_cilium.cluster.leftovers import inventory, plan, summary

from .test_install import settings

NS = "kube-system"
LEASE = f"Lease {NS}/cilium-operator-resource-lock"
DEDICATED = {"key": "dedicated", "value": "infra", "effect": "NoSchedule"}


def crds(k8s, *plurals):
    return [k8s.crd(p) for p in plurals]


def test_what_the_run_created_goes_and_what_was_there_stays(k8s):
    before = inventory(crds(k8s, "ciliumnetworkpolicies") + [k8s.crd("widgets")], None,
                       [k8s.node(taints=[DEDICATED])])
    widgets = k8s.crd("widgets")
    widgets["metadata"]["name"] = "widgets.example.com"
    after = plan(before, crds(k8s, *k8s.RUN_CRDS) + [widgets], k8s.lease(),
                 [k8s.node(taints=[DEDICATED, k8s.AGENT_NOT_READY])])
    assert after.crds_to_delete == sorted(f"{p}.cilium.io" for p in k8s.RUN_CRDS if p != "ciliumnetworkpolicies")
    assert after.crds_kept == ["ciliumnetworkpolicies.cilium.io"]
    assert after.lease_to_delete and not after.lease_kept
    [change] = after.taints
    assert (change.node, change.wanted, change.removed) == (k8s.NODE, [DEDICATED], ["node.cilium.io/agent-not-ready:NoSchedule"])
    assert change.current == [DEDICATED, k8s.AGENT_NOT_READY]  # what the patch tests before it replaces


def test_a_cilium_taint_and_lease_that_were_there_before_are_kept(k8s):
    before = inventory([], k8s.lease(), [k8s.node(taints=[k8s.AGENT_NOT_READY])])
    after = plan(before, [], k8s.lease(holder="someone-else"), [k8s.node(taints=[k8s.AGENT_NOT_READY])])
    assert after.empty and after.lease_kept
    assert after.taints_kept == [f"node.cilium.io/agent-not-ready:NoSchedule on {k8s.NODE}"]
    assert summary(after, NS, {}) == [
        f"{LEASE}: kept (existed before the run)",
        f"Cilium node taints: kept node.cilium.io/agent-not-ready:NoSchedule on {k8s.NODE} (there before the run)"]


def test_a_cilium_taint_the_operator_lifted_is_put_back_and_others_taints_are_not_ours(k8s):
    """The taint Cilium's docs ask users to place before installing: the operator lifts it once
    an agent runs. Taints of anyone else, placed or lifted during the run, are left alone."""
    user_placed = {"key": "node.cilium.io/agent-not-ready", "value": "true", "effect": "NoExecute"}
    before = inventory([], None, [k8s.node(taints=[user_placed, DEDICATED])])
    gpu = {"key": "nvidia.com/gpu", "effect": "NoSchedule"}
    after = plan(before, [], None, [k8s.node(taints=[gpu])])
    [change] = after.taints
    assert change.wanted == [gpu, user_placed] and change.removed == []
    assert summary(after, NS, {}) == [
        f"Cilium node taints: restored node.cilium.io/agent-not-ready=true:NoExecute on {k8s.NODE} "
        "(there before the run, lifted by the operator)"]


def test_a_node_that_joined_during_the_run_loses_the_taint_the_run_put_on_it(k8s):
    before = inventory([], None, [k8s.node()])
    after = plan(before, [], None, [k8s.node(), k8s.node(name="worker-2", taints=[k8s.AGENT_NOT_READY])])
    assert [(c.node, c.wanted) for c in after.taints] == [("worker-2", [])]


def test_only_cilium_domains_count():
    assert leftovers.is_cilium_taint({"key": "node.cilium.io/agent-not-ready"})
    assert leftovers.is_cilium_taint({"key": "cilium.io/custom"})
    assert not leftovers.is_cilium_taint({"key": "notcilium.io/x"})
    assert not leftovers.is_cilium_taint({"key": "node.kubernetes.io/not-ready"})
    assert not leftovers.is_cilium_taint({"key": "cilium.io"})  # no domain: not a prefixed key


def test_the_summary_says_what_was_removed_kept_and_not_removed(k8s):
    before = inventory(crds(k8s, "ciliumnodes"), None, [k8s.node(taints=[DEDICATED])])
    after = plan(before, crds(k8s, "ciliumnodes", "ciliumidentities", "ciliumendpoints", "ciliumpodippools"),
                 k8s.lease(), [k8s.node(taints=[DEDICATED, k8s.AGENT_NOT_READY])])
    failed = {"ciliumendpoints.cilium.io": "ApiException: (403) Forbidden", LEASE: "ApiException: (500)"}
    assert summary(after, NS, failed, ["ciliumpodippools.cilium.io"]) == [
        "*.cilium.io CRDs: removed 1 created during the run (ciliumidentities.cilium.io); "
        "deletion of 1 not finished (ciliumpodippools.cilium.io); "
        "could not remove 1: ciliumendpoints.cilium.io (ApiException: (403) Forbidden); "
        "kept 1 that existed before the run (ciliumnodes.cilium.io)",
        f"{LEASE}: could not remove it (ApiException: (500))",
        f"Cilium node taints: removed node.cilium.io/agent-not-ready:NoSchedule from {k8s.NODE}"]
    assert summary(after, NS, {f"taints of node {k8s.NODE}": "RuntimeError: x"})[-1] == (
        f"Cilium node taints: could not change taints of node {k8s.NODE} (RuntimeError: x): "
        "left node.cilium.io/agent-not-ready:NoSchedule")
    assert summary(plan(inventory([], None, []), [], None, []), NS, {}) == [
        "no *.cilium.io CRD, Lease cilium-operator-resource-lock or Cilium node taint before or after the run"]


# -- the real kubernetes client against a fake API server -------------------------------------------

CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
LEASE_PATH = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/cilium-operator-resource-lock"
HELM_OBJECTS = (f"/apis/apps/v1/namespaces/{NS}/deployments/cilium-operator",
                f"/apis/apps/v1/namespaces/{NS}/daemonsets/cilium")


class FakeCluster:
    """A BYO cluster found with a CRD of an earlier Cilium, an unrelated CRD and a tainted node,
    and what a Cilium release does to it: its install makes the operator create its CRDs and
    Lease and taint the nodes (the agent never becomes ready), its uninstall removes the
    release's own objects only."""

    def __init__(self, k8s, fake_api, helm_flags=None):
        widgets = k8s.crd("widgets")
        widgets["metadata"]["name"] = "widgets.example.com"
        self.store = {CRD_PATH + "widgets.example.com": widgets,
                      CRD_PATH + "ciliumnetworkpolicies.cilium.io": k8s.crd("ciliumnetworkpolicies"),
                      f"/api/v1/nodes/{k8s.NODE}": k8s.node(taints=[DEDICATED]),
                      "/api/v1/nodes/worker-2": k8s.node(name="worker-2")}
        self.found = copy.deepcopy(self.store)
        self.k8s, self.release, self.calls = k8s, False, []
        self.api = fake_api(self._follow(helm_flags) if helm_flags else self.store)

    def _follow(self, flags):
        """Routes for a helm executable that leaves files behind: its install and uninstall
        take effect on the next API request."""
        def routes():
            if (flags / "installed").exists() and not self.release and "uninstall" not in self.calls:
                self.install()
            if (flags / "uninstalled").exists() and self.release:
                self.uninstall()
            return self.store
        return routes

    # Helm's interface, as install.py uses it
    def release_exists(self):
        return self.release

    def install(self, *args):
        self.calls.append("install")
        self.release = True
        self.store.update(zip(HELM_OBJECTS, (self.k8s.deployment(), self.k8s.daemonset(ready=0, available=0))))
        for plural in self.k8s.RUN_CRDS:
            self.store.setdefault(f"{CRD_PATH}{plural}.cilium.io", self.k8s.crd(plural))
        self.store[LEASE_PATH] = self.k8s.lease()
        for path in [p for p in self.store if p.startswith("/api/v1/nodes/")]:
            self.store[path]["spec"].setdefault("taints", []).append(dict(self.k8s.AGENT_NOT_READY))

    def uninstall(self):
        self.calls.append("uninstall")
        self.release = False
        for path in HELM_OBJECTS:
            self.store.pop(path)

    def settings(self, **kw):
        return settings(**{"byo_kubeconfig": self.api.kubeconfig, "timeout": 5.0, **kw})


@pytest.fixture
def byo(k8s, fake_api, monkeypatch):
    pytest.importorskip("kubernetes")
    from pytest_dhi_cilium.cluster import install, waiting

    cluster = FakeCluster(k8s, fake_api)
    monkeypatch.setattr(install, "Helm", lambda *args: cluster)
    monkeypatch.setattr(install, "wait_for", partial(waiting.wait_for, sleep=lambda s: None))
    return cluster


def run_session(byo, interrupt=False, **kw):
    from pytest_dhi_cilium.cluster import install
    from pytest_dhi_cilium.cluster.waiting import Progress

    out = io.StringIO()
    env = None
    try:
        with install.open_cluster(byo.settings(**kw), Progress(stream=out), "/nonexistent") as env:
            env.helm.install()
            env.release_installed = True
            if interrupt:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    return SimpleNamespace(env=env, out=out.getvalue())


def test_a_byo_cluster_is_left_as_it_was_found(byo, k8s):
    session = run_session(byo)
    assert byo.calls == ["install", "uninstall"]
    assert byo.store == byo.found  # the earlier CRD, the unrelated one, both nodes' taints as they were
    assert byo.store[f"/api/v1/nodes/{k8s.NODE}"]["spec"]["taints"] == [DEDICATED]
    assert "taints" not in byo.store["/api/v1/nodes/worker-2"]["spec"]
    deleted = sorted(path for path, _ in byo.api.seen if path.startswith("DELETE "))
    assert deleted == sorted([f"DELETE {LEASE_PATH}"] + [f"DELETE {CRD_PATH}{p}.cilium.io" for p in k8s.RUN_CRDS
                                                         if p != "ciliumnetworkpolicies"])
    patch = next(q for path, q in byo.api.seen if path == f"PATCH /api/v1/nodes/{k8s.NODE}")
    assert patch["content-type"] == "application/json-patch+json"
    assert patch["body"][0] == {"op": "test", "path": "/spec/taints", "value": [DEDICATED, k8s.AGENT_NOT_READY]}
    assert session.env.cleanup == [
        "helm release kube-system/cilium: uninstalled (installed by this run)",
        "*.cilium.io CRDs: removed 10 created during the run (ciliumcidrgroups.cilium.io, "
        "ciliumclusterwidenetworkpolicies.cilium.io, ciliumendpoints.cilium.io, ciliumidentities.cilium.io, "
        "ciliuml2announcementpolicies.cilium.io, ciliumloadbalancerippools.cilium.io, "
        "ciliumlocalredirectpolicies.cilium.io, ciliumnodeconfigs.cilium.io, ciliumnodes.cilium.io, "
        "ciliumpodippools.cilium.io); kept 1 that existed before the run (ciliumnetworkpolicies.cilium.io)",
        f"{LEASE}: removed (created during the run)",
        f"Cilium node taints: removed node.cilium.io/agent-not-ready:NoSchedule from {k8s.NODE}; "
        "removed node.cilium.io/agent-not-ready:NoSchedule from worker-2"]
    assert f"[dhi-cilium] cleanup: {LEASE}: removed (created during the run)" in session.out


def test_ctrl_c_still_leaves_the_byo_cluster_as_found(byo):
    run_session(byo, interrupt=True)
    assert byo.calls == ["install", "uninstall"] and byo.store == byo.found


def test_a_taint_changed_by_someone_else_meanwhile_is_read_again_not_overwritten(byo, k8s, monkeypatch):
    from pytest_dhi_cilium.cluster.kube import Kube

    node_path = f"/api/v1/nodes/{k8s.NODE}"
    gpu = {"key": "nvidia.com/gpu", "effect": "NoSchedule"}
    real_patch = Kube.replace_taints

    def someone_taints_first(self, node, current, wanted):
        if node == k8s.NODE and gpu not in byo.store[node_path]["spec"]["taints"]:
            byo.store[node_path]["spec"]["taints"].append(gpu)  # lands between our read and our patch
        real_patch(self, node, current, wanted)

    monkeypatch.setattr(Kube, "replace_taints", someone_taints_first)
    run_session(byo)
    assert byo.store[node_path]["spec"]["taints"] == [DEDICATED, gpu]
    assert [q["body"][0]["value"] for path, q in byo.api.seen if path == f"PATCH {node_path}"] == [
        [DEDICATED, k8s.AGENT_NOT_READY], [DEDICATED, k8s.AGENT_NOT_READY, gpu]]


def test_what_could_not_be_removed_fails_the_cleanup_and_says_so(byo, monkeypatch):
    from pytest_dhi_cilium.cluster import install
    from pytest_dhi_cilium.cluster.kube import Kube

    def forbidden(self, namespace):
        raise RuntimeError("leases.coordination.k8s.io is forbidden")

    monkeypatch.setattr(Kube, "delete_lease", forbidden)
    with pytest.raises(install.LeftoverError, match="the cluster was not left as it was found: .*"
                       r"Lease kube-system/cilium-operator-resource-lock: could not remove it \(RuntimeError: "
                       "leases.coordination.k8s.io is forbidden\\)"):
        run_session(byo)
    assert LEASE_PATH in byo.store and not [p for p in byo.store if p.endswith("ciliumnodes.cilium.io")]


def test_an_unreadable_cluster_before_the_run_means_only_our_release_is_removed(byo, monkeypatch):
    from pytest_dhi_cilium.cluster.kube import Kube

    calls = []

    def unreachable_once(self, namespace):
        calls.append(namespace)
        if len(calls) == 1:
            raise ConnectionError("connection refused")
        return real(self, namespace)

    real = Kube.leftover_objects
    monkeypatch.setattr(Kube, "leftover_objects", unreachable_once)
    session = run_session(byo)
    assert session.env.cleanup == [
        "no record of the cluster before the run (ConnectionError: connection refused): no Cilium CRD, Lease "
        "or node taint removed at the end",
        "helm release kube-system/cilium: uninstalled (installed by this run)"]
    assert LEASE_PATH in byo.store and len(calls) == 1


@pytest.mark.parametrize("created, keep, cleaned", [(False, False, True), (True, False, False), (False, True, False)])
def test_a_reused_kind_cluster_is_left_as_found_a_created_or_kept_one_is_not(byo, monkeypatch, created, keep, cleaned):
    """A kind cluster this run created is deleted whole; --keep-cluster keeps it as the run left
    it (to look at); one that existed and is not kept is left as found, like a BYO cluster."""
    from contextlib import contextmanager

    from pytest_dhi_cilium.cluster import install

    @contextmanager
    def kind_cluster(settings, progress):
        yield SimpleNamespace(kubeconfig_path=byo.api.kubeconfig), created

    monkeypatch.setattr(install, "kind_cluster", kind_cluster)
    run_session(byo, byo_kubeconfig=None, keep_cluster=keep)
    assert (byo.store == byo.found) is cleaned
    assert byo.calls == (["install", "uninstall"] if cleaned else ["install"])


HELM = """echo "helm $*" >> {dir}/calls
case "$1" in
  status) [ -e {dir}/installed ] && [ ! -e {dir}/uninstalled ] && exit 0
          echo 'Error: release: not found' >&2; exit 1 ;;
  get) echo 'operator: {{}}' ;;
  upgrade) touch {dir}/installed ;;
  uninstall) touch {dir}/uninstalled ;;
esac
exit 0
"""


def test_a_byo_session_through_the_plugin_leaves_the_cluster_as_found_and_reports_it(
        pytester, k8s, fake_api, registry, tmp_path, monkeypatch):
    """The whole plugin on --dhi-kubeconfig: a real registry serves the image, helm is a
    script, the cluster a fake API server; the agent never becomes ready (as in the live run)."""
    pytest.importorskip("kubernetes")
    archive, _ = k8s.tiny_docker_archive(tmp_path / "op.tar", tag="acme/op:1.17.5")
    ref = registry.push(f"docker-archive:{archive}", "acme/op:1.17.5")
    cluster = FakeCluster(k8s, fake_api, helm_flags=tmp_path)
    bin_dir = k8s.fake_tools(tmp_path / "bin", "helm", "docker",
                             scripts={"helm": HELM.format(dir=tmp_path), "docker": "exit 1\n"})
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    report, markdown = tmp_path / "report.json", tmp_path / "report.md"
    result = pytester.runpytest_subprocess(
        f"--dhi-image={ref}", "--dhi-tier=cluster", f"--dhi-kubeconfig={cluster.api.kubeconfig}",
        "--dhi-cluster-settle=0", "--dhi-cluster-timeout=1", f"--dhi-report={report}",
        f"--dhi-report-md={markdown}", "-p", "no:cacheprovider")
    assert cluster.calls == ["install", "uninstall"]
    assert cluster.store == cluster.found
    removed_lease = f"{LEASE}: removed (created during the run)"
    result.stdout.fnmatch_lines(["*cluster cleanup (a cluster this run did not create):",
                                 "    helm release kube-system/cilium: uninstalled (installed by this run)",
                                 "    [*].cilium.io CRDs: removed 10 created during the run (*); kept 1 that "
                                 "existed before the run (ciliumnetworkpolicies.cilium.io)",
                                 f"    {removed_lease}",
                                 f"    Cilium node taints: removed node.cilium.io/agent-not-ready:NoSchedule from "
                                 f"{k8s.NODE}; removed node.cilium.io/agent-not-ready:NoSchedule from worker-2"])
    document = json.loads(report.read_text())
    assert document["cluster_cleanup"][0] == "helm release kube-system/cilium: uninstalled (installed by this run)"
    assert removed_lease in document["cluster_cleanup"]
    assert "## Cluster cleanup\n\n- helm release kube-system/cilium: uninstalled" in markdown.read_text()
