"""Node containers beyond kind: k3d nodes (k3s in Docker: crictl as a k3s symlink, no curl, busybox
wget), a crash loop's configured user, and what a cluster without node access is told."""

import json

import pytest

from pytest_dhi_cilium.checks import cluster as check
from pytest_dhi_cilium.checks.users import RuntimeUser
from pytest_dhi_cilium.cluster import nodes

K3D_NODE = "k3d-dev-server-0"
K3D_LABELS = {"app": "k3d", "k3d.cluster": "dev", "k3d.role": "server", "k3d.server.init": "false",
              "k3d.version": "v5.8.3"}
# What busybox 1.35 `wget -q -S -O - -T 5 URL` prints (stderr, then stdout), seen on a local server.
BUSYBOX_200 = ("  HTTP/1.0 200 OK\n  Server: BaseHTTP/0.6 Python/3.11.7\n  Content-Length: 2\n  \n", "ok")
BUSYBOX_503 = ("  HTTP/1.0 503 Service Unavailable\n"
               "wget: server returned error: HTTP/1.0 503 Service Unavailable\n", "")
BUSYBOX_REFUSED = ("wget: can't connect to remote host (127.0.0.1): Connection refused\n", "")
GNU_503 = ("  HTTP/1.0 503 Service Unavailable\n  Server: BaseHTTP/0.6 Python/3.11.7\n  Content-Length: 9\n", "")


def test_kind_and_k3d_node_containers_are_recognised_by_their_labels():
    assert nodes.node_provider({"io.x-k8s.kind.cluster": "dhi", "io.x-k8s.kind.role": "control-plane"}) == \
        "kind cluster dhi"
    assert nodes.node_provider(K3D_LABELS) == "k3d cluster dev (server)"
    assert nodes.node_provider({**K3D_LABELS, "k3d.role": "agent"}) == "k3d cluster dev (agent)"
    assert nodes.node_provider({**K3D_LABELS, "k3d.role": "loadbalancer"}) == ""  # k3d's proxy, not a node
    assert nodes.node_provider({"maintainer": "someone"}) == "" and nodes.node_provider(None) == ""


@pytest.mark.parametrize("stderr, stdout, status, body", [
    (*BUSYBOX_200, 200, "ok"), (*BUSYBOX_503, 503, ""), (*BUSYBOX_REFUSED, None, ""), (*GNU_503, 503, "")])
def test_wget_answers_are_read_from_its_response_headers(stderr, stdout, status, body):
    assert nodes.parse_wget(stdout, stderr) == (status, body)


@pytest.mark.parametrize("returncode, stderr, outcome", [
    (127, "nsenter: failed to execute curl: No such file or directory", "absent"),  # util-linux
    (127, "nsenter: can't execute 'wget': No such file or directory", "absent"),  # busybox
    (1, "nsenter: can't open '/proc/1/ns/net': Permission denied", "no nsenter"),  # no CAP_SYS_PTRACE
    (126, 'OCI runtime exec failed: exec failed: unable to start container process: exec: "nsenter": '
          "executable file not found in $PATH: unknown", "no nsenter"),  # Docker 20.10
    (7, "curl: (7) Failed to connect to 127.0.0.1 port 9234 after 0 ms: Couldn't connect to server", "ran"),
    (1, "wget: can't connect to remote host (127.0.0.1): Connection refused", "ran"),
])
def test_what_kept_the_http_client_from_answering_is_told_apart(returncode, stderr, outcome):
    """Messages as seen from Docker 20.10 and a util-linux/busybox nsenter in a container."""
    assert nodes.client_outcome(returncode, stderr) == outcome


@pytest.fixture
def k3d_docker(tmp_path):
    """A `docker` answering like a k3d node: k3d labels, crictl (k3s), cat, nsenter — no curl on
    the node (nsenter exits 127), busybox wget instead. CRICTL_PID=0 makes a crash loop."""
    (tmp_path / "labels.json").write_text(json.dumps(K3D_LABELS))
    (tmp_path / "inspect.json").write_text(json.dumps({"info": {
        "pid": 4242, "runtimeSpec": {"process": {"user": {"uid": 65532, "gid": 65532}}}}}))
    (tmp_path / "crashed.json").write_text(json.dumps({"info": {
        "pid": 0, "runtimeSpec": {"process": {"user": {"uid": 65532, "gid": 65532}}}}}))
    (tmp_path / "wget.err").write_text(BUSYBOX_200[0])
    script = tmp_path / "docker"
    script.write_text(f"""#!/bin/sh
d={tmp_path}
case "$1 $3 $4 $7" in
  "inspect "*) cat $d/labels.json ;;
  "exec crictl inspect "*) if [ -n "$CRICTL_PID" ]; then cat $d/crashed.json; else cat $d/inspect.json; fi ;;
  "exec cat /proc/4242/status "*) printf 'Uid:\\t65532\\t65532\\t65532\\t65532\\nGid:\\t65532\\t65532\\t65532\\t65532\\n' ;;
  "exec nsenter --target curl") echo 'nsenter: failed to execute curl: No such file or directory' >&2; exit 127 ;;
  "exec nsenter --target wget") if [ -n "$NO_WGET" ]; then echo "nsenter: can't execute 'wget': No such file or directory" >&2; exit 127; fi
                                cat $d/wget.err >&2; printf ok ;;
  *) echo "unexpected: $*" >&2; exit 1 ;;
esac
""")
    script.chmod(0o755)
    return str(script)


