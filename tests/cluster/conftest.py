"""Shared helpers of the cluster-tier tests, reached through the ``k8s`` fixture: builders of
Kubernetes objects in the API's JSON shape (as ``kubectl get -o json`` prints them for a Cilium
install on a one-node kind cluster) so the checks are tested on what a real cluster returns and
on its failure states; a tiny docker-archive; fake executables; a fake API server."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import parse_qs, unquote, urlparse

import pytest

# pytester comes from pyproject's `addopts = "-p pytester"`: pytest refuses `pytest_plugins` in a
# conftest below the rootdir as soon as the whole suite runs (tests/cluster is found too late).

NOW = datetime(2025, 6, 12, 11, 40, 0, tzinfo=timezone.utc)
NODE = "dhi-cilium-control-plane"
NS = "kube-system"
CONFIG_DIGEST = "sha256:" + "c0" * 32
MANIFEST_DIGEST = "sha256:" + "a1" * 32
NODE_DIGEST = "sha256:" + "d3" * 32  # what containerd named the imported docker-archive
OLD_DIGEST = "sha256:" + "0d" * 32
POD = f"{NS}/cilium-operator-6d8c7b9f5-x2k4q"  # namespace/name of operator_pod()
IMAGE = "docker.io/acme/dhi-cilium-operator-generic:1.18.3"
UPSTREAM = "quay.io/cilium/operator-generic:v1.18.3"


def ts(seconds_ago: float = 0) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def deployment(*, generation=2, observed=2, replicas=1, ready=1, updated=1, available=1,
               status_replicas=None, available_cond="True") -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "cilium-operator", "namespace": NS, "generation": generation,
                     "labels": {"io.cilium/app": "operator", "name": "cilium-operator",
                                "app.kubernetes.io/part-of": "cilium"}},
        "spec": {"replicas": replicas,
                 "selector": {"matchLabels": {"io.cilium/app": "operator", "name": "cilium-operator"}}},
        "status": {
            "observedGeneration": observed, "replicas": replicas if status_replicas is None else status_replicas,
            "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": available,
            "conditions": [
                {"type": "Available", "status": available_cond,
                 "reason": "MinimumReplicasAvailable" if available_cond == "True" else "MinimumReplicasUnavailable",
                 "message": "Deployment has minimum availability." if available_cond == "True"
                 else "Deployment does not have minimum availability.",
                 "lastTransitionTime": ts(60), "lastUpdateTime": ts(60)},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": 'ReplicaSet "cilium-operator-6d8c7b9f5" has successfully progressed.',
                 "lastTransitionTime": ts(90), "lastUpdateTime": ts(60)},
            ]},
    }


def operator_pod(name="cilium-operator-6d8c7b9f5-x2k4q", *, image=IMAGE,
                 image_id=f"docker.io/acme/dhi-cilium-operator-generic@{NODE_DIGEST}",
                 restarts=0, ready=True, host_network=True, uid=None) -> dict:
    status = {
        "name": "cilium-operator", "image": image, "imageID": image_id, "ready": ready,
        "restartCount": restarts, "started": ready,
        "containerID": "containerd://" + "4f" * 32,
        "state": {"running": {"startedAt": ts(80)}},
        "lastState": {},
    }
    if uid is not None:
        status["user"] = {"linux": {"uid": uid, "gid": uid, "supplementalGroups": [uid]}}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "uid": "0f6c1b2a-" + name[-5:], "creationTimestamp": ts(90),
                     "labels": {"io.cilium/app": "operator", "name": "cilium-operator",
                                "pod-template-hash": "6d8c7b9f5"}},
        "spec": {
            "nodeName": NODE, "hostNetwork": host_network, "serviceAccountName": "cilium-operator",
            "containers": [{
                "name": "cilium-operator", "image": image, "imagePullPolicy": "IfNotPresent",
                "command": ["cilium-operator-generic"],
                "args": ["--config-dir=/tmp/cilium/config-map", "--debug=$(CILIUM_DEBUG)"],
                "readinessProbe": {"httpGet": {"host": "127.0.0.1", "path": "/healthz", "port": 9234,
                                               "scheme": "HTTP"},
                                   "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 5},
                "livenessProbe": {"httpGet": {"host": "127.0.0.1", "path": "/healthz", "port": 9234,
                                              "scheme": "HTTP"}, "initialDelaySeconds": 60},
            }],
        },
        "status": {
            "phase": "Running", "hostIP": "172.18.0.2", "podIP": "172.18.0.2", "startTime": ts(88),
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": ts(85)},
                {"type": "Initialized", "status": "True", "lastTransitionTime": ts(86)},
                {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": ts(75),
                 **({} if ready else {"reason": "ContainersNotReady",
                                      "message": "containers with unready status: [cilium-operator]"})},
                {"type": "ContainersReady", "status": "True" if ready else "False", "lastTransitionTime": ts(75)},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(90)},
            ],
            "containerStatuses": [status],
        },
    }


def crashlooping(pod: dict, restarts: int = 4) -> dict:
    """What the operator looks like when gops cannot write its config dir (cilium/cilium#40435)."""
    pod = copy.deepcopy(pod)
    cs = pod["status"]["containerStatuses"][0]
    cs.update(ready=False, started=False, restartCount=restarts,
              state={"waiting": {"reason": "CrashLoopBackOff",
                                 "message": f"back-off 1m20s restarting failed container=cilium-operator "
                                            f"pod={pod['metadata']['name']}_kube-system(0f6c1b2a)"}},
              lastState={"terminated": {"exitCode": 1, "reason": "Error", "startedAt": ts(30),
                                        "finishedAt": ts(29), "containerID": "containerd://" + "9e" * 32}})
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    ready.update(status="False", reason="ContainersNotReady",
                 message="containers with unready status: [cilium-operator]")
    return pod


AGENT_POD = f"{NS}/cilium-x7k2p"  # namespace/name of agent_pod()
AGENT_DIGEST = "sha256:" + "ba" * 32  # made up; the chart pins the agent image by its digest
AGENT_IMAGE = f"quay.io/cilium/cilium:v1.17.5@{AGENT_DIGEST}"
AGENT_INITS = ("config", "mount-cgroup", "apply-sysctl-overwrites", "mount-bpf-fs", "clean-cilium-state",
               "install-cni-binaries")  # the chart's init containers, in order
# What the kubelet (containerd CRI) puts in state.waiting.message when the registry's name does not resolve.
PULL_NO_SUCH_HOST = (f'rpc error: code = Unknown desc = failed to pull and unpack image "{AGENT_IMAGE}": '
                     f'failed to resolve reference "{AGENT_IMAGE}": failed to do request: Head '
                     f'"https://quay.io/v2/cilium/cilium/manifests/{AGENT_DIGEST}": '
                     "dial tcp: lookup quay.io: no such host")


def agent_pod(name="cilium-x7k2p", *, started_ago=90) -> dict:
    """A Ready agent pod of DaemonSet cilium: its init containers completed, cilium-agent running."""
    def status(container, state):
        return {"name": container, "image": AGENT_IMAGE, "imageID": f"quay.io/cilium/cilium@{AGENT_DIGEST}",
                "ready": "running" in state, "restartCount": 0, "started": "running" in state,
                "containerID": "containerd://" + "5a" * 32, "state": state, "lastState": {}}

    done = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": ts(started_ago - 5),
                           "finishedAt": ts(started_ago - 6), "containerID": "containerd://" + "6b" * 32}}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "generateName": "cilium-",
                     "labels": {"k8s-app": "cilium", "app.kubernetes.io/name": "cilium-agent",
                                "app.kubernetes.io/part-of": "cilium", "controller-revision-hash": "6f7b9c8d4",
                                "pod-template-generation": "1"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "cilium",
                                          "controller": True, "blockOwnerDeletion": True, "uid": "3c1d"}]},
        "spec": {"nodeName": NODE, "hostNetwork": True, "serviceAccountName": "cilium",
                 "initContainers": [{"name": c, "image": AGENT_IMAGE, "imagePullPolicy": "IfNotPresent"}
                                    for c in AGENT_INITS],
                 "containers": [{"name": "cilium-agent", "image": AGENT_IMAGE, "imagePullPolicy": "IfNotPresent",
                                 "command": ["cilium-agent"], "args": ["--config-dir=/tmp/cilium/config-map"],
                                 "terminationMessagePolicy": "FallbackToLogsOnError"}]},
        "status": {
            "phase": "Running", "hostIP": "172.18.0.2", "podIP": "172.18.0.2", "startTime": ts(started_ago),
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": ts(started_ago - 30)}
                           for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                                     "PodScheduled")],
            "initContainerStatuses": [status(c, done) for c in AGENT_INITS],
            "containerStatuses": [status("cilium-agent", {"running": {"startedAt": ts(started_ago - 30)}})],
        },
    }


