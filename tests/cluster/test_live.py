"""Live end-to-end runs of the cluster tier on a real cluster (minutes each).

On kind: wherever kind, kubectl, helm and docker are on PATH and DHI_CLUSTER_IMAGE names the
hardened operator image to certify (a Docker daemon reference or docker-archive:PATH).
On a cluster of your own: DHI_CLUSTER_KUBECONFIG=PATH (and helm on PATH), the images already
pullable by its nodes. They skip, saying exactly what is missing, anywhere else — including this
project's own CI, which has no cluster. examples/github-actions-cluster.yml runs them on kind.

More, where set: DHI_CLUSTER_CHART (a chart path or reference, e.g. a local cilium-1.17.5.tgz),
DHI_CLUSTER_BROKEN_IMAGE (an image whose operator dies at start, e.g. with no writable gops
directory), DHI_CLUSTER_AGENT_UNAVAILABLE=1 (the nodes cannot pull Cilium's agent image — an
offline cluster: cilium-ready must then fail naming the pull, and everything else still holds).
"""

import json
import os
import shutil

import pytest

from pytest_dhi_cilium.checks.versions import version_from_tag
from pytest_dhi_cilium.image.reference import parse_reference

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("live_cluster_tools")]

CLUSTER_CHECKS = {"operator-healthy", "operator-image-in-use", "operator-runtime-user", "cilium-ready",
                  "upgrade-from-upstream"}
BYO_KUBECONFIG = os.environ.get("DHI_CLUSTER_KUBECONFIG", "")
AGENT_UNAVAILABLE = os.environ.get("DHI_CLUSTER_AGENT_UNAVAILABLE") == "1"


@pytest.fixture
def hardened_image():
    image = os.environ.get("DHI_CLUSTER_IMAGE")
    if not image:
        pytest.skip("set DHI_CLUSTER_IMAGE to the hardened operator image to certify, e.g. "
                    "acme/dhi-cilium-operator-generic:1.18.3 (the workflow example builds one)")
    return image


@pytest.fixture
def upstream_image(hardened_image):
    """DHI_UPSTREAM_IMAGE, else the upstream operator of the same version."""
    if os.environ.get("DHI_UPSTREAM_IMAGE"):
        return os.environ["DHI_UPSTREAM_IMAGE"]
    version = version_from_tag(parse_reference(hardened_image).tag)
    if not version or version.count(".") != 2:
        pytest.skip(f"cannot derive the upstream image from {hardened_image!r}: set DHI_UPSTREAM_IMAGE")
    return f"quay.io/cilium/operator-generic:v{version}"


def certify(pytester, *args) -> dict:
    """Run the plugin like a user would and return {image ref: {check: check entry}}."""
    report = pytester.path / "report.json"
    where = ([f"--dhi-kubeconfig={BYO_KUBECONFIG}", f"--helm-bin={shutil.which('helm')}"] if BYO_KUBECONFIG
             else [f"--cluster-name=dhi-live-{os.getpid()}"])
    chart = [f"--dhi-cilium-chart={os.environ['DHI_CLUSTER_CHART']}"] if os.environ.get("DHI_CLUSTER_CHART") else []
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs", "--dhi-tier=cluster",
                                           f"--dhi-report={report}", *where, *chart, *args, timeout=3600)
    print(result.stdout.str())  # shown on failure: progress lines, verdicts, diagnostics
    document = json.loads(report.read_text())
    return {image["ref"]: {c["id"]: c for c in image["checks"]} for image in document["images"]}


def outcomes(checks: dict) -> dict[str, str]:
    return {check_id: c["outcome"] for check_id, c in checks.items()}


def expected(*, upgrade: str) -> dict[str, str]:
    return {**dict.fromkeys(CLUSTER_CHECKS, "passed"), "upgrade-from-upstream": upgrade,
            "cilium-ready": "failed" if AGENT_UNAVAILABLE else "passed"}


def assert_agent_verdict(checks: dict) -> None:
    """Offline nodes: cilium-ready fails on the agent's image pull, and says so in its headline."""
    if AGENT_UNAVAILABLE:
        message = checks["cilium-ready"]["message"]
        assert message.startswith("agent pod ") and ("ErrImagePull" in message or "ImagePullBackOff" in message)


def test_live_hardened_image_passes_and_upstream_runs_as_root(pytester, hardened_image, upstream_image):
    found = certify(pytester, f"--dhi-image={hardened_image}", f"--dhi-image={upstream_image}")
    assert outcomes(found[hardened_image]) == expected(upgrade="skipped")
    assert_agent_verdict(found[hardened_image])
    # the same cluster and chart, the upstream operator: healthy, in use, but running as root
    assert found[upstream_image]["operator-healthy"]["outcome"] == "passed"
    assert found[upstream_image]["operator-image-in-use"]["outcome"] == "passed"
    assert found[upstream_image]["operator-runtime-user"]["outcome"] == "failed"


def test_live_upgrade_from_upstream(pytester, hardened_image, upstream_image):
    found = certify(pytester, f"--dhi-image={hardened_image}", f"--dhi-upgrade-from={upstream_image}")
    assert outcomes(found[hardened_image]) == expected(upgrade="passed")


def test_live_crashlooping_operator_fails_with_its_fatal_line(pytester):
    broken = os.environ.get("DHI_CLUSTER_BROKEN_IMAGE")
    if not broken:
        pytest.skip("set DHI_CLUSTER_BROKEN_IMAGE to an operator image that dies at start (e.g. the hardened "
                    "image without a writable gops directory)")
    healthy = certify(pytester, f"--dhi-image={broken}")[broken]["operator-healthy"]
    assert healthy["outcome"] == "failed"
    assert "CrashLoopBackOff" in healthy["message"] and "level=fatal" in healthy["message"]


def _cilium_state(kubeconfig: str) -> dict:
    """What a Cilium install can leave cluster-wide, read with the kubernetes client."""
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=kubeconfig)
    crds = client.ApiextensionsV1Api(api).list_custom_resource_definition().items
    leases = client.CoordinationV1Api(api).list_namespaced_lease("kube-system").items
    nodes = client.CoreV1Api(api).list_node().items
    return {"crds": sorted(c.metadata.name for c in crds if c.metadata.name.endswith(".cilium.io")),
            "leases": sorted(le.metadata.name for le in leases if le.metadata.name.startswith("cilium")),
            "taints": {n.metadata.name: sorted(f"{t.key}:{t.effect}" for t in n.spec.taints or []) for n in nodes}}


def test_live_byo_cluster_is_left_as_found(pytester, hardened_image):
    if not BYO_KUBECONFIG:
        pytest.skip("set DHI_CLUSTER_KUBECONFIG to a scratch cluster of your own: a kind cluster this run "
                    "creates is deleted whole instead")
    before = _cilium_state(BYO_KUBECONFIG)
    certify(pytester, f"--dhi-image={hardened_image}")
    assert _cilium_state(BYO_KUBECONFIG) == before
