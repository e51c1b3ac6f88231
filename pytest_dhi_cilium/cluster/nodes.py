"""Looking inside kind nodes: a kind node is a container on this host (label
``io.x-k8s.kind.cluster``), running containerd, crictl, curl and nsenter. Through it we read what
the API cannot tell: the operator process's real UID, /healthz bound to 127.0.0.1 in the pod's
network namespace, and what the node's runtime holds under the image name.

Parsers are pure; ``NodeShell`` runs ``docker exec`` (or podman/nerdctl, kind's other providers).
"""

from __future__ import annotations

import json
import subprocess

from ..checks.cluster import (Healthz, NodeImage, ProcessUser, container_spec, container_status,
                              pod_name)

KIND_LABEL = "io.x-k8s.kind.cluster"


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
        return subprocess.run([self.cli, "exec", node, *cmd], capture_output=True, text=True,
                              timeout=self.timeout)

    def is_kind_node(self, node: str) -> bool:
        if not self.cli or not node:
            return False
        try:
            done = subprocess.run([self.cli, "inspect", "--format",
                                   f'{{{{ index .Config.Labels "{KIND_LABEL}" }}}}', node],
                                  capture_output=True, text=True, timeout=self.timeout)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0 and done.stdout.strip() not in ("", "<no value>")

    def process(self, pod: dict) -> tuple[int | None, ProcessUser]:
        """The operator container's host pid and the UID/GID its process runs as."""
        name, node = pod_name(pod), (pod.get("spec") or {}).get("nodeName", "")
        cid = container_id((container_status(pod) or {}).get("containerID", ""))
        if not cid:
            return None, ProcessUser(name, None, None, "no containerID in the pod status")
        inspected = self._exec(node, "crictl", "inspect", "--output", "json", cid)
        if inspected.returncode != 0:
            return None, ProcessUser(name, None, None, f"crictl inspect on {node} failed: {inspected.stderr.strip()[:200]}")
        pid, spec_uid, spec_gid = parse_crictl_inspect(inspected.stdout)
        spec_line = f"OCI spec process.user of container {cid[:12]} on {node}: {spec_uid}:{spec_gid}"
        if pid is None:
            return None, ProcessUser(name, spec_uid, spec_gid, f"OCI spec (no running process) on {node}", (spec_line,))
        status = self._exec(node, "cat", f"/proc/{pid}/status")
        ids = parse_proc_ids(status.stdout) if status.returncode == 0 else {}
        if "Uid" not in ids or "Gid" not in ids:
            return pid, ProcessUser(name, spec_uid, spec_gid, f"OCI spec ({node}: /proc/{pid}/status unreadable)", (spec_line,))
        lines = (spec_line, f"/proc/{pid}/status on {node}: Uid {ids['Uid']} Gid {ids['Gid']} (real, effective, saved, fs)")
        return pid, ProcessUser(name, ids["Uid"][1], ids["Gid"][1], f"/proc/{pid}/status on node {node}", lines,
                                observed=True)

    def healthz(self, pod: dict, pid: int) -> Healthz:
        node, url = (pod.get("spec") or {}).get("nodeName", ""), healthz_url(pod)
        done = self._exec(node, "nsenter", "--target", str(pid), "--net",
                          "curl", "-sS", "--max-time", "5", "-w", "\n%{http_code}", url)
        status, body = parse_curl(done.stdout)
        error = "" if status else (done.stderr.strip()[:200] or f"curl exit {done.returncode}")
        return Healthz(pod_name(pod), f"node netns ({node}, pid {pid})", url, status, body.strip(), error)

    def image(self, node: str, name: str) -> NodeImage:
        done = self._exec(node, "crictl", "inspecti", "--output", "json", name)
        if done.returncode != 0:
            return NodeImage(node, name, "", error=f"crictl inspecti {name} on {node}: {done.stderr.strip()[:200]}")
        return parse_inspecti(done.stdout, node, name)
