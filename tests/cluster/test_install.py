"""The install flow and the cluster's life, with kind/helm/the API replaced by fakes: the order
of steps, what is cleaned up (also after a failure or Ctrl-C), and what each path records."""

import copy
import io
import subprocess
from types import SimpleNamespace

import pytest

from pytest_dhi_cilium.checks import cluster as check
from pytest_dhi_cilium.checks.cluster import Healthz, NodeImage, ProcessUser
from pytest_dhi_cilium.cluster import install, kind
from pytest_dhi_cilium.cluster.helm import HelmError
from pytest_dhi_cilium.cluster.nodes import NodeContainer
from pytest_dhi_cilium.cluster.options import ClusterSettings
from pytest_dhi_cilium.cluster.waiting import Progress
from pytest_dhi_cilium.image.reference import parse_reference


def settings(**kw) -> ClusterSettings:
    base = dict(byo_kubeconfig=None, cluster_name="dhi", keep_cluster=False, kind_kubeconfig=None, kind_image=None,
                kind_bin="/bin/kind", kubectl_bin="/bin/kubectl", helm_bin="/bin/helm", chart="cilium/cilium",
                version=None, helm_sets=(), helm_values=(), upgrade_from=None, timeout=60.0, settle=0.01,
                node_cli_bin="/bin/docker")
    base.update(kw)
    return ClusterSettings(**base)


class FakeHelm:
    def __init__(self, exists=False, fail_for=()):
        self.calls, self.exists, self.fail_for = [], exists, fail_for

    def release_exists(self):
        return self.exists

    def install(self, image, chart, version, values_files, sets):
        self.calls.append(("install", image, version))
        if image in self.fail_for:
            raise HelmError(f"`upgrade --install cilium` failed (exit 1): Error: pulling {image}")

    def uninstall(self):
        self.calls.append(("uninstall",))

    def values(self):
        return "operator:\n  replicas: 1"


class FakeKube:
    """Serves the snapshots an install goes through: the last one repeats; ``previous_log`` is
    the exited container's log."""

    def __init__(self, k8s, *snapshots, previous_log=""):
        self.k8s, self.snapshots = k8s, list(snapshots) or [k8s.snapshot()]
        self.previous_log, self.log_reads = previous_log, []

    def observe(self, namespace):
        return copy.deepcopy(self.snapshots.pop(0) if len(self.snapshots) > 1 else self.snapshots[0])

    def healthz_via_proxy(self, pod):
        return Healthz(self.k8s.POD, "pod proxy", "/api/v1/.../proxy/healthz", None, error="error trying to reach service")

    def logs(self, pod, container, previous=False, lines=100, limit_bytes=None):
        self.log_reads.append((previous, lines, limit_bytes))
        return self.previous_log if previous else "level=info msg=\"Leading the operator HA deployment\""

    def events(self, pod):
        return []


class FakeNodes:
    def __init__(self, k8s, kind_node=True):
        self.k8s, self.kind_node = k8s, kind_node

    def node_container(self, node):
        if self.kind_node:
            return NodeContainer(node, "kind cluster dhi")
        return NodeContainer(node, "", f"docker inspect {node}: Error: No such object: {node}")

    def process(self, pod):
        return 4242, ProcessUser(self.k8s.POD, 65532, 65532, "/proc/4242/status on node x", observed=True)

    def healthz(self, pod, pid):
        return Healthz(self.k8s.POD, f"node netns (pid {pid})", "http://127.0.0.1:9234/healthz", 200, "ok")

    def image(self, node, name):
        return NodeImage(node, name, self.k8s.CONFIG_DIGEST, (f"docker.io/acme/dhi-cilium-operator-generic@{self.k8s.NODE_DIGEST}",))


class FakeKind:
    name, kind_path = "dhi", "/bin/kind"

    def __init__(self):
        self.loaded = []

    def load_docker_image(self, name):
        self.loaded.append(name)


@pytest.fixture
def env(k8s, tmp_path, monkeypatch):
    from functools import partial

    from pytest_dhi_cilium.cluster import waiting

    # Poll without really sleeping: the fake cluster changes on every observation.
    monkeypatch.setattr(install, "wait_for", partial(waiting.wait_for, sleep=lambda s: None))

    def make(kube=None, helm=None, nodes=None, kind_cluster="fake", **kw):
        return install.ClusterEnv(settings(**kw), "kubeconfig", str(tmp_path), Progress(stream=io.StringIO()),
                                  kube or FakeKube(k8s), helm or FakeHelm(), nodes or FakeNodes(k8s),
                                  FakeKind() if kind_cluster == "fake" else kind_cluster)
    return make


