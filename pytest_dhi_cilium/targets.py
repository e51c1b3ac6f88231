"""One test parameter per (image, platform): what the suite is parametrized with."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .image.reference import Reference
from .image.sources import Platform, SourceError, open_source, reading
from .options import Settings


@dataclass(frozen=True)
class Target:
    ref: Reference
    platform: Platform | None  # None: the only platform the input holds (or the daemon's)
    tiers: tuple[str, ...]
    id: str
    error: str = ""  # the input could not even be listed; every check reports this

    @property
    def platform_text(self) -> str:
        return str(self.platform) if self.platform else ""


def expand_targets(settings: Settings) -> list[Target]:
    """Archive inputs are listed now (index only, cheap) so each platform is its own test
    parameter; daemon references are one parameter each and are not contacted here."""
    ids = _short_ids(settings.images)
    wanted = [Platform.parse(p) for p in settings.platforms] if settings.platforms else None
    targets: list[Target] = []
    for ref in settings.images:
        tiers = settings.tiers_for(ref)
        if not ref.daemonless:
            platform = wanted[0] if wanted and len(wanted) == 1 else None
            targets.append(Target(ref, platform, tiers, ids[ref.raw]))
            continue
        try:
            with reading(ref), open_source(ref) as source:
                available = source.platforms()
        except SourceError as exc:
            targets.append(Target(ref, None, tiers, ids[ref.raw], error=str(exc)))
            continue
        chosen = [p for p in available if wanted is None or any(p.matches(w) for w in wanted)]
        if not chosen:
            listed = ", ".join(map(str, available)) or "none"
            targets.append(Target(ref, None, tiers, ids[ref.raw],
                                  error=f"{ref.raw}: no platform matches --dhi-platform "
                                        f"{','.join(settings.platforms or ())} (has {listed})"))
            continue
        multi = len(available) > 1
        for p in chosen:
            tid = f"{ids[ref.raw]}@{p}" if multi else ids[ref.raw]
            targets.append(Target(ref, p if multi or wanted else None, tiers, tid))
    return targets


def _short_ids(refs: tuple[Reference, ...]) -> dict[str, str]:
    """Readable test ids: archive paths shortened to their file name when that stays unique."""
    short = {}
    for ref in refs:
        short[ref.raw] = (f"{ref.transport}:{os.path.basename(ref.location.rstrip('/'))}"
                          + (f":{ref.selector}" if ref.selector else "")
                          if ref.daemonless else ref.location)
    if len(set(short.values())) != len(short):
        return {ref.raw: ref.raw for ref in refs}
    return short
