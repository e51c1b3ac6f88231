"""Runtime tier: the image run the way Docker and Kubernetes run it — its own entrypoint, its
own user — with every container removed afterwards.

PYTEST_DONT_REWRITE (the verdict's own explanation is the failure message)
"""

import pytest

from pytest_dhi_cilium.checks import runtime as check

pytestmark = pytest.mark.dhi_tier("runtime")


@pytest.mark.dhi_check("help")
def test_help(dhi_help_run, dhi_settings, dhi_record):
    verdict = dhi_record(check.help_output("help", dhi_help_run, dhi_settings.profile,
                                           "its own entrypoint with --help"))
    assert verdict.ok, verdict.explain()


@pytest.mark.dhi_check("version")
def test_version(dhi_version_run, dhi_tags, dhi_record):
    verdict = dhi_record(check.version(dhi_version_run, dhi_tags))
    assert verdict.ok, verdict.explain()


@pytest.mark.dhi_check("no-shell-runtime")
def test_no_shell_runtime(dhi_shell_runs, dhi_shell_providers, dhi_expectations, dhi_record):
    verdict = dhi_record(check.no_shell_runtime(dhi_shell_runs, dhi_expectations, dhi_shell_providers))
    assert verdict.ok, verdict.explain()


@pytest.mark.dhi_check("runtime-user")
def test_runtime_user(dhi_operator_run, dhi_user, dhi_expectations, dhi_record):
    verdict = dhi_record(check.runtime_user(dhi_operator_run, dhi_user, dhi_expectations))
    assert verdict.ok, verdict.explain()


@pytest.mark.dhi_check("restricted-run")
def test_restricted_run(dhi_restricted_run, dhi_settings, dhi_record):
    if isinstance(dhi_restricted_run, str):
        pytest.fail(f"restricted-run: {dhi_restricted_run}", pytrace=False)
    verdict = dhi_record(check.help_output(
        "restricted-run", dhi_restricted_run, dhi_settings.profile,
        "--help with --read-only --cap-drop=ALL --security-opt=no-new-privileges --user <uid>:<gid>"))
    assert verdict.ok, verdict.explain()


@pytest.mark.dhi_check("operator-starts")
def test_operator_starts(dhi_operator_run, dhi_record):
    verdict = dhi_record(check.operator_starts(dhi_operator_run))
    assert verdict.ok, verdict.explain()


@pytest.mark.dhi_check("reference-flags")
def test_reference_flags(dhi_reference_runs, dhi_help_run, dhi_version_run, dhi_runnable, dhi_record):
    verdict = dhi_record(check.reference_flags(
        dhi_help_run, dhi_reference_runs.help, dhi_version_run, dhi_reference_runs.version,
        str(list(dhi_runnable.shown_entrypoint)), dhi_reference_runs.entrypoint))
    assert verdict.ok, verdict.explain()
