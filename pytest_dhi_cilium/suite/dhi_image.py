"""Image tier: what the image holds and declares, read from its layers — nothing runs.

PYTEST_DONT_REWRITE (the verdict's own explanation is the failure message)
"""

import pytest

from pytest_dhi_cilium.checks import image as check

pytestmark = pytest.mark.dhi_tier("image")


@pytest.mark.dhi_check("no-shell")
def test_no_shell(dhi_image, dhi_shell_providers, dhi_expectations, dhi_record):
    verdict = dhi_record(check.no_shell(dhi_image, dhi_expectations, dhi_shell_providers))
    assert verdict.ok, verdict.explain()


@pytest.mark.dhi_check("no-package-manager")
def test_no_package_manager(dhi_image, dhi_expectations, dhi_record):
    verdict = dhi_record(check.no_package_manager(dhi_image, dhi_expectations))
    assert verdict.ok, verdict.explain()


@pytest.mark.dhi_check("nonroot-user")
def test_nonroot_user(dhi_image, dhi_expectations, dhi_user, dhi_record):
    verdict = dhi_record(check.nonroot_user(dhi_image, dhi_expectations, dhi_user))
    assert verdict.ok, verdict.explain()


@pytest.mark.dhi_check("entrypoint")
def test_entrypoint(dhi_image, dhi_expectations, dhi_user, dhi_record):
    verdict = dhi_record(check.entrypoint(dhi_image, dhi_expectations, dhi_user))
    assert verdict.ok, verdict.explain()


@pytest.mark.dhi_check("operator-binary")
def test_operator_binary(dhi_image, dhi_expectations, dhi_user, dhi_record):
    verdict = dhi_record(check.operator_binary(dhi_image, dhi_expectations, dhi_user))
    assert verdict.ok, verdict.explain()


@pytest.mark.dhi_check("gops-writable")
def test_gops_writable(dhi_image, dhi_expectations, dhi_user, dhi_record):
    verdict = dhi_record(check.gops_writable(dhi_image, dhi_expectations, dhi_user))
    assert verdict.ok, verdict.explain()
