"""Test reports -> the JSON report (schema pytest-dhi-cilium/report/v1) and its Markdown twin."""

from __future__ import annotations

import json
import os

from .verdict import CHECK_TIERS

SCHEMA = "pytest-dhi-cilium/report/v1"
_RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}


class ReportBuilder:
    def __init__(self) -> None:
        self.images: dict[str, dict] = {}

    def add(self, report) -> None:
        """Fold one phase report (setup/call/teardown) of a suite test into the entry of its
        check; the worst phase wins, so a teardown error is never hidden by a passed call."""
        data = report.dhi_cilium
        image = self.images.setdefault(data["target"], {
            "ref": data["ref"], "target": data["target"], "digest": "", "index_digest": "",
            "platform": data["platform"],
            "variant": "", "profile": data["profile"], "tiers": data["tiers"], "checks": {},
        })
        if data.get("image"):
            image.update(data["image"])
        outcome = _outcome(report)
        if outcome is None:
            return
        checks = image["checks"]
        previous = checks.get(data["check"])
        if previous and _RANK[previous["outcome"]] >= _RANK[outcome]:
            return
        verdict = data.get("verdict") or {}
        message = verdict.get("message") or _first_line(report)
        checks[data["check"]] = {
            "id": data["check"],
            "tier": data["tier"],
            "outcome": outcome,
            "message": message,
            "evidence": verdict.get("evidence", []) or _error_evidence(report, outcome),
            "expectation": verdict.get("expectation", ""),
            "notes": verdict.get("notes", []),
            "test": report.nodeid.rsplit("::", 1)[-1],
        }

    def document(self) -> dict:
        images = []
        for image in self.images.values():
            entry = dict(image)
            entry["checks"] = list(image["checks"].values())
            entry["result"], entry["not_run"] = _result(entry["checks"], image["tiers"])
            images.append(entry)
        return {"schema": SCHEMA, "images": images}


def _outcome(report) -> str | None:
    if report.when == "call":
        return report.outcome
    if report.failed:
        return "error"
    if report.skipped:
        return "skipped"
    return None  # a passed setup/teardown says nothing on its own


def _first_line(report) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    text = report.longreprtext.strip()
    lines = [l for l in text.splitlines() if l.strip()]
    if not lines:
        return ""
    # pytest.fail(pytrace=False) gives the bare message; a traceback ends in "E   <error>".
    errors = [l[1:].strip() for l in lines if l.startswith("E ")]
    return errors[0] if errors else " ".join(l.strip() for l in lines)[:500]


def _error_evidence(report, outcome: str) -> list[str]:
    if outcome not in ("error", "failed"):
        return []
    lines = [l for l in report.longreprtext.strip().splitlines() if l.strip()]
    return lines[-12:] if len(lines) > 1 else []


# Checks that only run when their option is given; skipping them does not make a run partial.
OPTIONAL_CHECKS = frozenset({"reference-flags", "upgrade-from-upstream"})


def _result(checks: list[dict], tiers: list[str]) -> tuple[str, list[str]]:
    """``fail`` if anything failed or errored; ``pass`` only if every check of the image's
    tiers ran and passed (optional ones may skip); otherwise ``incomplete`` — with what did not
    run (deselected with -k, stopped by -x or Ctrl-C, skipped)."""
    outcomes = {c["id"]: c["outcome"] for c in checks}
    if {"error", "failed"} & set(outcomes.values()):
        return "fail", []
    expected = [c for c, tier in CHECK_TIERS.items() if tier in tiers and c not in OPTIONAL_CHECKS]
    not_run = [c for c in expected if outcomes.get(c) != "passed"]
    return ("incomplete" if not_run or not outcomes else "pass"), not_run


def write_json(document: dict, path: str) -> None:
    _ensure_parent(path)
    with open(path, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=2)
        out.write("\n")


_ICON = {"passed": "✅ passed", "failed": "❌ failed", "error": "💥 error", "skipped": "⏭️ skipped"}


def render_markdown(document: dict) -> str:
    lines = ["# pytest-dhi-cilium report", ""]
    lines += ["| image | platform | variant | profile | digest | result |",
              "|---|---|---|---|---|---|"]
    for image in document["images"]:
        lines.append(f"| `{_cell(image['ref'])}` | {image['platform'] or '-'} | {image['variant'] or '-'} | "
                     f"{image['profile']} | `{image['digest'] or '-'}` | **{image['result'].upper()}** |")
    for image in document["images"]:
        title = image["ref"] + (f" ({image['platform']})" if image["platform"] else "")
        lines += ["", f"## {title}", ""]
        if image.get("variant_reason"):
            lines.append(f"Variant **{image['variant']}** ({image['variant_reason']}); "
                         f"profile **{image['profile']}**; tiers {', '.join(image['tiers'])}.")
            lines.append("")
        if image.get("index_digest"):
            lines += [f"Index `{image['index_digest']}`, this platform's manifest `{image['digest']}`, "
                      f"config `{image.get('config_digest') or '-'}`.", ""]
        lines += ["| check | tier | outcome | message |", "|---|---|---|---|"]
        for check in image["checks"]:
            lines.append(f"| `{check['id']}` | {check['tier']} | {_ICON[check['outcome']]} | {_cell(check['message'])} |")
        details = [c for c in image["checks"] if c["outcome"] != "passed" and (c["evidence"] or c["expectation"])]
        if details:
            lines += ["", "### Evidence", ""]
        for check in details:
            lines.append(f"- **{check['id']}** ({check['outcome']}): {check['message']}")
            if check["expectation"]:
                lines.append(f"  - expected: {check['expectation']}")
            lines += [f"  - `{_cell(e)}`" for e in check["evidence"]]
        if image.get("not_run"):
            lines.append(f"\nNot run: {', '.join(image['not_run'])} — the result is INCOMPLETE.")
        for warning in image.get("warnings") or []:
            lines.append(f"- warning: {warning}")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_markdown(document: dict, path: str) -> None:
    _ensure_parent(path)
    with open(path, "w", encoding="utf-8") as out:
        out.write(render_markdown(document))


def _ensure_parent(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
