"""The one value every check returns: a decision plus the evidence behind it."""

from __future__ import annotations

from dataclasses import dataclass, field

# Stable check ids and their tier: they appear in test ids, -k expressions and the report.
CHECK_TIERS: dict[str, str] = {
    "no-shell": "image",
    "no-package-manager": "image",
    "nonroot-user": "image",
    "entrypoint": "image",
    "operator-binary": "image",
    "gops-writable": "image",
    "help": "runtime",
    "version": "runtime",
    "no-shell-runtime": "runtime",
    "runtime-user": "runtime",
    "restricted-run": "runtime",
    "reference-flags": "runtime",
    "operator-starts": "runtime",
    "operator-healthy": "cluster",
    "operator-image-in-use": "cluster",
    "operator-runtime-user": "cluster",
    "cilium-ready": "cluster",
    "upgrade-from-upstream": "cluster",
}


@dataclass(frozen=True)
class Verdict:
    """Outcome of one check on one image.

    ``message`` is one line a reader can act on; ``evidence`` lists what was found and where
    (paths, layers, command output heads) so nobody has to open the image to understand it;
    ``expectation`` says which expectations applied (e.g. the dev variant's).
    """

    check: str
    ok: bool
    message: str
    evidence: tuple[str, ...] = ()
    expectation: str = ""
    notes: tuple[str, ...] = field(default=())
    # Structured, complete evidence for the JSON report (e.g. every link to a shell provider);
    # ``evidence`` stays short enough for a terminal.
    details: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.check not in CHECK_TIERS:
            raise ValueError(f"unknown check id {self.check!r}")

    @property
    def tier(self) -> str:
        return CHECK_TIERS[self.check]

    def explain(self) -> str:
        lines = [f"{self.check}: {self.message}"]
        if self.expectation:
            lines.append(f"  expected: {self.expectation}")
        lines += [f"  - {item}" for item in self.evidence]
        lines += [f"  note: {item}" for item in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "id": self.check,
            "tier": self.tier,
            "ok": self.ok,
            "message": self.message,
            "expectation": self.expectation,
            "evidence": list(self.evidence),
            "notes": list(self.notes),
            "details": self.details,
        }


def passed(check: str, message: str, **kw) -> Verdict:
    return Verdict(check, True, message, **_tuples(kw))


def failed(check: str, message: str, **kw) -> Verdict:
    return Verdict(check, False, message, **_tuples(kw))


def _tuples(kw: dict) -> dict:
    return {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in kw.items()}
