"""Test reports -> the JSON report (schema pytest-dhi-cilium/report/v1) and its Markdown twin."""

from __future__ import annotations

import json
import os
import re

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
        image = self.expect(data["target"], data["ref"], data["platform"], data["profile"], data["tiers"])
        if data.get("image"):
            image.update(data["image"])
        error = data.get("setup_error")
        if error:
            # The check never ran (the image could not be read, no engine, ...) and is listed in
            # not_run. The plugin has already turned every repeat of an image's error (same
            # cause) into a skip, so only the first, failed report adds the sentence.
            if report.failed:
                image["errors"].append(error["message"])
            return
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
            "details": verdict.get("details", {}),
            "test": report.nodeid.rsplit("::", 1)[-1],
        }

    def expect(self, target: str, ref: str, platform: str, profile: str, tiers: list[str]) -> dict:
        """The entry of one image (and platform), created empty: an image whose checks were all
        left out (-k, -x, Ctrl-C, SIGTERM) is still reported, with everything in not_run."""
        return self.images.setdefault(target, {
            "ref": ref, "target": target, "digest": "", "index_digest": "", "platform": platform, "variant": "",
            "profile": profile, "tiers": tiers, "errors": [], "checks": {},
        })

    def document(self, order: list[str] = ()) -> dict:
        images = []
        rank = {target: i for i, target in enumerate(order)}
        for image in sorted(self.images.values(), key=lambda i: rank.get(i["target"], len(rank))):
            entry = dict(image)
            entry["checks"] = list(image["checks"].values())
            entry["result"], entry["not_run"] = _result(entry["checks"], image["tiers"], image["errors"])
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


def _result(checks: list[dict], tiers: list[str], errors: list[str] = ()) -> tuple[str, list[str]]:
    """``fail`` if the image could not be checked or anything failed or errored; ``pass`` only
    if every check of the image's tiers ran and passed (optional ones may skip); otherwise
    ``incomplete``. ``not_run`` always lists what did not run — deselected with -k, stopped by
    -x, Ctrl-C or SIGTERM, stopped by an error, skipped — whatever the result."""
    outcomes = {c["id"]: c["outcome"] for c in checks}
    expected = [c for c, tier in CHECK_TIERS.items() if tier in tiers]
    not_run = [c for c in expected
               if c not in outcomes or (outcomes[c] == "skipped" and c not in OPTIONAL_CHECKS)]
    if errors or {"error", "failed"} & set(outcomes.values()):
        return "fail", not_run
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
        lines.append(f"| {_code(image['ref'])} | {image['platform'] or '-'} | {image['variant'] or '-'} | "
                     f"{image['profile']} | {_code(image['digest'] or '-')} | **{image['result'].upper()}** |")
    for image in document["images"]:
        title = image["ref"] + (f" ({image['platform']})" if image["platform"] else "")
        lines += ["", f"## {_text(title)}", ""]
        if image.get("variant_reason"):
            lines.append(f"Variant **{image['variant']}** ({_text(image['variant_reason'])}); "
                         f"profile **{image['profile']}**; tiers {', '.join(image['tiers'])}.")
            lines.append("")
        if image.get("index_digest"):
            lines += [f"Index `{image['index_digest']}`, this platform's manifest `{image['digest']}`, "
                      f"config `{image.get('config_digest') or '-'}`.", ""]
        for error in image.get("errors") or []:
            lines += [f"**Error:** {_text(error)}", ""]
        if image["checks"]:
            lines += ["| check | tier | outcome | message |", "|---|---|---|---|"]
        for check in image["checks"]:
            lines.append(f"| `{check['id']}` | {check['tier']} | {_ICON[check['outcome']]} | {_cell(check['message'])} |")
        details = [c for c in image["checks"] if c["outcome"] != "passed" and (c["evidence"] or c["expectation"])]
        if details:
            lines += ["", "### Evidence", ""]
        for check in details:
            lines.append(f"- **{check['id']}** ({check['outcome']}): {_text(check['message'])}")
            if check["expectation"]:
                lines.append(f"  - expected: {_text(check['expectation'])}")
            lines += [f"  - {_code(e)}" for e in check["evidence"]]
        if image.get("not_run"):
            lines.append(f"\nNot run: {', '.join(image['not_run'])} — the result is {image['result'].upper()}.")
        for warning in image.get("warnings") or []:
            lines.append(f"- warning: {_text(warning)}")
    if document.get("cluster_cleanup"):
        lines += ["", "## Cluster cleanup", ""] + [f"- {_text(line)}" for line in document["cluster_cleanup"]]
    return "\n".join(lines) + "\n"


def _text(text: str) -> str:
    """Free text on one line: its own backticks stay literal (an odd one would otherwise open
    a code span that swallows the rest of the line)."""
    return str(text).replace("\n", " ").replace("`", "\\`")


def _cell(text: str) -> str:
    return _text(text).replace("|", "\\|")


def _code(text: str) -> str:
    """A code span that holds any text: fenced by one more backtick than the longest run
    inside it, padded when it starts or ends with one (CommonMark), pipes escaped for tables."""
    text = str(text).replace("\n", " ").replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def write_markdown(document: dict, path: str) -> None:
    _ensure_parent(path)
    with open(path, "w", encoding="utf-8") as out:
        out.write(render_markdown(document))


def _ensure_parent(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
