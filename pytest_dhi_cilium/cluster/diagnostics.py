"""What a failed cluster check shows besides its verdict: the operator pods' events, their
last 100 log lines (and the previous container's after a restart), and ``helm get values``;
for cilium-ready, the agent pods' events and the logs of their containers that ran.
The Deployment's conditions come from the snapshot itself (checks/cluster.py)."""

from __future__ import annotations

from ..checks.cluster import OPERATOR_CONTAINER, condition, pod_name

LOG_LINES = 100
AGENT_PODS_SHOWN = 3  # a failing DaemonSet fails alike on every node: a few pods tell the story


def format_events(pod: dict, events: list[dict]) -> str:
    def when(e: dict) -> str:
        return e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp") or ""

    lines = [f"{when(e)} {e.get('type', '?')} {e.get('reason', '?')}: {(e.get('message') or '').strip()}"
             + (f" (x{e['count']})" if (e.get("count") or 1) > 1 else "")
             for e in sorted(events, key=when)]
    return f"events of pod {pod_name(pod)}:\n" + ("\n".join(f"  {line}" for line in lines) or "  (none)")


def format_logs(pod: dict, text: str, previous: bool = False, limit: int = LOG_LINES,
                container: str = OPERATOR_CONTAINER) -> str:
    lines = (text or "").rstrip("\n").splitlines()[-limit:]
    which = "previous (crashed) container" if previous else "container"
    return (f"last {len(lines)} log lines of pod {pod_name(pod)} {which} {container}:\n"
            + ("\n".join(f"  {line}" for line in lines) or "  (empty)"))


def gather(kube, helm, pods: list[dict], previous_logs: dict[str, str]) -> list[str]:
    """``previous_logs``: the crashed containers' log tails, already read for the verdict (pod -> text)."""
    out = []
    for pod in pods:
        out.append(format_events(pod, kube.events(pod)))
        out.append(format_logs(pod, kube.logs(pod, OPERATOR_CONTAINER)))
        if pod_name(pod) in previous_logs:
            out.append(format_logs(pod, previous_logs[pod_name(pod)], previous=True))
    out.append("helm get values cilium:\n" + "\n".join(f"  {line}" for line in helm.values().splitlines()))
    return out


def _agent_logs(kube, pod: dict) -> list[str]:
    """Logs of the containers that ran and matter: the agent's, and an init container's that
    failed or restarted (a completed one did its job). One that never started has none: said so."""
    out = []
    status = pod.get("status") or {}
    for init, statuses in ((True, status.get("initContainerStatuses") or []),
                           (False, status.get("containerStatuses") or [])):
        for cs in statuses:
            state, restarts, name = cs.get("state") or {}, cs.get("restartCount") or 0, cs.get("name")
            completed = (state.get("terminated") or {}).get("exitCode") == 0
            if "waiting" in state and not restarts:
                out.append(f"pod {pod_name(pod)} {'init ' if init else ''}container {name} has not started "
                           f"(waiting {state['waiting'].get('reason')}): no logs")
                continue
            if not (init and completed and not restarts):
                out.append(format_logs(pod, kube.logs(pod, name), container=name))
            if restarts:
                out.append(format_logs(pod, kube.logs(pod, name, previous=True), previous=True, container=name))
    return out


def gather_agents(kube, pods: list[dict]) -> list[str]:
    """The agent pods that are not Ready (all of them when every one is), at most AGENT_PODS_SHOWN."""
    shown = [p for p in pods if (condition(p, "Ready") or {}).get("status") != "True"] or pods
    out = []
    for pod in shown[:AGENT_PODS_SHOWN]:
        out.append(format_events(pod, kube.events(pod)))
        out += _agent_logs(kube, pod)
    if len(shown) > AGENT_PODS_SHOWN:
        out.append(f"(+{len(shown) - AGENT_PODS_SHOWN} more agent pod(s) like these, not shown)")
    return out