def agent_pull_failing(pod: dict, reason="ErrImagePull", message=PULL_NO_SUCH_HOST) -> dict:
    """The agent as the live run left it (STATUS ``Init:ErrImagePull``): the first init container
    cannot pull the image, the others and cilium-agent wait their turn (PodInitializing)."""
    pod = copy.deepcopy(pod)
    init = {"waiting": {"reason": "PodInitializing"}}
    status = pod["status"]
    status["phase"] = "Pending"
    status.pop("podIP")
    for cs in status["initContainerStatuses"] + status["containerStatuses"]:
        cs.update(ready=False, started=False, imageID="", state=copy.deepcopy(init))
        cs.pop("containerID")
    status["initContainerStatuses"][0]["state"] = {"waiting": {"reason": reason, "message": message}}
    unready = {"Initialized": ("ContainersNotInitialized", f"containers with incomplete status: [{' '.join(AGENT_INITS)}]"),
               "Ready": ("ContainersNotReady", "containers with unready status: [cilium-agent]"),
               "ContainersReady": ("ContainersNotReady", "containers with unready status: [cilium-agent]")}
    for cond in status["conditions"]:
        if cond["type"] in unready:
            cond.update(status="False", reason=unready[cond["type"]][0], message=unready[cond["type"]][1])
    return pod


