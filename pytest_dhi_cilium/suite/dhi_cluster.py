"""Cluster tier: Cilium installed on kind (or --dhi-kubeconfig) with the image under test as
its operator (operator.image.override), rolled out, settled, and observed.

PYTEST_DONT_REWRITE (the verdict's own explanation is the failure message)
"""

import pytest

from pytest_dhi_cilium.checks import cluster as check

pytestmark = pytest.mark.dhi_tier("cluster")


@pytest.mark.dhi_check("operator-healthy")
def test_operator_healthy(dhi_cilium, dhi_record):
    verdict = dhi_record(check.operator_healthy(dhi_cilium.snapshot))
    assert verdict.ok, verdict.explain()


@pytest.mark.dhi_check("operator-image-in-use")
def test_operator_image_in_use(dhi_cilium, dhi_record):
    verdict = dhi_record(check.operator_image_in_use(dhi_cilium.snapshot, dhi_cilium.image))
    assert verdict.ok, verdict.explain()


@pytest.mark.dhi_check("operator-runtime-user")
def test_operator_runtime_user(dhi_cilium, dhi_user, dhi_record):
    if not dhi_cilium.snapshot.users and dhi_cilium.snapshot.users_unobservable:
        pytest.skip(f"operator process user not observable: {dhi_cilium.snapshot.users_unobservable}")
    verdict = dhi_record(check.operator_runtime_user(dhi_cilium.snapshot, dhi_user))
    assert verdict.ok, verdict.explain()


@pytest.mark.dhi_check("cilium-ready")
def test_cilium_ready(dhi_cilium, dhi_record):
    verdict = dhi_record(check.cilium_ready(dhi_cilium.snapshot))
    assert verdict.ok, verdict.explain()


@pytest.mark.dhi_check("upgrade-from-upstream")
def test_upgrade_from_upstream(dhi_cilium, dhi_record):
    if dhi_cilium.upgrade is None:
        pytest.skip("no --dhi-upgrade-from=REF given (e.g. quay.io/cilium/operator-generic:v1.18.3): "
                    "the upgrade from an upstream operator was not exercised")
    verdict = dhi_record(check.upgrade_from_upstream(dhi_cilium.upgrade, dhi_cilium.image))
    assert verdict.ok, verdict.explain()
