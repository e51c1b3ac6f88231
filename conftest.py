"""Repository-level test setup. The plugin's own tests live in tests/ (pytester is enabled with
`-p pytester` in pyproject's addopts: a `pytest_plugins` here would break pytester runs that
collect the editable suite under this directory)."""

import os

# testcontainers' Ryuk reaper needs a pulled image; no registry is reachable in our CI.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