def lease(holder=f"{NODE}-kXq4tRbn2w", renewed_ago=3.0, duration=15, acquired_ago=70) -> dict:
    spec = {"leaseDurationSeconds": duration, "leaseTransitions": 0}
    if acquired_ago is not None:
        spec["acquireTime"] = (NOW - timedelta(seconds=acquired_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if holder is not None:
        spec["holderIdentity"] = holder
    if renewed_ago is not None:
        spec["renewTime"] = (NOW - timedelta(seconds=renewed_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "cilium-operator-resource-lock", "namespace": NS}, "spec": spec}


def crd(plural: str, established: bool = True, created_ago: float = 60) -> dict:
    """As the operator creates it (``created_ago`` seconds before NOW: 60 is by this run's operator)."""
    conditions = [{"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                   "message": "no conflicts found", "lastTransitionTime": ts(created_ago)}]
    conditions.append({"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                       "message": "the initial names have been accepted", "lastTransitionTime": ts(created_ago)}
                      if established else
                      {"type": "Established", "status": "False", "reason": "Installing",
                       "message": "the initial names have not been accepted", "lastTransitionTime": ts(1)})
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.cilium.io", "creationTimestamp": ts(created_ago),
                         "labels": {"io.cilium.k8s.crd.schema.version": "1.30.8"},
                         "managedFields": [
                             {"manager": "cilium-operator-generic", "operation": "Update",
                              "apiVersion": "apiextensions.k8s.io/v1", "time": ts(created_ago),
                              "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}, "f:spec": {}}},
                             {"manager": "kube-apiserver", "operation": "Update", "subresource": "status",
                              "apiVersion": "apiextensions.k8s.io/v1", "time": ts(created_ago),
                              "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}}]},
            "spec": {"group": "cilium.io", "names": {"plural": plural}, "scope": "Cluster"},
            "status": {"conditions": conditions}}


def all_crds(**overrides) -> dict:
    from pytest_dhi_cilium.checks.cluster import OPERATOR_CRDS

    crds = {p: crd(p) for p in OPERATOR_CRDS}
    crds.update(overrides)
    return crds


def daemonset(desired=1, ready=1, updated=1, available=1, generation=1, observed=1) -> dict:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "cilium", "namespace": NS, "generation": generation},
            "spec": {"selector": {"matchLabels": {"k8s-app": "cilium"}}},
            "status": {"desiredNumberScheduled": desired, "currentNumberScheduled": desired,
                       "numberReady": ready, "updatedNumberScheduled": updated,
                       "numberAvailable": available, "numberMisscheduled": 0,
                       "observedGeneration": observed}}


# What a Cilium 1.17 operator creates on its own (not helm's; `helm uninstall` leaves them): 11 CRDs.
RUN_CRDS = ("ciliumidentities", "ciliumnodes", "ciliumendpoints", "ciliumnetworkpolicies",
            "ciliumclusterwidenetworkpolicies", "ciliumpodippools", "ciliumcidrgroups", "ciliumlocalredirectpolicies",
            "ciliumloadbalancerippools", "ciliuml2announcementpolicies", "ciliumnodeconfigs")
# The operator's taint while an agent is scheduled but not running (Value "" is omitted in the JSON).
AGENT_NOT_READY = {"key": "node.cilium.io/agent-not-ready", "effect": "NoSchedule"}


def node(ready=True, arch="amd64", name=NODE, taints=None) -> dict:
    cond = ({"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}
            if ready else
            {"type": "Ready", "status": "False", "reason": "KubeletNotReady",
             "message": "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
                        "message:Network plugin returns error: cni plugin not initialized"})
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "spec": {"podCIDR": "10.244.0.0/24", **({"taints": taints} if taints is not None else {})},
            "status": {"conditions": [cond], "nodeInfo": {"architecture": arch, "operatingSystem": "linux",
                                                          "containerRuntimeVersion": "containerd://2.1.1"}}}


def snapshot(**overrides):
    from pytest_dhi_cilium.checks.cluster import Healthz, NodeImage, ProcessUser, SettleObservation, Snapshot

    pod = operator_pod()
    values = dict(
        deployment=deployment(), pods=[pod], all_pods=[pod], lease=lease(), crds=all_crds(),
        daemonset=daemonset(), agent_pods=[agent_pod()], nodes=[node()],
        healthz=[Healthz(f"{NS}/{pod['metadata']['name']}", "node netns", "http://127.0.0.1:9234/healthz", 200, "ok")],
        users=[ProcessUser(f"{NS}/{pod['metadata']['name']}", 65532, 65532, f"/proc/4242/status on node {NODE}",
                           observed=True)],
        node_images=[NodeImage(NODE, IMAGE, CONFIG_DIGEST, (f"docker.io/acme/dhi-cilium-operator-generic@{NODE_DIGEST}",))],
        settle=30.0, settle_observed=SettleObservation("held", 30.0, NOW - timedelta(seconds=31)),
        waited="converged after 1m12s; operator settle window: held 30s",
        diagnostics=["events of pod kube-system/cilium-operator-6d8c7b9f5-x2k4q:\n  (none)"],
    )
    values.update(overrides)
    return Snapshot(NS, NOW, **values)


def tiny_docker_archive(path, tag="acme/op:1.18.3", user="65532:65532"):
    """A one-layer `docker save` tarball; returns (path, config digest)."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w"):
        pass
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"User": user},
                         "rootfs": {"type": "layers",
                                    "diff_ids": ["sha256:" + hashlib.sha256(layer.getvalue()).hexdigest()]}}).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": [tag], "Layers": ["layer.tar"]}]).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in (("config.json", config), ("layer.tar", layer.getvalue()), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path, "sha256:" + hashlib.sha256(config).hexdigest()


def fake_tools(directory, *names, scripts=None):
    """Executables that exit 0 (or run the given shell ``scripts``, by name)."""
    directory.mkdir(exist_ok=True)
    for name in names:
        tool = directory / name
        tool.write_text("#!/bin/sh\n" + ((scripts or {}).get(name) or "exit 0\n"))
        tool.chmod(0o755)
    return directory


_THIS_MODULE = sys.modules[__name__]


@pytest.fixture
def k8s():
    """This module's builders and constants (test modules never import a conftest)."""
    return _THIS_MODULE


@pytest.fixture
def image_under_test():
    from pytest_dhi_cilium.checks.cluster import ImageUnderTest

    return ImageUnderTest(IMAGE, MANIFEST_DIGEST, CONFIG_DIGEST)


@pytest.fixture
def live_cluster_tools():
    """Skip (with what is missing) unless kind, kubectl, helm and docker are on PATH."""
    reason = live_prerequisites()
    if reason:
        pytest.skip(reason)


def live_prerequisites() -> str:
    """Why the live end-to-end tests cannot run here ('' when they can)."""
    if os.environ.get("DHI_CLUSTER_KUBECONFIG"):  # a cluster of one's own: only helm is run
        return "" if shutil.which("helm") else "live cluster test on DHI_CLUSTER_KUBECONFIG needs helm on PATH"
    missing = [tool for tool in ("kind", "kubectl", "helm", "docker") if shutil.which(tool) is None]
    if missing:
        return (f"live cluster test needs kind, kubectl, helm and docker on PATH; missing here: "
                f"{', '.join(missing)} (this project's CI has no kind; the GitHub Actions workflow "
                f"examples/github-actions-cluster.yml runs these tests), or DHI_CLUSTER_KUBECONFIG for a "
                f"cluster of your own")
    return ""


# -- a fake API server --------------------------------------------------------------------------

PROXY_REFUSED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                 "message": "error trying to reach service: dial tcp 172.18.0.2:9234: connect: connection refused",
                 "reason": "ServiceUnavailable", "code": 503}


def api_routes(pod: dict, lease_obj: dict | None = None) -> dict:
    """What the API server answers for a healthy install with ``pod`` as the operator."""
    routes = {
        "/apis/apps/v1/namespaces/kube-system/deployments/cilium-operator": deployment(),
        "/api/v1/namespaces/kube-system/pods": {"kind": "PodList", "apiVersion": "v1", "items": [pod]},
        "/api/v1/pods": {"kind": "PodList", "apiVersion": "v1", "items": [pod]},
        "/api/v1/namespaces/kube-system/pods?labelSelector=k8s-app=cilium":
            {"kind": "PodList", "apiVersion": "v1", "items": [agent_pod()]},
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/cilium-operator-resource-lock":
            lease_obj or lease(),
        "/apis/apps/v1/namespaces/kube-system/daemonsets/cilium": daemonset(),
        "/api/v1/nodes": {"kind": "NodeList", "apiVersion": "v1", "items": [node()]},
        "/api/v1/namespaces/kube-system/events": {"kind": "EventList", "apiVersion": "v1", "items": [
            {"kind": "Event", "metadata": {"name": "e1", "namespace": NS}, "type": "Normal",
             "reason": "Started", "message": "Started container cilium-operator", "count": 1,
             "involvedObject": {"kind": "Pod", "name": pod["metadata"]["name"]}}]},
    }
    for plural, obj in all_crds().items():
        routes[f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.cilium.io"] = obj
    return routes


@pytest.fixture
def fake_api(tmp_path):
    """Start an HTTP server answering GETs from a routes dict (path, or ``path?labelSelector=...``,
    -> JSON object; or a callable returning one, for a cluster that changes; a path with objects
    stored below it lists them); DELETE and JSON-patch PATCH change the dict; logs answer text, the pod proxy answers like an
    API server that cannot reach the pod. Returns a factory."""
    servers = []

    def start(routes: dict) -> SimpleNamespace:
        seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlparse(self.path)
                path = unquote(url.path)  # the client sends pod:port as pod%3Aport
                seen.append((path, parse_qs(url.query)))
                if path.endswith("/log"):
                    return self._send(200, 'level=info msg="Leading the operator HA deployment"\n', "text/plain")
                if "/proxy/" in path:
                    return self._send(503, json.dumps(PROXY_REFUSED))
                current = routes() if callable(routes) else routes
                selected = f"{path}?labelSelector={parse_qs(url.query).get('labelSelector', [''])[0]}"
                if selected in current or path in current:  # a route may answer one label selector only
                    return self._send(200, json.dumps(current.get(selected, current.get(path))))
                if any(p.startswith(path + "/") for p in current):  # a collection: the objects stored under it
                    items = [obj for p, obj in current.items() if p.rpartition("/")[0] == path]
                    return self._send(200, json.dumps({"kind": "List", "apiVersion": "v1", "items": items}))
                self._not_found(path)

            def do_DELETE(self):
                path = unquote(urlparse(self.path).path)
                seen.append(("DELETE " + path, {}))
                obj = (routes() if callable(routes) else routes).pop(path, None)
                if obj is None:
                    return self._not_found(path)
                self._send(200, json.dumps(obj))

            def do_PATCH(self):
                """JSON patch (RFC 6902: test, add, replace, remove on object members), as the
                API server applies it: all or nothing, 422 when a test fails."""
                path = unquote(urlparse(self.path).path)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                seen.append(("PATCH " + path, {"content-type": self.headers["Content-Type"], "body": body}))
                current = routes() if callable(routes) else routes
                if path not in current:
                    return self._not_found(path)
                patched = copy.deepcopy(current[path])
                for op in body:
                    *parents, last = op["path"].strip("/").split("/")
                    target = patched
                    for key in parents:
                        target = target[key]
                    if op["op"] == "test" and target.get(last) != op["value"]:
                        return self._send(422, json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                                           "reason": "Invalid", "code": 422,
                                                           "message": f"the server rejected our request: test {op['path']} failed"}))
                    if op["op"] in ("add", "replace"):
                        target[last] = op["value"]
                    elif op["op"] == "remove":
                        target.pop(last)
                current[path] = patched
                self._send(200, json.dumps(patched))

            def _not_found(self, path):
                self._send(404, json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                            "reason": "NotFound", "message": f"{path} not found", "code": 404}))

            def _send(self, status, body, content_type="application/json"):
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        kubeconfig = tmp_path / f"kubeconfig-{len(servers)}"
        kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
            "users": [{"name": "fake", "user": {"token": "t0ken"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}]}))
        return SimpleNamespace(server=server, seen=seen, routes=routes, kubeconfig=str(kubeconfig))

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
