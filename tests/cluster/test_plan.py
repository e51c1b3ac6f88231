"""The decisions before and around the cluster: helm arguments, the kind config, which name the
chart gets, and reading what the kind node reports."""

import json
import tarfile

import pytest
import yaml

from pytest_dhi_cilium.cluster import diagnostics, helm, kind, nodes
from pytest_dhi_cilium.image.reference import parse_reference


# -- helm -----------------------------------------------------------------------------------------


def test_install_args_default_chart_comes_from_the_cilium_repo():
    args = helm.install_args("/usr/bin/helm", chart="cilium/cilium", version="1.18.3", kubeconfig="/k/config",
                             image="acme/op:1.18.3", defaults_file="/w/defaults.yaml", timeout=600)
    assert args == ["/usr/bin/helm", "upgrade", "--install", "cilium", "cilium", "--repo", "https://helm.cilium.io",
                    "--version", "1.18.3", "--namespace", "kube-system", "--kubeconfig", "/k/config",
                    "--timeout", "600s", "--values", "/w/defaults.yaml",
                    "--set-string", "operator.image.override=acme/op:1.18.3"]


def test_user_values_and_sets_come_after_the_defaults_and_the_image_last():
    args = helm.install_args("helm", chart="./charts/cilium", version=None, kubeconfig="k", image="acme/op:1.18.3",
                             defaults_file="d.yaml", values_files=("mine.yaml",),
                             sets=("operator.replicas=2", "operator.image.override=sneaky"))
    assert "--repo" not in args and "--version" not in args
    assert args[4] == "./charts/cilium"
    assert args.index("d.yaml") < args.index("mine.yaml") < args.index("operator.replicas=2")
    assert args[-2:] == ["--set-string", "operator.image.override=acme/op:1.18.3"]


def test_default_values_are_the_lean_kind_install():
    assert helm.default_values() == {"operator": {"replicas": 1, "image": {"pullPolicy": "IfNotPresent"}},
                                     "ipam": {"mode": "kubernetes"}, "envoy": {"enabled": False}}


@pytest.mark.parametrize("explicit, tags, expected", [
    ("1.17.5", ["1.18.3"], "1.17.5"),
    (None, ["1.18.3-debian13"], "1.18.3"),
    (None, ["v1.18.3"], "1.18.3"),
    (None, ["latest", "1.18"], "~1.18.0"),
    (None, ["latest"], None),
    (None, [], None),
])
def test_chart_version(explicit, tags, expected):
    assert helm.chart_version(explicit, tags) == expected


def test_uninstall_and_values_args():
    assert helm.uninstall_args("helm", "k", 300) == ["helm", "uninstall", "cilium", "--namespace", "kube-system",
                                                     "--kubeconfig", "k", "--wait", "--timeout", "300s"]
    assert helm.get_values_args("helm", "k")[1:4] == ["get", "values", "cilium"]


def test_helm_runner_writes_the_defaults_file_and_reports_failures(tmp_path):
    fake = tmp_path / "helm"
    fake.write_text("#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/args\"\n"
                    "[ \"$1\" = upgrade ] && { echo 'Error: chart \"cilium\" version \"9.9.9\" not found' >&2; exit 1; }\n"
                    "exit 0\n")
    fake.chmod(0o755)
    runner = helm.Helm(str(fake), "kubeconfig", str(tmp_path), timeout=30)
    with pytest.raises(helm.HelmError, match=r'`upgrade --install cilium` failed \(exit 1\): Error: chart "cilium" '
                                             r'version "9.9.9" not found'):
        runner.install("acme/op:9.9.9", "cilium/cilium", "9.9.9", (), ())
    assert yaml.safe_load((tmp_path / "dhi-cilium-defaults.yaml").read_text()) == helm.default_values()
    assert runner.release_exists()  # `helm status` exit 0


# -- kind -----------------------------------------------------------------------------------------


def test_kind_config_disables_the_default_cni():
    config = kind.kind_config()
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert config["networking"] == {"disableDefaultCNI": True, "podSubnet": "10.244.0.0/16",
                                    "serviceSubnet": "10.245.0.0/16"}


