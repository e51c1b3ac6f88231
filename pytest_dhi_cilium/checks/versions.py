"""Operator versions: what a tag promises and what ``--version`` prints."""

from __future__ import annotations

import re

# 1.18.3, v1.18.3, 1.18, 1.18.3-dev, 1.18.3-r1, 1.18-debian13 ... -> the numeric part.
_TAG_VERSION = re.compile(r"^v?(?P<version>\d+\.\d+(?:\.\d+)?)(?:[-+_.].*)?$")
_PRINTED = re.compile(r"Cilium-Operator\s+v?(?P<version>\d+\.\d+\.\d+\S*)")


def version_from_tag(tag: str) -> str | None:
    """The version a tag carries (``1.18.3-dev`` -> ``1.18.3``), or None (``latest``)."""
    match = _TAG_VERSION.match(tag or "")
    return match.group("version") if match else None


def printed_version(output: str) -> str | None:
    """The version in ``Cilium-Operator 1.18.3 69aab28cf1 ...`` output, or None."""
    match = _PRINTED.search(output or "")
    return match.group("version") if match else None


def version_matches(tag_version: str, printed: str) -> bool:
    """``1.18`` matches ``1.18.3``; ``1.18.3`` matches ``1.18.3`` and ``1.18.3-rc1``'s base."""
    want = tag_version.split(".")
    have = re.split(r"[.-]", printed)[: len(want)]
    return want == have