def image_model(k8s, names=("docker.io/acme/dhi-cilium-operator-generic:1.18.3",), arch="amd64"):
    return SimpleNamespace(ref="acme/op:1.18.3", names=list(names), digest=k8s.MANIFEST_DIGEST, repo_digest="",
                           config_digest=k8s.CONFIG_DIGEST, platform=SimpleNamespace(architecture=arch))


def test_install_waits_until_converged_then_observes_deeply(k8s, env):
    pending = k8s.snapshot(daemonset=k8s.daemonset(ready=0, available=0), nodes=[k8s.node(ready=False)])
    e = env(kube=FakeKube(k8s, pending, k8s.snapshot()))
    ref = parse_reference("docker.io/acme/dhi-cilium-operator-generic:1.18.3")
    installed = install.install_target(e, ref, image_model(k8s))
    assert e.kind.loaded == ["docker.io/acme/dhi-cilium-operator-generic:1.18.3"]
    assert e.helm.calls == [("install", "docker.io/acme/dhi-cilium-operator-generic:1.18.3", "1.18.3")]
    assert e.release_installed and installed.chart_version == "1.18.3"
    snap = installed.snapshot
    assert snap.waited.startswith("converged after") and "settle window: held" in snap.waited
    assert [h.status for h in snap.healthz] == [200] and [u.uid for u in snap.users] == [65532]
    assert snap.node_images[0].id == k8s.CONFIG_DIGEST
    assert any("Leading the operator HA deployment" in d for d in snap.diagnostics)
    assert snap.diagnostics[-1].startswith("helm get values cilium:")
    assert installed.image.name == "docker.io/acme/dhi-cilium-operator-generic:1.18.3"
    assert installed.upgrade is None


def test_a_digest_reference_is_loaded_and_installed_by_its_tag(k8s, env):
    e = env()
    installed = install.install_target(e, parse_reference("acme/op@sha256:" + "a1" * 32),
                                       image_model(k8s, names=["acme/op:1.18.3"]))
    assert e.kind.loaded == ["acme/op:1.18.3"] and installed.image.name == "acme/op:1.18.3"


GOPS_FATAL = 'time="2025-06-12T11:39:30.513Z" level=fatal msg="failed to start: mkdir /home: permission denied"'


def test_a_crashlooping_operator_stops_the_wait_and_its_window_never_starts(k8s, env):
    crashing = k8s.snapshot(pods=[k8s.crashlooping(k8s.operator_pod(), restarts=3)],
                            deployment=k8s.deployment(ready=0, available=0, available_cond="False"))
    e = env(kube=FakeKube(k8s, crashing, previous_log=GOPS_FATAL))
    installed = install.install_target(e, parse_reference("acme/op:1.18.3"), image_model(k8s))
    snap = installed.snapshot
    assert snap.waited.startswith("stopped after 0s: pod kube-system/cilium-operator-6d8c7b9f5-x2k4q: "
                                  "container cilium-operator CrashLoopBackOff after 3 restart(s)")
    assert snap.settle_observed.outcome == "not started"
    assert snap.settle_observed.detail.startswith(f"the operator cannot recover: pod {k8s.POD}: container "
                                                  "cilium-operator CrashLoopBackOff after 3 restart(s)")
    # the verdict's data: the exited container's log, and the current one from its start
    assert snap.previous_logs == {k8s.POD: GOPS_FATAL}
    assert "Leading the operator HA deployment" in snap.operator_logs[k8s.POD]
    assert (False, None, install.LOG_HEAD_BYTES) in e.kube.log_reads and (True, 100, None) in e.kube.log_reads
    verdict = check.operator_healthy(snap)
    assert verdict.message.startswith(f"pod {k8s.POD}: CrashLoopBackOff, 3 restart(s), last exit 1 (Error) at "
                                      '2025-06-12T11:39:31Z: level=fatal msg="failed to start: mkdir /home: '
                                      'permission denied"')


def _agent_cannot_pull(k8s):
    return k8s.snapshot(agent_pods=[k8s.agent_pull_failing(k8s.agent_pod())], nodes=[k8s.node(ready=False)],
                        daemonset=k8s.daemonset(ready=0, available=0))