@pytest.mark.parametrize("raw, names, loaded, expected", [
    ("acme/op:1.18.3", ["acme/op:1.18.3"], True, "acme/op:1.18.3"),
    ("registry.local:5000/acme/op:1.18.3", [], True, "registry.local:5000/acme/op:1.18.3"),
    # a digest reference is loaded and referenced by one of its tags
    ("acme/op@sha256:" + "a1" * 32, ["acme/op:1.18.3"], True, "acme/op:1.18.3"),
    ("acme/op", ["acme/op:latest"], True, "acme/op:latest"),
    # a BYO cluster pulls the reference as given
    ("acme/op@sha256:" + "a1" * 32, [], False, "acme/op@sha256:" + "a1" * 32),
    # archives: the name:tag they carry; a bare OCI ref.name tag is no name
    ("docker-archive:/x/op.tar", ["acme/op:1.18.3"], True, "acme/op:1.18.3"),
    ("oci-archive:/x/op.tar", ["1.18.3", "docker.io/acme/op:1.18.3"], True, "docker.io/acme/op:1.18.3"),
])
def test_in_cluster_name(raw, names, loaded, expected):
    assert kind.in_cluster_name(parse_reference(raw), names, loaded) == expected


def test_a_registry_image_is_referenced_by_the_judged_digest():
    """BYO cluster: the node pulls the manifest the image tier judged, whatever the tag says now."""
    digest = "sha256:" + "b2" * 32
    ref = parse_reference("docker://127.0.0.1:5000/acme/op:1.18.3")
    assert kind.in_cluster_name(ref, [], loaded=False, digest=digest) == f"127.0.0.1:5000/acme/op@{digest}"
    assert kind.in_cluster_name(parse_reference("docker://acme/op:1"), [], False, digest) == \
        f"docker.io/acme/op@{digest}"
    with pytest.raises(kind.LoadError, match="pass --dhi-kubeconfig"):
        kind.in_cluster_name(ref, [], loaded=True, digest=digest)


def test_in_cluster_name_refuses_what_a_node_cannot_find():
    with pytest.raises(kind.LoadError, match=r"carries no name:tag .*\(names: 1.18.3\)"):
        kind.in_cluster_name(parse_reference("oci-archive:/x/op.tar"), ["1.18.3"], loaded=True)
    with pytest.raises(kind.LoadError, match="an archive cannot be pulled by a cluster"):
        kind.in_cluster_name(parse_reference("docker-archive:/x/op.tar"), ["acme/op:1"], loaded=False)


def test_archive_load_args_and_oci_layout_packing(tmp_path):
    assert kind.image_archive_args("/bin/kind", "dhi", "/x/op.tar") == [
        "/bin/kind", "load", "image-archive", "--name", "dhi", "/x/op.tar"]
    layout = tmp_path / "layout"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text("{}")
    packed = kind.tar_oci_layout(str(layout), str(tmp_path / "layout.tar"))
    with tarfile.open(packed) as tar:
        assert {"oci-layout", "index.json", "blobs/sha256"} <= set(tar.getnames())


# -- the kind node --------------------------------------------------------------------------------

CRICTL_INSPECT = {
    "status": {"id": "4f" * 32, "state": "CONTAINER_RUNNING",
               "image": {"image": "docker.io/acme/dhi-cilium-operator-generic:1.18.3"},
               "imageRef": "docker.io/acme/dhi-cilium-operator-generic@sha256:" + "d3" * 32},
    "info": {"sandboxID": "ab" * 32, "pid": 4242, "runtimeType": "io.containerd.runc.v2",
             "runtimeSpec": {"ociVersion": "1.2.0",
                             "process": {"user": {"uid": 65532, "gid": 65532, "additionalGids": [65532]},
                                         "args": ["cilium-operator-generic", "--config-dir=/tmp/cilium/config-map"]}}},
}
PROC_STATUS = """Name:\tcilium-operato
Umask:\t0022
State:\tS (sleeping)
Tgid:\t4242
Pid:\t4242
PPid:\t4201
Uid:\t65532\t65532\t65532\t65532
Gid:\t65532\t65532\t65532\t65532
Groups:\t65532
"""


