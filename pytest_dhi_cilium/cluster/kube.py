"""Reading the cluster through the kubernetes client. Objects are kept as the API server's own
JSON (``_preload_content=False``): the shape ``kubectl get -o json`` prints, which the checks
judge and the tests build — and no round trip through the client's strict models."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from ..checks.cluster import (AGENT_DAEMONSET, AGENT_SELECTOR, LEASE_NAME, OPERATOR_CRDS, OPERATOR_DEPLOYMENT,
                              OPERATOR_SELECTOR, Healthz, Snapshot, container_spec, pod_name)


def selector_of(workload: dict | None, default: dict = OPERATOR_SELECTOR) -> str:
    """The label selector of a Deployment or DaemonSet (the chart's ``default`` when it is missing)."""
    labels = ((workload or {}).get("spec") or {}).get("selector", {}).get("matchLabels") or default
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def api_failure(exc: BaseException) -> str:
    """One short line for a failed API call (ApiException, urllib3 connection errors, timeouts)."""
    return f"{type(exc).__name__}: {str(exc).strip()[:200]}"


def proxy_unreachable(body: str) -> bool:
    """The API server's own proxy failure (it could not connect), not an answer from the pod."""
    return "error trying to reach" in body or "connection refused" in body


class Kube:
    def __init__(self, kubeconfig: str, timeout: float = 30):
        from kubernetes import client, config

        self.api = config.new_client_from_config(config_file=kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.coordination = client.CoordinationV1Api(self.api)
        self.extensions = client.ApiextensionsV1Api(self.api)
        self.timeout = timeout

    def _read(self, call, *args, **kwargs) -> dict | None:
        from kubernetes.client.exceptions import ApiException

        try:
            response = call(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
            return json.loads(response.data)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _items(self, call, *args, **kwargs) -> list[dict]:
        return (self._read(call, *args, **kwargs) or {}).get("items") or []

    def observe(self, namespace: str) -> Snapshot:
        """The objects the checks judge. API failures (an API server restarting while Cilium
        takes over the network) are recorded, not raised: the waiter polls again."""
        now = datetime.now(timezone.utc)
        try:
            dep = self._read(self.apps.read_namespaced_deployment, OPERATOR_DEPLOYMENT, namespace)
            agents = self._read(self.apps.read_namespaced_daemon_set, AGENT_DAEMONSET, namespace)
            return Snapshot(
                namespace, now, dep,
                pods=self._items(self.core.list_namespaced_pod, namespace, label_selector=selector_of(dep)),
                all_pods=self._items(self.core.list_pod_for_all_namespaces),
                lease=self._read(self.coordination.read_namespaced_lease, LEASE_NAME, namespace),
                crds={p: self._read(self.extensions.read_custom_resource_definition, f"{p}.cilium.io")
                      for p in OPERATOR_CRDS},
                daemonset=agents,
                agent_pods=self._items(self.core.list_namespaced_pod, namespace,
                                       label_selector=selector_of(agents, AGENT_SELECTOR)),
                nodes=self._items(self.core.list_node))
        except Exception as exc:  # ApiException, urllib3 connection errors, timeouts
            return Snapshot(namespace, now, api_error=api_failure(exc))

    def healthz_via_proxy(self, pod: dict) -> Healthz:
        """GET /healthz through the API server's pod proxy. It dials the pod IP, so it reaches
        the operator only if /healthz listens there (the chart binds 127.0.0.1:9234)."""
        from kubernetes.client.exceptions import ApiException

        probe = (container_spec(pod) or {}).get("readinessProbe", {}).get("httpGet") or {}
        port, path = probe.get("port", 9234), probe.get("path", "/healthz")
        meta = pod.get("metadata") or {}
        url = f"/api/v1/namespaces/{meta.get('namespace')}/pods/{meta.get('name')}:{port}/proxy{path}"
        try:
            response = self.core.connect_get_namespaced_pod_proxy_with_path(
                f"{meta.get('name')}:{port}", meta.get("namespace"), path.lstrip("/"),
                _preload_content=False, _request_timeout=10)
            return Healthz(pod_name(pod), "pod proxy", url, response.status, response.data.decode(errors="replace")[:200])
        except ApiException as exc:
            body = str(exc.body or "")[:300]
            if proxy_unreachable(body):
                return Healthz(pod_name(pod), "pod proxy", url, None, error=body)
            return Healthz(pod_name(pod), "pod proxy", url, exc.status, body)
        except Exception as exc:
            return Healthz(pod_name(pod), "pod proxy", url, None, error=f"{type(exc).__name__}: {exc}"[:300])

    def logs(self, pod: dict, container: str, previous: bool = False, lines: int | None = 100,
             limit_bytes: int | None = None) -> str:
        """The last ``lines`` lines, or (``lines=None``) the log from its start, up to ``limit_bytes``."""
        meta = pod.get("metadata") or {}
        try:
            return self.core.read_namespaced_pod_log(meta.get("name"), meta.get("namespace"), container=container,
                                                     tail_lines=lines, previous=previous, limit_bytes=limit_bytes,
                                                     _request_timeout=self.timeout)
        except Exception as exc:
            return f"(logs unavailable: {api_failure(exc)})"

    def events(self, pod: dict) -> list[dict]:
        meta = pod.get("metadata") or {}
        try:
            return self._items(self.core.list_namespaced_event, meta.get("namespace"),
                               field_selector=f"involvedObject.name={meta.get('name')}")
        except Exception:
            return []

    # -- what a run leaves behind (cluster/leftovers.py decides; these only read and write) --

    def _cilium_crds(self) -> list[dict]:
        from .leftovers import is_cilium_crd

        return [c for c in self._items(self.extensions.list_custom_resource_definition) if is_cilium_crd(c)]

    def leftover_objects(self, namespace: str) -> tuple[list[dict], dict | None, list[dict]]:
        """The ``*.cilium.io`` CRDs, the operator's Lease (None if absent) and every Node.
        Raises on API failures: a cleanup must not decide on a partial picture."""
        return (self._cilium_crds(), self._read(self.coordination.read_namespaced_lease, LEASE_NAME, namespace),
                self._items(self.core.list_node))

    def cilium_crd_names(self) -> list[str]:
        return sorted(c["metadata"]["name"] for c in self._cilium_crds())

    def read_node(self, name: str) -> dict | None:
        return self._read(self.core.read_node, name)

    def _delete(self, call, *args) -> None:
        """Gone already (404) is what was wanted."""
        self._read(call, *args)

    def delete_crd(self, name: str) -> None:
        self._delete(self.extensions.delete_custom_resource_definition, name)

    def delete_lease(self, namespace: str) -> None:
        self._delete(self.coordination.delete_namespaced_lease, LEASE_NAME, namespace)

    def replace_taints(self, node: str, current: list[dict], wanted: list[dict]) -> None:
        """A JSON patch that applies only if the taints are still ``current`` (the API server
        refuses it otherwise, 422): a taint placed meanwhile by someone else is never lost —
        except on a node read with no taints, where there is no list to test and the add replaces
        whatever appeared in between."""
        if not current:
            patch = [{"op": "add", "path": "/spec/taints", "value": wanted}]
        else:  # no taints left: the member goes, as a node that never had one shows none
            patch = [{"op": "test", "path": "/spec/taints", "value": current},
                     {"op": "replace", "path": "/spec/taints", "value": wanted} if wanted
                     else {"op": "remove", "path": "/spec/taints"}]
        self.core.patch_node(node, patch, _content_type="application/json-patch+json",
                             _preload_content=False, _request_timeout=self.timeout)
