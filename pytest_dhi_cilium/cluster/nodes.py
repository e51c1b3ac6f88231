"""Looking inside node containers: a kind node (label ``io.x-k8s.kind.cluster``) or a k3d node
(k3s in Docker, labels ``k3d.cluster`` and ``k3d.role``) is a container on this host whose name
is the Kubernetes node name (both set the container's hostname to it, and the kubelet names the
node after the hostname). Through it we read what the API cannot tell: the operator process's
real UID, /healthz bound to 127.0.0.1 in the pod's network namespace, and what the node's
runtime holds under the image name.

The tools differ: kind's node image (Debian) has crictl, curl and nsenter; the k3s image is
``FROM scratch`` with k3s-root (k3s-io/k3s ``package/Dockerfile``, k3s-io/k3s-root
``scripts/package``): crictl is a symlink to the k3s multicall binary, nsenter is util-linux's,
and there is no curl — only busybox's wget (``CONFIG_WGET``, ``CONFIG_FEATURE_WGET_TIMEOUT``, no
HTTPS). So /healthz is fetched with curl, or with wget where curl is absent.

Parsers are pure; ``NodeShell`` runs ``docker exec`` (or podman/nerdctl, kind's other providers).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass

from ..checks.cluster import (Healthz, NodeImage, ProcessUser, container_spec, container_status,
                              pod_name)

KIND_LABEL = "io.x-k8s.kind.cluster"
K3D_CLUSTER_LABEL = "k3d.cluster"  # k3d-io/k3d pkg/types/types.go
K3D_ROLE_LABEL = "k3d.role"
K3D_NODE_ROLES = ("server", "agent")  # its "loadbalancer" and "registry" containers are no nodes
COMMAND_NOT_FOUND = 127  # nsenter's exit status when the program to run is not on the node


@dataclass(frozen=True)
class NodeContainer:
    """What this host's container engine knows under a Kubernetes node's name."""

    name: str
    provider: str  # "kind cluster dhi", "k3d cluster dev (server)"; "" when not a node container
    problem: str = ""  # why not, when provider is ""


def node_provider(labels: dict | None) -> str:
    """A container's labels -> which local cluster tool made it a node, or ""."""
    labels = labels or {}
    if labels.get(KIND_LABEL):
        return f"kind cluster {labels[KIND_LABEL]}"
    if labels.get(K3D_CLUSTER_LABEL) and labels.get(K3D_ROLE_LABEL) in K3D_NODE_ROLES:
        return f"k3d cluster {labels[K3D_CLUSTER_LABEL]} ({labels[K3D_ROLE_LABEL]})"
    return ""


def container_id(status_id: str) -> str:
    """``containerd://0123abcd...`` -> ``0123abcd...``."""
    return (status_id or "").split("://", 1)[-1]


def parse_crictl_inspect(text: str) -> tuple[int | None, int | None, int | None]:
    """``crictl inspect`` JSON -> (pid, OCI spec uid, gid): containerd's verbose ``info``."""
    info = (json.loads(text) or {}).get("info") or {}
    user = ((info.get("runtimeSpec") or {}).get("process") or {}).get("user") or {}
    return info.get("pid") or None, user.get("uid"), user.get("gid")


def parse_proc_ids(text: str) -> dict[str, list[int]]:
    """``/proc/<pid>/status`` -> {"Uid": [real, effective, saved, fs], "Gid": [...]}."""
    ids = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("Uid", "Gid"):
            ids[key] = [int(v) for v in rest.split()]
    return ids


def parse_curl(stdout: str) -> tuple[int | None, str]:
    """Output of ``curl -w '\\n%{http_code}'`` -> (status, body); 000 means no answer."""
    body, _, code = stdout.rpartition("\n")
    status = int(code) if code.strip().isdigit() else None
    return (status if status else None), body


def parse_wget(stdout: str, stderr: str) -> tuple[int | None, str]:
    """``wget -q -S -O -`` (busybox or GNU) -> (status, body): -S prints the response headers,
    ``  HTTP/1.1 200 OK``, on stderr; the body goes to stdout (busybox drops it on an error status)."""
    codes = re.findall(r"^\s*HTTP/\S+\s+(\d{3})\b", stderr, re.MULTILINE)
    return (int(codes[-1]) if codes else None), stdout


def http_clients(url: str) -> list[tuple[str, list[str]]]:
    """The GETs to try in the node, in order: curl (kind), then wget (busybox on k3s nodes)."""
    return [("curl", ["curl", "-sS", "--max-time", "5", "-w", "\n%{http_code}", url]),
            ("wget", ["wget", "-q", "-S", "-O", "-", "-T", "5", url])]