def test_an_agent_that_cannot_pull_its_image_stops_the_wait_with_its_cause(k8s, env):
    snap = install.deploy(env(kube=FakeKube(k8s, _agent_cannot_pull(k8s))), "acme/op:1.18.3", "1.18.3")
    assert snap.waited.startswith(f"stopped waiting for the agents: agent pod {k8s.AGENT_POD}: init container "
                                  f"config waiting ErrImagePull: {k8s.PULL_NO_SUCH_HOST}; the operator's rollout "
                                  "converged after 0s; operator settle window: held")


def test_a_hopeless_agent_does_not_end_the_wait_for_the_operator(k8s, env, fake_time):
    """Seen live: the agent's image could not be pulled while the operator's pod was still Pending
    (an upgrade's new pod too); the operator is still waited for, then watched for its window."""
    agent_down = _agent_cannot_pull(k8s)
    pending = copy.deepcopy(agent_down)
    pending.pods = [k8s.operator_pod(ready=False)]
    e = env(kube=FakeKube(k8s, *[pending] * 4, agent_down), timeout=60, settle=30)
    snap = install.deploy(e, "acme/op:1.18.3", "1.18.3")
    assert "; the operator's rollout converged after 8s; operator settle window: held 30s" in snap.waited
    verdict = check.operator_healthy(snap)
    assert verdict.ok, verdict.explain()
    assert not check.cilium_ready(snap).ok


def test_the_agents_diagnostics_are_gathered_apart_from_the_operators(k8s, env):
    snap = install.observe_deep(env(), _agent_cannot_pull(k8s), "acme/op:1.18.3")
    assert snap.agent_diagnostics == [
        f"events of pod {k8s.AGENT_POD}:\n  (none)",
        f"pod {k8s.AGENT_POD} init container config has not started (waiting ErrImagePull): no logs",
        *(f"pod {k8s.AGENT_POD} init container {c} has not started (waiting PodInitializing): no logs"
          for c in k8s.AGENT_INITS[1:]),
        f"pod {k8s.AGENT_POD} container cilium-agent has not started (waiting PodInitializing): no logs"]
    assert any("helm get values" in d for d in snap.diagnostics)  # the operator's stay apart


def test_a_restart_in_the_settle_window_is_recorded(k8s, env):
    again = copy.deepcopy(k8s.operator_pod())
    again["status"]["containerStatuses"][0]["restartCount"] = 1
    e = env(kube=FakeKube(k8s, k8s.snapshot(), k8s.snapshot(pods=[again])), settle=30)
    snap = install.deploy(e, "acme/op:1.18.3", "1.18.3")
    assert snap.settle_observed.outcome == "broke"
    assert snap.settle_observed.detail == f"pod {k8s.POD}: container cilium-operator restarted 1 time(s)"
    assert "operator settle window: broke after 0s from " in snap.waited
    assert snap.pods[0]["status"]["containerStatuses"][0]["restartCount"] == 1


def test_an_operator_pod_gone_in_the_settle_window_breaks_it(k8s, env):
    e = env(kube=FakeKube(k8s, k8s.snapshot(), k8s.snapshot(pods=[])), settle=30)
    seen = install.deploy(e, "acme/op:1.18.3", "1.18.3").settle_observed
    assert (seen.outcome, seen.detail) == ("broke", "no pod of Deployment cilium-operator to watch")


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.fixture
def fake_time(env, monkeypatch):
    """The rollout wait and the settle window on a clock that moves only when they sleep."""
    from functools import partial

    from pytest_dhi_cilium.cluster import waiting

    clock = FakeClock()
    monkeypatch.setattr(install, "wait_for", partial(waiting.wait_for, clock=clock, sleep=clock.sleep))
    monkeypatch.setattr(install, "hold_for", partial(waiting.hold_for, clock=clock, sleep=clock.sleep))
    return clock


@pytest.fixture
def agent_never_ready(k8s):
    """The issue's live run: the agent's image cannot be pulled; the operator turns Ready at 10s."""
    agent_down = k8s.daemonset(ready=0, available=0)
    starting = k8s.snapshot(pods=[k8s.operator_pod(ready=False)], daemonset=agent_down,
                            deployment=k8s.deployment(ready=0, available=0, available_cond="False"))
    return SimpleNamespace(starting=starting, ready=k8s.snapshot(daemonset=agent_down))