def test_node_parsers():
    assert nodes.container_id("containerd://" + "4f" * 32) == "4f" * 32
    assert nodes.parse_crictl_inspect(json.dumps(CRICTL_INSPECT)) == (4242, 65532, 65532)
    assert nodes.parse_crictl_inspect(json.dumps({"status": {}})) == (None, None, None)
    assert nodes.parse_proc_ids(PROC_STATUS) == {"Uid": [65532] * 4, "Gid": [65532] * 4}
    assert nodes.parse_curl("ok\n200") == (200, "ok")
    assert nodes.parse_curl("\n000") == (None, "")
    record = nodes.parse_inspecti(json.dumps({"status": {
        "id": "sha256:" + "c0" * 32, "repoTags": ["docker.io/acme/op:1.18.3"],
        "repoDigests": ["docker.io/acme/op@sha256:" + "d3" * 32], "size": "33554432"}}), "node-1", "acme/op:1.18.3")
    assert record.id == "sha256:" + "c0" * 32 and record.repo_digests == ("docker.io/acme/op@sha256:" + "d3" * 32,)


def test_healthz_url_follows_the_readiness_probe(k8s):
    assert nodes.healthz_url(k8s.operator_pod()) == "http://127.0.0.1:9234/healthz"
    pod = k8s.operator_pod(host_network=False)
    del pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]["host"]  # the chart without hostNetwork
    assert nodes.healthz_url(pod) == "http://172.18.0.2:9234/healthz"
    pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]["host"] = "::1"
    assert nodes.healthz_url(pod) == "http://[::1]:9234/healthz"


@pytest.fixture
def fake_docker(tmp_path):
    """A `docker` that answers like a kind node for exec (crictl, cat, nsenter) and inspect."""
    script = tmp_path / "docker"
    (tmp_path / "crictl-inspect.json").write_text(json.dumps(CRICTL_INSPECT))
    (tmp_path / "proc-status").write_text(PROC_STATUS)
    script.write_text(f"""#!/bin/sh
d={tmp_path}
case "$1 $3 $4" in
  "inspect "*) echo '{{"io.x-k8s.kind.cluster": "dhi-cilium", "io.x-k8s.kind.role": "control-plane"}}' ;;
  "exec crictl inspect") cat $d/crictl-inspect.json ;;
  "exec cat /proc/4242/status") cat $d/proc-status ;;
  "exec nsenter --target") printf 'ok\\n200' ;;
  "exec crictl inspecti") echo '{{"status": {{"id": "sha256:c0", "repoDigests": []}}}}' ;;
  *) echo "unexpected: $*" >&2; exit 1 ;;
esac
""")
    script.chmod(0o755)
    return str(script)


def test_node_shell_reads_the_process_user_healthz_and_image(k8s, fake_docker):
    shell = nodes.NodeShell(fake_docker)
    pod = k8s.operator_pod()
    assert shell.node_container(k8s.NODE).provider == "kind cluster dhi-cilium"
    pid, user = shell.process(pod)
    assert (pid, user.uid, user.gid, user.observed) == (4242, 65532, 65532, True)
    assert user.source == f"/proc/4242/status on node {k8s.NODE}"
    assert any("OCI spec process.user" in e and "65532:65532" in e for e in user.evidence)
    health = shell.healthz(pod, pid)
    assert (health.status, health.body, health.url) == (200, "ok", "http://127.0.0.1:9234/healthz")
    assert health.method == f"node netns ({k8s.NODE}, pid 4242, curl)"
    assert shell.image(k8s.NODE, k8s.IMAGE).id == "sha256:c0"


def test_node_shell_failures_are_observations_not_crashes(k8s, tmp_path):
    failing = tmp_path / "docker"
    failing.write_text("#!/bin/sh\necho 'Error response from daemon: No such container' >&2\nexit 1\n")
    failing.chmod(0o755)
    shell = nodes.NodeShell(str(failing))
    gke = shell.node_container("gke-node-1")
    assert gke.provider == "" and "No such container" in gke.problem
    pid, user = shell.process(k8s.operator_pod())
    assert pid is None and user.uid is None and "No such container" in user.source
    assert "No such container" in shell.image("n", "x").error


# -- diagnostics ----------------------------------------------------------------------------------


