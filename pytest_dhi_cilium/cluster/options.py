"""Cluster-tier command-line options (pytest-kind's own options are reused, not redeclared)."""

from __future__ import annotations

import pytest


def add_cluster_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("dhi-cilium")
    group.addoption("--dhi-kubeconfig", dest="dhi_kubeconfig", default=None,
                    help="cluster tier: use this existing cluster instead of creating a kind cluster")