def test_an_operator_ready_just_before_the_rollout_deadline_is_watched_for_the_whole_window(
        k8s, env, fake_time, agent_never_ready):
    # observations every 2s: not Ready at 0..8s, Ready at 10s, when the 10s rollout wait gives up
    e = env(kube=FakeKube(k8s, *[agent_never_ready.starting] * 5, agent_never_ready.ready), timeout=10, settle=30)
    snap = install.deploy(e, "acme/op:1.18.3", "1.18.3")
    assert snap.waited.startswith("gave up after 10s; still pending: DaemonSet kube-system/cilium: numberReady 0")
    assert (snap.settle_observed.outcome, snap.settle_observed.observed) == ("held", 30.0)
    assert fake_time.now == 40.0  # the window was held in full after the wait
    verdict = check.operator_healthy(snap)
    assert verdict.ok, verdict.explain()
    assert "Ready with no restart, watched 30s from " in verdict.message
    assert not check.cilium_ready(snap).ok


def test_an_operator_restarting_while_the_agent_never_gets_ready_fails_its_window(
        k8s, env, fake_time, agent_never_ready):
    restarted = copy.deepcopy(agent_never_ready.ready)
    restarted.pods[0]["status"]["containerStatuses"][0]["restartCount"] = 1
    # the wait observes 6 times (0..10s), the window 3 times (0..4s) before the restart shows at 6s
    e = env(kube=FakeKube(k8s, *[agent_never_ready.ready] * 9, restarted), timeout=10, settle=30)
    snap = install.deploy(e, "acme/op:1.18.3", "1.18.3")
    assert (snap.settle_observed.outcome, snap.settle_observed.observed) == ("broke", 6.0)
    assert check.operator_healthy(snap).message.startswith(
        f"settle window broke after 6s of 30s: pod {k8s.POD}: container cilium-operator restarted 1 time(s)")


def test_looks_at_an_unreadable_api_server_in_the_window_are_counted(k8s, env, fake_time):
    unreadable = check.Snapshot(k8s.NS, k8s.NOW, api_error="MaxRetryError: connection refused")
    # the wait converges at its first look; the window looks 16 times (0..30s), the 2nd and 3rd see nothing
    e = env(kube=FakeKube(k8s, k8s.snapshot(), k8s.snapshot(), unreadable, unreadable, k8s.snapshot()), settle=30)
    seen = install.deploy(e, "acme/op:1.18.3", "1.18.3").settle_observed
    assert (seen.outcome, seen.looks, seen.unreadable) == ("held", 16, 2)
    assert seen.describe().endswith(", API server unreadable at 2 of 16 looks")


def test_a_window_ending_on_an_unreadable_look_is_judged_on_the_last_readable_one(k8s, env, fake_time):
    unreadable = check.Snapshot(k8s.NS, k8s.NOW, api_error="MaxRetryError: connection refused")
    # the wait converges at its first look; the window looks at 0s (readable) and 2s (unreadable)
    e = env(kube=FakeKube(k8s, k8s.snapshot(), k8s.snapshot(), unreadable), settle=2)
    snap = install.deploy(e, "acme/op:1.18.3", "1.18.3")
    seen = snap.settle_observed
    assert (seen.outcome, seen.looks, seen.unreadable) == ("held", 2, 1)
    assert not snap.api_error and snap.deployment is not None and snap.pods
    verdict = check.operator_healthy(snap)
    assert verdict.ok, verdict.explain()  # not "Deployment cilium-operator does not exist"


def test_no_version_in_the_tag_asks_for_the_option(k8s, env):
    with pytest.raises(install.InstallError, match=r"no operator version in its tag\(s\) \(latest\).*--dhi-cilium-version"):
        install.install_target(env(), parse_reference("acme/op:latest"), image_model(k8s, names=["acme/op:latest"]))


def test_helm_failure_is_an_install_error_and_still_uninstalled_on_byo(k8s, env):
    e = env(helm=FakeHelm(fail_for=("acme/op:1.18.3",)), kind_cluster=None, byo_kubeconfig="/k")
    with pytest.raises(install.InstallError, match="Error: pulling acme/op:1.18.3"):
        install.install_target(e, parse_reference("acme/op:1.18.3"), image_model(k8s, names=["acme/op:1.18.3"]))
    assert e.release_installed


def test_byo_cluster_with_an_existing_cilium_release_is_refused(k8s, env):
    e = env(helm=FakeHelm(exists=True), kind_cluster=None, byo_kubeconfig="/k")
    with pytest.raises(install.InstallError, match="a helm release 'cilium' already exists in kube-system"):
        install.install_target(e, parse_reference("acme/op:1.18.3"), image_model(k8s))
    assert e.helm.calls == []


