"""Cluster-tier fixtures and hooks; registered as a plugin only when the cluster tier runs.

Nothing heavy is imported here: kubernetes and pytest-kind are imported by the fixtures, after
pytest_configure has checked that they (and kind, kubectl, helm) are there.
"""

from __future__ import annotations

import pytest

from ..state import STATE_KEY, SetupError
from .options import (CLUSTER_KEY, ClusterSettings, missing_requirements, read_cluster_settings,
                      requirements_message)

XDIST_GROUP = "dhi-cilium-cluster"
CLEANUP_OUTPUT = "dhi_cluster_cleanup"  # key of the worker output to the xdist controller


def pytest_configure(config: pytest.Config) -> None:
    """Runs before any image is read: a machine without kind/helm stops here, with one message."""
    settings = read_cluster_settings(config)
    missing = missing_requirements(settings, config)
    if missing:
        raise pytest.UsageError(requirements_message(missing, settings))
    config.stash[CLUSTER_KEY] = settings


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = config.stash.get(CLUSTER_KEY, None)
    if settings is None:
        return []
    where = (f"BYO cluster {settings.byo_kubeconfig}" if settings.byo else
             f"kind cluster {settings.cluster_name!r} (kind {settings.kind_bin}"
             + (", kept" if settings.keep_cluster else "") + ")")
    return [f"dhi-cilium cluster tier: {where}; chart {settings.chart} "
            f"{settings.version or '(version from the image tag)'}; helm {settings.helm_bin}"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("xdist"):
        return  # the mark is xdist's: unknown (and refused by --strict-markers) without it
    for item in items:
        tier = item.get_closest_marker("dhi_tier")
        if (tier and tier.args and tier.args[0] == "cluster") or \
                {"dhi_cluster", "dhi_cilium"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group(XDIST_GROUP))


@pytest.fixture(scope="session")
def dhi_cluster_settings(pytestconfig: pytest.Config) -> ClusterSettings:
    return pytestconfig.stash[CLUSTER_KEY]


@pytest.fixture(scope="session")
def dhi_cluster(dhi_cluster_settings: ClusterSettings, pytestconfig: pytest.Config, tmp_path_factory):
    """The session's cluster (kind, or --dhi-kubeconfig), shared by every image of the run.
    Cleanup runs on failures and Ctrl-C too (the fixture's finally is pytest's session teardown)."""
    from subprocess import CalledProcessError, TimeoutExpired

    from .helm import HelmError
    from .install import LeftoverError, open_cluster
    from .kind import ClusterError
    from .waiting import Progress

    progress = Progress(pytestconfig)
    failure = ""
    env = None
    try:
        with open_cluster(dhi_cluster_settings, progress, str(tmp_path_factory.mktemp("dhi-cluster"))) as env:
            yield env
    except (ClusterError, HelmError, LeftoverError) as exc:  # creating the cluster, or cleaning up at the end
        failure = f"cluster tier: {exc}"
    except (CalledProcessError, TimeoutExpired) as exc:  # kind get/export/delete
        failure = f"cluster tier: {exc}; its output is in the captured output"
    finally:
        if env is not None:
            _record_cleanup(pytestconfig, env.cleanup)
    if failure:  # failed outside the except block: one sentence, no exception chain
        raise SetupError(failure)


def _record_cleanup(config: pytest.Config, lines: list[str]) -> None:
    """For the report and the terminal summary, which the xdist controller writes."""
    config.stash[STATE_KEY].cluster_cleanup = list(lines)
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[CLEANUP_OUTPUT] = list(lines)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """pytest-xdist, on the controller: the worker that owned the cluster says what it left."""
    lines = (getattr(node, "workeroutput", None) or {}).get(CLEANUP_OUTPUT)
    if lines:
        node.config.stash[STATE_KEY].cluster_cleanup = list(lines)


@pytest.fixture(scope="session")
def dhi_cilium(dhi_target, dhi_image, dhi_expectations, dhi_cluster):
    """Cilium installed with the image under test as operator, rolled out, settled and observed
    (``Installed``: image identity, snapshot, upgrade observations). Once per image. The image is
    read (and its report summary recorded by dhi_expectations) before any cluster is created."""
    from .install import InstallError, install_target, platform_skip_reason

    reason = platform_skip_reason(dhi_cluster, dhi_image)
    if reason:
        pytest.skip(reason)
    try:
        return install_target(dhi_cluster, dhi_target.ref, dhi_image)
    except InstallError as exc:
        raise SetupError(f"cluster tier: {exc}") from None
