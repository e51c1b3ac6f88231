"""Per-session state shared by the plugin hooks and the fixtures (one process; xdist workers
each have their own, and ship what the report needs on their test reports)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from .options import Settings
from .targets import Target
from .verdict import Verdict


@dataclass
class DhiState:
    settings: Settings
    targets: list[Target] | None = None
    meta: dict[str, dict] = field(default_factory=dict)  # target id -> image summary
    pins: dict[str, str] = field(default_factory=dict)  # registry reference -> the digest it resolved to
    cluster_cleanup: list[str] = field(default_factory=list)  # what a run left on a cluster it did not create


STATE_KEY = pytest.StashKey[DhiState]()
VERDICT_KEY = pytest.StashKey[Verdict]()

ENGINE_UNREACHABLE = "engine-unreachable"  # one cause, whichever tier met it first


class SetupError(pytest.fail.Exception):
    """A check cannot run at all: the image cannot be read, no Docker engine, ... One
    sentence, no traceback. The plugin shows it once per image (and cause); every other check
    it stops is reported as not run. Raise it ``from None``: no exception chain to print."""

    __module__ = "builtins"  # as pytest's own Failed: "SetupError: <sentence>" in summaries

    def __init__(self, message: str, cause: str = "") -> None:
        super().__init__(message, pytrace=False)
        self.cause = cause or message


def image_summary(target: Target, image, expectations) -> dict:
    return {
        "ref": target.ref.raw,
        "target": target.id,
        "digest": image.digest,
        "index_digest": target.index_digest,
        "config_digest": image.config_digest,
        "platform": str(image.platform),
        "variant": expectations.variant,
        "variant_reason": expectations.variant_reason,
        "profile": expectations.profile.name,
        "tiers": list(target.tiers),
        "warnings": list(image.warnings),
        # Only digests computed from the bytes that were judged (see image/model.py).
        "verified": image.verified,
    }