def test_byo_cluster_without_node_access_uses_the_kubelet_user_or_says_why_not(k8s, env):
    pod = k8s.operator_pod(uid=65532)
    e = env(kube=FakeKube(k8s, k8s.snapshot(pods=[pod])), nodes=FakeNodes(k8s, kind_node=False),
            kind_cluster=None, byo_kubeconfig="/k")
    snap = install.install_target(e, parse_reference("registry.example/acme/op@sha256:" + "a1" * 32),
                                  image_model(k8s)).snapshot
    assert [(u.uid, u.source, u.observed) for u in snap.users] == [
        (65532, "pod status containerStatuses[].user (the runtime's configured user, reported by the kubelet)", False)]
    assert snap.healthz[0].method == "pod proxy" and snap.node_images == []
    e = env(nodes=FakeNodes(k8s, kind_node=False), kind_cluster=None, byo_kubeconfig="/k")
    snap = install.install_target(e, parse_reference("acme/op:1.18.3"), image_model(k8s)).snapshot
    assert snap.users == []
    assert snap.users_unobservable.startswith(
        f"{k8s.POD}: node {k8s.NODE} is not a kind or k3d node container on this host (docker inspect {k8s.NODE}: "
        f"Error: No such object: {k8s.NODE}) and its kubelet reports no containerStatuses[].user (kubelet ?, "
        "runtime containerd://2.1.1, status.features.supplementalGroupsPolicy absent)")


def test_upgrade_installs_upstream_first_then_the_image_under_test(k8s, env, monkeypatch):
    upstream_pod = k8s.operator_pod("cilium-operator-5f4b8c6d7-u1p2s", image=k8s.UPSTREAM,
                                    image_id=f"quay.io/cilium/operator-generic@{k8s.OLD_DIGEST}")
    before = k8s.snapshot(pods=[upstream_pod], all_pods=[upstream_pod], deployment=k8s.deployment(generation=1, observed=1))
    e = env(kube=FakeKube(k8s, before, k8s.snapshot()), upgrade_from="quay.io/cilium/operator-generic:v1.17.5")
    e.release_installed = True  # a previous image's install: the upgrade starts from scratch
    monkeypatch.setattr(install.subprocess, "run", lambda *a, **kw: SimpleNamespace(returncode=1))  # not in local Docker
    installed = install.install_target(e, parse_reference("acme/op:1.18.3"), image_model(k8s, names=["acme/op:1.18.3"]))
    assert e.helm.calls == [("uninstall",), ("install", "quay.io/cilium/operator-generic:v1.17.5", "1.17.5"),
                            ("install", "acme/op:1.18.3", "1.18.3")]
    assert installed.upgrade.before.pods[0]["spec"]["containers"][0]["image"] == k8s.UPSTREAM
    assert installed.upgrade.after is installed.snapshot
    assert installed.upgrade.before.settle_observed is None  # judged on its rollout only
    assert installed.snapshot.settle_observed.outcome == "held"
    assert e.kind.loaded == ["acme/op:1.18.3"]  # the upstream image is pulled by the node


def test_a_failed_upstream_install_is_recorded_and_the_image_under_test_still_installed(k8s, env):
    e = env(helm=FakeHelm(fail_for=("quay.io/cilium/operator-generic:v1.18.3",)),
            upgrade_from="quay.io/cilium/operator-generic:v1.18.3", node_cli_bin=None)
    installed = install.install_target(e, parse_reference("acme/op:1.18.3"), image_model(k8s))
    assert installed.upgrade.error.startswith("installing quay.io/cilium/operator-generic:v1.18.3 failed:")
    assert installed.snapshot.deployment is not None


def test_platform_mismatch_is_a_skip_reason(k8s, env):
    assert install.platform_skip_reason(env(), image_model(k8s, arch="arm64")) == (
        "acme/op:1.18.3: cannot run on this cluster: the image is linux/arm64; the cluster's nodes are amd64")
    assert install.platform_skip_reason(env(), image_model(k8s)) == ""


