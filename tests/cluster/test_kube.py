"""cluster/kube.py against a fake API server speaking HTTP: the real kubernetes client builds the
requests (paths, selectors, the pod proxy) and we check what comes back."""

import pytest

pytest.importorskip("kubernetes")

from pytest_dhi_cilium.cluster.kube import Kube  # noqa: E402


@pytest.fixture
def api(k8s, fake_api):
    api = fake_api(k8s.api_routes(k8s.operator_pod()))
    api.kube = Kube(api.kubeconfig, timeout=5)
    api.pod = k8s.operator_pod()
    return api


def test_observe_returns_the_api_json_unchanged(api, k8s):
    snap = api.kube.observe("kube-system")
    assert snap.api_error == ""
    assert snap.deployment == k8s.deployment()
    assert snap.pods == [api.pod] and snap.all_pods == [api.pod]
    assert snap.lease == k8s.lease() and snap.daemonset == k8s.daemonset() and snap.nodes == [k8s.node()]
    assert snap.crds == k8s.all_crds()
    pod_queries = [q["labelSelector"] for path, q in api.seen if path == "/api/v1/namespaces/kube-system/pods"]
    assert pod_queries == [["io.cilium/app=operator,name=cilium-operator"], ["k8s-app=cilium"]]
    assert snap.agent_pods == [k8s.agent_pod()]  # by the DaemonSet's own selector


def test_a_missing_object_is_none(api):
    api.routes.pop("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/cilium-operator-resource-lock")
    assert api.kube.observe("kube-system").lease is None


def test_an_unreachable_api_server_is_recorded_not_raised(api):
    api.server.shutdown()
    api.server.server_close()
    snap = api.kube.observe("kube-system")
    assert snap.api_error and snap.deployment is None


def test_pod_proxy_refusal_is_unreachable_not_an_answer(api):
    health = api.kube.healthz_via_proxy(api.pod)
    assert health.status is None and "connect: connection refused" in health.error
    assert health.url == f"/api/v1/namespaces/kube-system/pods/{api.pod['metadata']['name']}:9234/proxy/healthz"


def test_logs_and_events(api):
    assert "Leading the operator HA deployment" in api.kube.logs(api.pod, "cilium-operator")
    log_query = next(q for path, q in api.seen if path.endswith("/log"))
    assert log_query["tailLines"] == ["100"] and log_query["container"] == ["cilium-operator"]
    api.kube.logs(api.pod, "cilium-operator", lines=None, limit_bytes=1 << 20)  # from the start, bounded
    head_query = [q for path, q in api.seen if path.endswith("/log")][-1]
    assert head_query["limitBytes"] == [str(1 << 20)] and "tailLines" not in head_query
    events = api.kube.events(api.pod)
    assert [e["reason"] for e in events] == ["Started"]
    event_query = next(q for path, q in api.seen if path.endswith("/events"))
    assert event_query["fieldSelector"] == [f"involvedObject.name={api.pod['metadata']['name']}"]
