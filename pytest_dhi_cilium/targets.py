"""One test parameter per (image, platform): what the suite is parametrized with."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .image.reference import REGISTRY, Reference
from .image.sources import Platform, SourceError, open_source, reading
from .image.sources.registry import pinned
from .options import Settings


@dataclass(frozen=True)
class Target:
    ref: Reference
    platform: Platform | None  # None: the only platform the input holds (or the daemon's)
    tiers: tuple[str, ...]
    id: str
    error: str = ""  # the input could not even be listed; every check reports this
    digest: str = ""  # registry: the digest the reference resolved to at collection
    index_digest: str = ""  # that digest, when it names an index

    @property
    def platform_text(self) -> str:
        return str(self.platform) if self.platform else ""

    @property
    def read_ref(self) -> Reference:
        """What to read: a registry reference pinned to the digest it resolved to once, so every
        tier of every platform reads the same image even if the tag moves meanwhile."""
        return pinned(self.ref, self.digest) if self.digest else self.ref


def _pin(ref: Reference, pins: dict[str, str]) -> Reference:
    return pinned(ref, pins[ref.raw]) if ref.transport == REGISTRY and ref.raw in pins else ref


def expand_targets(settings: Settings, pins: dict[str, str] | None = None) -> list[Target]:
    """Archive and registry inputs are listed now (index only, cheap) so each platform is its
    own test parameter; daemon references are one parameter each and are not contacted here.
    A registry reference is resolved to a digest here (or taken from ``pins``) and recorded."""
    pins = {} if pins is None else pins
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
            with reading(ref), open_source(_pin(ref, pins), insecure=settings.insecure_registries) as source:
                available = source.platforms()
                digest, index_digest = source.digest, source.index_digest
        except SourceError as exc:
            targets.append(Target(ref, None, tiers, ids[ref.raw], error=str(exc)))
            continue
        if digest:
            pins[ref.raw] = digest
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
            targets.append(Target(ref, p if multi or wanted else None, tiers, tid, digest=digest,
                                  index_digest=index_digest))
    return targets


def moved_tags(settings: Settings, pins: dict[str, str]) -> dict[str, str]:
    """Registry tags asked again at the end of the run: a tag that no longer resolves to the
    digest that was judged gets a warning (the verdict stands for that digest, not the tag)."""
    notes = {}
    for ref in settings.images:
        judged = pins.get(ref.raw)
        if ref.transport != REGISTRY or not judged or "@" in ref.location:
            continue  # a reference given by digest cannot move
        try:
            with reading(ref), open_source(ref, insecure=settings.insecure_registries) as source:
                now = source.digest
        except SourceError as exc:
            notes[ref.raw] = f"the tag could not be checked again at the end of the run: {exc}"
            continue
        if now != judged:
            notes[ref.raw] = (f"the tag moved during the run: it now resolves to {now}; every check "
                              f"judged {judged}")
    return notes


def _short_ids(refs: tuple[Reference, ...]) -> dict[str, str]:
    """Readable test ids: archive paths shortened to their file name when that stays unique."""
    short = {}
    for ref in refs:
        if ref.transport == REGISTRY:
            short[ref.raw] = f"docker://{ref.location}"
        elif ref.daemonless:
            short[ref.raw] = (f"{ref.transport}:{os.path.basename(ref.location.rstrip('/'))}"
                              + (f":{ref.selector}" if ref.selector else ""))
        else:
            short[ref.raw] = ref.location
    if len(set(short.values())) != len(short):
        return {ref.raw: ref.raw for ref in refs}
    return short