def test_byo_cluster_uninstalls_only_what_it_installed_even_on_interrupt(k8s, monkeypatch, tmp_path):
    helm = FakeHelm()
    monkeypatch.setattr(install, "_env", lambda s, kubeconfig, workdir, progress, kind=None:
                        install.ClusterEnv(s, kubeconfig, workdir, progress, None, helm, None))
    s = settings(byo_kubeconfig="/k")
    with install.open_cluster(s, Progress(stream=io.StringIO()), str(tmp_path)):
        pass
    assert helm.calls == []
    with pytest.raises(KeyboardInterrupt):
        with install.open_cluster(s, Progress(stream=io.StringIO()), str(tmp_path)) as env:
            env.release_installed = True
            raise KeyboardInterrupt
    assert helm.calls == [("uninstall",)]


# -- the kind cluster's life ----------------------------------------------------------------------


@pytest.fixture
def fake_kind(tmp_path, monkeypatch):
    """pytest-kind's KindCluster recorded, and a `kind` binary whose `get clusters` lists what exists."""
    import pytest_kind

    monkeypatch.chdir(tmp_path)
    events = []
    existing = tmp_path / "existing-clusters"
    existing.write_text("")
    kind_bin = tmp_path / "kind"
    kind_bin.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/kind-calls\n"
                        f"[ \"$1\" = get ] && cat {existing}\nexit 0\n")
    kind_bin.chmod(0o755)

    class Recorder(pytest_kind.KindCluster):
        def __init__(self, name, kubeconfig=None, image=None, kind_path=None, kubectl_path=None):
            super().__init__(name, kubeconfig, image, kind_path, kubectl_path)
            events.append(("init", str(kind_path), str(kubectl_path), image))

        def create(self, config_file=None):
            events.append(("create", open(config_file).read()))

        def delete(self):
            events.append(("delete",))

    monkeypatch.setattr(pytest_kind, "KindCluster", Recorder)
    return SimpleNamespace(events=events, existing=existing, bin=str(kind_bin), dir=tmp_path)


def test_kind_cluster_is_created_with_our_config_and_paths_and_deleted(fake_kind):
    s = settings(kind_bin=fake_kind.bin, kind_image="kindest/node:v1.33.1")
    with kind.kind_cluster(s, Progress(stream=io.StringIO())) as (cluster, created):
        assert created and cluster.path == fake_kind.dir.joinpath(".pytest-kind", "dhi").relative_to(fake_kind.dir)
    init, create, delete = fake_kind.events
    assert init == ("init", fake_kind.bin, "/bin/kubectl", "kindest/node:v1.33.1")  # never a download
    assert "disableDefaultCNI: true" in create[1] and "podSubnet: 10.244.0.0/16" in create[1]
    assert delete == ("delete",)
    assert (fake_kind.dir / ".pytest-kind" / "dhi" / "dhi-cilium.lock").exists()


def test_kind_cluster_is_deleted_after_ctrl_c_and_kept_when_asked(fake_kind):
    with pytest.raises(KeyboardInterrupt):
        with kind.kind_cluster(settings(kind_bin=fake_kind.bin), Progress(stream=io.StringIO())):
            raise KeyboardInterrupt
    assert fake_kind.events[-1] == ("delete",)
    out = io.StringIO()
    with kind.kind_cluster(settings(kind_bin=fake_kind.bin, keep_cluster=True), Progress(stream=out)):
        pass
    assert fake_kind.events[-1][0] == "create"
    assert "kept kind cluster dhi (--keep-cluster); delete it with `kind delete cluster --name dhi`" in out.getvalue()


def test_an_existing_kind_cluster_is_reused_and_left_alone(fake_kind):
    fake_kind.existing.write_text("other\ndhi\n")
    with kind.kind_cluster(settings(kind_bin=fake_kind.bin), Progress(stream=io.StringIO())) as (_, created):
        assert not created
    assert [e[0] for e in fake_kind.events] == ["init", "create"]  # create() reuses; no delete
    calls = (fake_kind.dir / "kind-calls").read_text()
    assert "export kubeconfig --name dhi --kubeconfig .pytest-kind/dhi/kubeconfig" in calls


def test_a_failing_kind_create_is_cleaned_up(fake_kind, monkeypatch):
    import pytest_kind

    def boom(self, config_file=None):
        raise subprocess.CalledProcessError(1, [fake_kind.bin, "create", "cluster"])

    monkeypatch.setattr(pytest_kind.KindCluster, "create", boom)
    with pytest.raises(kind.ClusterError, match=r"`kind create cluster --name dhi` failed \(exit 1\)"):
        with kind.kind_cluster(settings(kind_bin=fake_kind.bin), Progress(stream=io.StringIO())):
            pass
    assert fake_kind.events[-1] == ("delete",)