def test_diagnostics_format_events_and_the_last_100_log_lines(k8s):
    events = [{"type": "Warning", "reason": "BackOff", "count": 7, "lastTimestamp": k8s.ts(5),
               "message": "Back-off restarting failed container cilium-operator in pod cilium-operator-x"},
              {"type": "Normal", "reason": "Pulled", "lastTimestamp": k8s.ts(90),
               "message": 'Container image "acme/op:1.18.3" already present on machine'}]
    text = diagnostics.format_events(k8s.operator_pod(), events)
    assert text.splitlines()[1].endswith('already present on machine')  # oldest first
    assert "Warning BackOff: Back-off restarting failed container" in text and "(x7)" in text
    logs = "\n".join(f"line {i}" for i in range(250))
    formatted = diagnostics.format_logs(k8s.operator_pod(), logs, previous=True)
    assert formatted.startswith(f"last 100 log lines of pod {k8s.POD} previous (crashed) container cilium-operator:")
    assert formatted.splitlines()[1] == "  line 150" and formatted.splitlines()[-1] == "  line 249"


def test_diagnostics_gather_adds_previous_logs_after_a_restart(k8s):
    class Kube:
        def events(self, pod):
            return []

        def logs(self, pod, container, previous=False):
            assert not previous  # the crashed container's log was read for the verdict already
            return "current run"

    class Helm:
        def values(self):
            return "operator:\n  replicas: 1\n"

    crashed = {k8s.POD: "previous run: mkdir /home: permission denied"}
    out = diagnostics.gather(Kube(), Helm(), [k8s.crashlooping(k8s.operator_pod())], crashed)
    assert any("previous (crashed) container" in o and "permission denied" in o for o in out)
    assert out[-1] == "helm get values cilium:\n  operator:\n    replicas: 1"


def test_agent_diagnostics_show_events_and_the_logs_of_containers_that_ran(k8s):
    calls = []

    class Kube:
        def events(self, pod):
            return [{"type": "Warning", "reason": "Failed", "lastTimestamp": k8s.ts(3),
                     "message": f'Failed to pull image "{k8s.AGENT_IMAGE}": {k8s.PULL_NO_SUCH_HOST}'}]

        def logs(self, pod, container, previous=False):
            calls.append((pod["metadata"]["name"], container, previous))
            return f"{container} {'previous' if previous else 'current'} run"

    crashing = k8s.agent_pod("cilium-c4ash")
    crashing["status"]["containerStatuses"][0].update(restartCount=2, state={"waiting": {"reason": "CrashLoopBackOff"}})
    crashing["status"]["conditions"][2]["status"] = "False"  # Ready
    out = diagnostics.gather_agents(Kube(), [k8s.agent_pod("cilium-ready"), crashing])
    assert calls == [("cilium-c4ash", "cilium-agent", False), ("cilium-c4ash", "cilium-agent", True)]
    assert out[0].startswith(f"events of pod {k8s.NS}/cilium-c4ash:") and "lookup quay.io: no such host" in out[0]
    assert out[1:] == [f"last 1 log lines of pod {k8s.NS}/cilium-c4ash container cilium-agent:\n  cilium-agent current run",
                       f"last 1 log lines of pod {k8s.NS}/cilium-c4ash previous (crashed) container cilium-agent:\n"
                       "  cilium-agent previous run"]
    calls.clear()
    failed_init = k8s.agent_pull_failing(k8s.agent_pod())  # then: config ran, mount-cgroup keeps failing
    inits = failed_init["status"]["initContainerStatuses"]
    inits[0]["state"] = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    inits[1].update(restartCount=3, state={"waiting": {"reason": "CrashLoopBackOff"}},
                    lastState={"terminated": {"exitCode": 32, "reason": "Error"}})
    out = diagnostics.gather_agents(Kube(), [failed_init])
    assert calls == [("cilium-x7k2p", "mount-cgroup", False), ("cilium-x7k2p", "mount-cgroup", True)]
    assert out[-1] == f"pod {k8s.AGENT_POD} container cilium-agent has not started (waiting PodInitializing): no logs"
    calls.clear()
    diagnostics.gather_agents(Kube(), [k8s.agent_pod()])  # every agent Ready (nodes may not be): all shown
    assert calls == [("cilium-x7k2p", "cilium-agent", False)]  # completed init containers did their job
    many = [k8s.agent_pull_failing(k8s.agent_pod(f"cilium-{i:05d}")) for i in range(5)]
    out = diagnostics.gather_agents(Kube(), many)
    assert sum(o.startswith("events of pod") for o in out) == 3
    assert out[-1] == "(+2 more agent pod(s) like these, not shown)"