def k3d_pod(k8s):
    pod = k8s.operator_pod()
    pod["spec"]["nodeName"] = K3D_NODE
    return pod


def test_a_k3d_node_gives_the_process_user_and_healthz_through_busybox_wget(k8s, k3d_docker):
    shell = nodes.NodeShell(k3d_docker)
    assert shell.node_container(K3D_NODE) == nodes.NodeContainer(K3D_NODE, "k3d cluster dev (server)")
    pid, user = shell.process(k3d_pod(k8s))
    assert (pid, user.uid, user.gid, user.observed) == (4242, 65532, 65532, True)
    health = shell.healthz(k3d_pod(k8s), pid)
    assert (health.status, health.body, health.error) == (200, "ok", "")
    assert health.method == (f"node netns ({K3D_NODE}, pid 4242, wget; not on the node: "
                             "curl (nsenter: failed to execute curl: No such file or directory))")


def test_a_node_with_no_http_client_says_what_it_tried(k8s, k3d_docker, monkeypatch):
    monkeypatch.setenv("NO_WGET", "1")
    health = nodes.NodeShell(k3d_docker).healthz(k3d_pod(k8s), 4242)
    assert health.status is None and health.method == f"node netns ({K3D_NODE}, pid 4242)"
    assert health.error == ("no HTTP client ran on the node: curl (nsenter: failed to execute curl: No such file "
                            "or directory); wget (nsenter: can't execute 'wget': No such file or directory)")


def test_an_nsenter_failure_is_not_blamed_on_the_http_client(k8s, tmp_path):
    docker = tmp_path / "docker"
    docker.write_text("#!/bin/sh\necho \"nsenter: can't open '/proc/4242/ns/net': Permission denied\" >&2\nexit 1\n")
    docker.chmod(0o755)
    health = nodes.NodeShell(str(docker)).healthz(k3d_pod(k8s), 4242)
    assert (health.status, health.method) == (None, f"node netns ({K3D_NODE}, pid 4242)")
    assert health.error == "nsenter did not run curl (exit 1): nsenter: can't open '/proc/4242/ns/net': Permission denied"


def test_a_crash_loop_yields_the_configured_user_and_the_verdict_says_so(k8s, k3d_docker, monkeypatch):
    monkeypatch.setenv("CRICTL_PID", "0")
    pid, user = nodes.NodeShell(k3d_docker).process(k3d_pod(k8s))
    assert pid is None and (user.uid, user.gid, user.observed) == (65532, 65532, False)
    assert user.source == f"the OCI spec of container 4f4f4f4f4f4f on {K3D_NODE} (crictl reports no running process)"
    nonroot = RuntimeUser("nonroot", 65532, 65532)
    verdict = check.operator_runtime_user(k8s.snapshot(users=[user]), nonroot)
    assert verdict.ok, verdict.explain()
    assert verdict.message.startswith("the operator container is configured to run as 65532:65532")
    assert "runs as" not in verdict.message


def test_without_node_access_the_message_names_what_would_make_the_user_readable(k8s):
    """The live run's node: k3s v1.21.2 with containerd 1.4 — no containerStatuses[].user."""
    k3s_node = k8s.node()
    k3s_node["status"]["nodeInfo"].update(kubeletVersion="v1.21.2+k3s1", containerRuntimeVersion="containerd://1.4.4-k3s2")
    gone = nodes.NodeContainer("node-1", "", "docker inspect node-1: Error: No such object: node-1")
    text = nodes.user_unobservable(k8s.POD, "node-1", gone, k3s_node)
    assert text.startswith(f"{k8s.POD}: node node-1 is not a kind or k3d node container on this host (docker inspect "
                           "node-1: Error: No such object: node-1) and its kubelet reports no containerStatuses[].user "
                           "(kubelet v1.21.2+k3s1, runtime containerd://1.4.4-k3s2, "
                           "status.features.supplementalGroupsPolicy absent)")
    assert "kubelet 1.33+ (1.31-1.32: feature gate SupplementalGroupsPolicy=true) and containerd 2.0+ or CRI-O 1.31+" \
        in text
    k3s_node["status"]["features"] = {"supplementalGroupsPolicy": True}
    assert "status.features.supplementalGroupsPolicy True" in nodes.user_unobservable(k8s.POD, "node-1", gone, k3s_node)
    assert "(node object not read)" in nodes.user_unobservable(k8s.POD, "node-1", gone, None)


def test_a_hanging_or_garbled_node_command_is_a_reading_that_failed_not_a_crash(k8s, tmp_path):
    """A wedged `docker exec` (killed at the timeout) and a crictl that prints no JSON: the user
    and the image record say what went wrong, and the run goes on."""
    docker = tmp_path / "docker"
    docker.write_text('#!/bin/sh\ncase "$3" in crictl) [ "$4" = inspect ] && exec sleep 30; echo "FATA[0000] oops" ;; esac\n')
    docker.chmod(0o755)
    shell = nodes.NodeShell(str(docker), timeout=0.5)
    pid, user = shell.process(k3d_pod(k8s))
    assert (pid, user.uid) == (None, None)
    assert user.source == f"crictl inspect on {K3D_NODE} failed: crictl inspect timed out after 0.5s"
    record = shell.image(K3D_NODE, "acme/op:1.18.3")
    assert record.error == f"crictl inspecti acme/op:1.18.3 on {K3D_NODE} printed no JSON object: 'FATA[0000] oops'"
