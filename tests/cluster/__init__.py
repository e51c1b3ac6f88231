"""Cluster-tier tests (a package, so their conftest is not imported as the top-level `conftest`
module the other tests import from)."""
