"""Live end-to-end runs of the cluster tier on a real kind cluster (minutes each).

They run wherever kind, kubectl, helm and docker are on PATH and DHI_CLUSTER_IMAGE names the
hardened operator image to certify (a Docker daemon reference or docker-archive:PATH); they skip,
saying exactly what is missing, anywhere else — including this project's own CI, which has no
kind. examples/github-actions-cluster.yml runs them on GitHub's runners.
"""

import json
import os

import pytest

from pytest_dhi_cilium.checks.versions import version_from_tag
from pytest_dhi_cilium.image.reference import parse_reference

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("live_cluster_tools")]

CLUSTER_CHECKS = {"operator-healthy", "operator-image-in-use", "operator-runtime-user", "cilium-ready",
                  "upgrade-from-upstream"}


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
    """Run the plugin like a user would and return {image ref: {check: outcome}}."""
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs", "--dhi-tier=cluster",
                                           f"--dhi-report={report}", f"--cluster-name=dhi-live-{os.getpid()}",
                                           *args, timeout=3600)
    print(result.stdout.str())  # shown on failure: progress lines, verdicts, diagnostics
    document = json.loads(report.read_text())
    return {image["ref"]: {c["id"]: c["outcome"] for c in image["checks"]} for image in document["images"]}


def test_live_hardened_image_passes_and_upstream_runs_as_root(pytester, hardened_image, upstream_image):
    outcomes = certify(pytester, f"--dhi-image={hardened_image}", f"--dhi-image={upstream_image}")
    assert outcomes[hardened_image] == {**dict.fromkeys(CLUSTER_CHECKS - {"upgrade-from-upstream"}, "passed"),
                                        "upgrade-from-upstream": "skipped"}
    # the same cluster and chart, the upstream operator: healthy, in use, but running as root
    assert outcomes[upstream_image]["operator-healthy"] == "passed"
    assert outcomes[upstream_image]["operator-image-in-use"] == "passed"
    assert outcomes[upstream_image]["operator-runtime-user"] == "failed"


def test_live_upgrade_from_upstream(pytester, hardened_image, upstream_image):
    outcomes = certify(pytester, f"--dhi-image={hardened_image}", f"--dhi-upgrade-from={upstream_image}")
    assert outcomes[hardened_image] == dict.fromkeys(CLUSTER_CHECKS, "passed")
