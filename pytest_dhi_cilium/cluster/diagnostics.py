"""What a failed cluster check shows besides its verdict: the operator pods' events, their
last 100 log lines (and the previous container's after a restart), and ``helm get values``.
The Deployment's conditions come from the snapshot itself (checks/cluster.py)."""

from __future__ import annotations

from ..checks.cluster import OPERATOR_CONTAINER, container_status, pod_name

LOG_LINES = 100


def format_events(pod: dict, events: list[dict]) -> str:
    def when(e: dict) -> str:
        return e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp") or ""

    lines = [f"{when(e)} {e.get('type', '?')} {e.get('reason', '?')}: {(e.get('message') or '').strip()}"
             + (f" (x{e['count']})" if (e.get("count") or 1) > 1 else "")
             for e in sorted(events, key=when)]
    return f"events of pod {pod_name(pod)}:\n" + ("\n".join(f"  {line}" for line in lines) or "  (none)")


def format_logs(pod: dict, text: str, previous: bool = False, limit: int = LOG_LINES) -> str:
    lines = (text or "").rstrip("\n").splitlines()[-limit:]
    which = "previous (crashed) container" if previous else "container"
    return (f"last {len(lines)} log lines of pod {pod_name(pod)} {which} {OPERATOR_CONTAINER}:\n"
            + ("\n".join(f"  {line}" for line in lines) or "  (empty)"))


def gather(kube, helm, pods: list[dict]) -> list[str]:
    out = []
    for pod in pods:
        out.append(format_events(pod, kube.events(pod)))
        out.append(format_logs(pod, kube.logs(pod, OPERATOR_CONTAINER)))
        if (container_status(pod) or {}).get("restartCount"):
            out.append(format_logs(pod, kube.logs(pod, OPERATOR_CONTAINER, previous=True), previous=True))
    out.append("helm get values cilium:\n" + "\n".join(f"  {line}" for line in helm.values().splitlines()))
    return out