def parse_http_client(tool: str, stdout: str, stderr: str) -> tuple[int | None, str]:
    return parse_curl(stdout) if tool == "curl" else parse_wget(stdout, stderr)


def client_outcome(returncode: int, stderr: str) -> str:
    """What ``docker exec NODE nsenter --target PID --net CLIENT ...`` got to: "absent" (nsenter
    ran but the client is not on the node), "no nsenter" (nsenter failed or never ran: the
    client never ran either), or "ran" (the client's answer, whatever it was, is in its output)."""
    from_nsenter = stderr.lstrip().startswith("nsenter:")
    if returncode == COMMAND_NOT_FOUND and from_nsenter:
        return "absent"
    # curl and wget never exit 126/127: those are the engine's "could not run nsenter".
    return "no nsenter" if from_nsenter or returncode in (126, COMMAND_NOT_FOUND) else "ran"


def user_unobservable(pod: str, node: str, container: NodeContainer, node_object: dict | None) -> str:
    """Why no operator user could be read for ``pod``, and what would make it readable.

    containerStatuses[].user comes with KEP-3619 (feature gate SupplementalGroupsPolicy on the
    kubelet and API server: alpha, off, in 1.31-1.32; beta, on by default, in 1.33; GA in 1.35 —
    kubernetes pkg/features/kube_features.go) and a runtime that reports it: containerd 2.0+, CRI-O
    1.31+ (kubernetes.io "Configure a Security Context", Implementations); such a node says
    status.features.supplementalGroupsPolicy: true. Even then it is the configured user
    (containerd copies the OCI spec's process.user), not a live process's."""
    info = ((node_object or {}).get("status") or {}).get("nodeInfo") or {}
    supported = (((node_object or {}).get("status") or {}).get("features") or {}).get("supplementalGroupsPolicy")
    node_facts = (f"kubelet {info.get('kubeletVersion', '?')}, runtime {info.get('containerRuntimeVersion', '?')}, "
                  f"status.features.supplementalGroupsPolicy {'absent' if supported is None else supported}"
                  if node_object else "node object not read")
    return (f"{pod}: node {node or '?'} is not a kind or k3d node container on this host ({container.problem}) "
            f"and its kubelet reports no containerStatuses[].user ({node_facts}). To make the user readable, "
            "run against kind or k3d nodes in this host's container engine, or on nodes with kubelet 1.33+ "
            "(1.31-1.32: feature gate SupplementalGroupsPolicy=true) and containerd 2.0+ or CRI-O 1.31+, "
            "which report the configured user")


def parse_inspecti(text: str, node: str, name: str) -> NodeImage:
    status = (json.loads(text) or {}).get("status") or {}
    return NodeImage(node, name, status.get("id", ""), tuple(status.get("repoDigests") or ()))


def healthz_url(pod: dict) -> str:
    """Where the kubelet's readiness probe GETs /healthz (the chart: 127.0.0.1:9234 with
    hostNetwork), so the same request is made from inside the pod's network namespace."""
    probe = (container_spec(pod) or {}).get("readinessProbe", {}).get("httpGet") or {}
    host = probe.get("host") or (pod.get("status") or {}).get("podIP") or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    port = probe.get("port", 9234)
    return f"{(probe.get('scheme') or 'HTTP').lower()}://{host}:{port}{probe.get('path', '/healthz')}"


class NodeShell:
    def __init__(self, cli: str, timeout: float = 30):
        self.cli, self.timeout = cli, timeout

    def _exec(self, node: str, *cmd: str) -> subprocess.CompletedProcess:
        """A command on the node; a hang or a missing CLI is a failed command saying so, never
        an exception: node-side evidence is optional, the verdicts say what could not be read."""
        argv = [self.cli, "exec", node, *cmd]
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(argv, 124, "", f"{' '.join(cmd[:2])} timed out after {self.timeout:g}s")
        except OSError as exc:
            return subprocess.CompletedProcess(argv, 127, "", f"{self.cli}: {exc}")

    def node_container(self, node: str) -> NodeContainer:
        if not self.cli or not node:
            return NodeContainer(node, "", "no container engine CLI" if not self.cli else "no node name")
        try:
            done = subprocess.run([self.cli, "inspect", "--format", "{{json .Config.Labels}}", node],
                                  capture_output=True, text=True, timeout=self.timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return NodeContainer(node, "", f"{self.cli} inspect {node}: {exc}")
        if done.returncode != 0:
            return NodeContainer(node, "", f"{self.cli} inspect {node}: {done.stderr.strip()[:200]}")
        try:
            labels = json.loads(done.stdout or "null")
        except ValueError:
            labels = None
        provider = node_provider(labels if isinstance(labels, dict) else None)
        return NodeContainer(node, provider, "" if provider else
                             f"container {node} has neither label {KIND_LABEL} nor {K3D_CLUSTER_LABEL} "
                             f"with {K3D_ROLE_LABEL} server/agent")

    def process(self, pod: dict) -> tuple[int | None, ProcessUser]:
        """The operator container's host pid and the UID/GID its process runs as (observed), or,
        with no live process (a crash loop), the UID/GID its OCI spec configures."""
        name, node = pod_name(pod), (pod.get("spec") or {}).get("nodeName", "")
        cid = container_id((container_status(pod) or {}).get("containerID", ""))
        if not cid:
            return None, ProcessUser(name, None, None, "no containerID in the pod status")
        inspected = self._exec(node, "crictl", "inspect", "--output", "json", cid)
        if inspected.returncode != 0:
            return None, ProcessUser(name, None, None, f"crictl inspect on {node} failed: {inspected.stderr.strip()[:200]}")
        try:
            pid, spec_uid, spec_gid = parse_crictl_inspect(inspected.stdout)
        except (ValueError, AttributeError):  # not JSON, or not an object
            return None, ProcessUser(name, None, None, f"crictl inspect on {node} printed no JSON object: "
                                                       f"{inspected.stdout.strip()[:120]!r}")
        spec_line = f"OCI spec process.user of container {cid[:12]} on {node}: {spec_uid}:{spec_gid}"
        if pid is None:
            return None, ProcessUser(name, spec_uid, spec_gid,
                                     f"the OCI spec of container {cid[:12]} on {node} (crictl reports no running process)",
                                     (spec_line,))
        status = self._exec(node, "cat", f"/proc/{pid}/status")
        ids = parse_proc_ids(status.stdout) if status.returncode == 0 else {}
        if "Uid" not in ids or "Gid" not in ids:
            return pid, ProcessUser(name, spec_uid, spec_gid,
                                    f"the OCI spec of container {cid[:12]} on {node} (/proc/{pid}/status unreadable: "
                                    f"{(status.stderr.strip() or 'no Uid/Gid lines')[:120]})", (spec_line,))
        lines = (spec_line, f"/proc/{pid}/status on {node}: Uid {ids['Uid']} Gid {ids['Gid']} (real, effective, saved, fs)")
        return pid, ProcessUser(name, ids["Uid"][1], ids["Gid"][1], f"/proc/{pid}/status on node {node}", lines,
                                observed=True)

    def healthz(self, pod: dict, pid: int) -> Healthz:
        """GET /healthz from inside the pod's network namespace, with the first HTTP client the
        node has (kind: curl; k3d: busybox wget)."""
        node, url = (pod.get("spec") or {}).get("nodeName", ""), healthz_url(pod)
        absent = []
        for tool, argv in http_clients(url):
            done = self._exec(node, "nsenter", "--target", str(pid), "--net", *argv)
            outcome = client_outcome(done.returncode, done.stderr)
            if outcome == "absent":
                absent.append(f"{tool} ({done.stderr.strip()[:120]})")
                continue
            if outcome == "no nsenter":
                return Healthz(pod_name(pod), f"node netns ({node}, pid {pid})", url, None,
                               error=f"nsenter did not run {tool} (exit {done.returncode}): {done.stderr.strip()[:200]}")
            status, body = parse_http_client(tool, done.stdout, done.stderr)
            error = "" if status else (done.stderr.strip()[:200] or f"{tool} exit {done.returncode}")
            missing = f"; not on the node: {', '.join(absent)}" if absent else ""
            return Healthz(pod_name(pod), f"node netns ({node}, pid {pid}, {tool}{missing})", url, status,
                           body.strip(), error)
        return Healthz(pod_name(pod), f"node netns ({node}, pid {pid})", url, None,
                       error=f"no HTTP client ran on the node: {'; '.join(absent)}")

    def image(self, node: str, name: str) -> NodeImage:
        done = self._exec(node, "crictl", "inspecti", "--output", "json", name)
        if done.returncode != 0:
            return NodeImage(node, name, "", error=f"crictl inspecti {name} on {node}: {done.stderr.strip()[:200]}")
        try:
            return parse_inspecti(done.stdout, node, name)
        except (ValueError, AttributeError):  # not JSON, or not an object
            return NodeImage(node, name, "", error=f"crictl inspecti {name} on {node} printed no JSON object: "
                                                   f"{done.stdout.strip()[:120]!r}")
