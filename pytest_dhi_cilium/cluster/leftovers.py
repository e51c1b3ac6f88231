"""What a run leaves behind on a cluster it did not create, and what it takes back (pure).

``helm uninstall`` removes the release's own objects only. Cilium's operator creates its
``*.cilium.io`` CRDs and the leader-election Lease itself, and taints a node
``node.cilium.io/agent-not-ready:NoSchedule`` while an agent is scheduled there but not running
(``set-cilium-node-taints``, on by default in the chart; the operator lifts the taint once the
agent runs, so an agent that never became ready leaves the node unschedulable). An inventory
taken before the first install and one taken after the uninstall decide: what the run created
goes, what was there before stays — a CRD that existed is never deleted (its objects would go
with it), a taint that was on a node stays, and a Cilium taint the operator lifted is put back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..checks.cluster import LEASE_NAME

CRD_SUFFIX = ".cilium.io"
CILIUM_DOMAIN = "cilium.io"


def is_cilium_crd(crd: dict) -> bool:
    return ((crd.get("metadata") or {}).get("name") or "").endswith(CRD_SUFFIX)


def is_cilium_taint(taint: dict) -> bool:
    """``node.cilium.io/agent-not-ready`` (the chart's agentNotReadyTaintKey may rename the key,
    not the domain it is meant to be in); taints of anyone else are never touched."""
    prefix, slash, _ = (taint.get("key") or "").partition("/")
    return bool(slash) and (prefix == CILIUM_DOMAIN or prefix.endswith("." + CILIUM_DOMAIN))


def taint_text(taint: dict) -> str:
    value = taint.get("value")
    return f"{taint.get('key')}{'=' + value if value else ''}:{taint.get('effect')}"


def _same_taint(a: dict, b: dict) -> bool:
    """Kubernetes keeps one taint per key and effect."""
    return (a.get("key"), a.get("effect")) == (b.get("key"), b.get("effect"))


def _node_name(node: dict) -> str:
    return (node.get("metadata") or {}).get("name") or "?"


def node_taints(node: dict) -> list[dict]:
    return list((node.get("spec") or {}).get("taints") or [])


@dataclass(frozen=True)
class Inventory:
    """Cilium's cluster-wide state at one moment: the ``*.cilium.io`` CRD names, whether the
    operator's Lease exists, every node's taints (all of them: a patch replaces the list)."""
    crds: frozenset[str]
    lease: bool
    taints: dict[str, list[dict]] = field(default_factory=dict)
    release: bool = False  # a helm release `cilium` existed


def inventory(crds: list[dict], lease: dict | None, nodes: list[dict], release: bool = False) -> Inventory:
    """From the API objects as listed (CRDs, the Lease or None, Nodes)."""
    return Inventory(frozenset(c["metadata"]["name"] for c in crds if is_cilium_crd(c)), lease is not None,
                     {_node_name(n): node_taints(n) for n in nodes}, release)


@dataclass
class TaintChange:
    """One node's taints: ``current`` as read (the patch tests it is unchanged), ``wanted``."""
    node: str
    current: list[dict]
    wanted: list[dict]
    removed: list[str]
    restored: list[str]


def taint_change(before: Inventory, node: dict) -> TaintChange | None:
    """Cilium taints on ``node`` that were not there before go; Cilium taints that were there
    before and are gone come back. ``None``: nothing to change. A node that joined during the
    run had no taint of ours before."""
    name, current = _node_name(node), node_taints(node)
    earlier = [t for t in before.taints.get(name, []) if is_cilium_taint(t)]
    added = [t for t in current if is_cilium_taint(t) and not any(_same_taint(t, e) for e in earlier)]
    lifted = [e for e in earlier if not any(_same_taint(e, t) for t in current)] if name in before.taints else []
    if not added and not lifted:
        return None
    wanted = [t for t in current if t not in added] + lifted
    return TaintChange(name, current, wanted, [taint_text(t) for t in added], [taint_text(t) for t in lifted])


@dataclass
class Plan:
    crds_to_delete: list[str]
    crds_kept: list[str]  # existed before the run (and still do)
    lease_to_delete: bool
    lease_kept: bool
    taints: list[TaintChange]
    taints_kept: list[str]  # "TAINT on NODE": Cilium taints that were there before the run

    @property
    def empty(self) -> bool:
        return not (self.crds_to_delete or self.lease_to_delete or self.taints)


def plan(before: Inventory, crds: list[dict], lease: dict | None, nodes: list[dict]) -> Plan:
    """What to remove (and put back) given the inventory before the run and the objects now."""
    now = inventory(crds, lease, nodes)
    changes = [c for c in (taint_change(before, n) for n in nodes) if c is not None]
    kept = [f"{taint_text(t)} on {node}" for node, taints in sorted(now.taints.items()) for t in taints
            if is_cilium_taint(t) and any(_same_taint(t, e) for e in before.taints.get(node, []))]
    return Plan(sorted(now.crds - before.crds), sorted(now.crds & before.crds),
                now.lease and not before.lease, now.lease and before.lease, changes, kept)


def _names(names: list[str], limit: int = 12) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def summary(plan: Plan, namespace: str, failed: dict[str, str], still_deleting: list[str] = ()) -> list[str]:
    """One line per kind of object: what was removed, put back, kept (there before), and what
    could not be removed (``failed``: object -> why; ``still_deleting``: CRDs whose deletion
    was accepted but had not finished). Objects are named as in ``failed``'s keys: CRD names,
    ``Lease NS/NAME``, ``taints of node NAME``."""
    lines = []
    crds_failed = [n for n in plan.crds_to_delete if n in failed]
    crds_slow = [n for n in plan.crds_to_delete if n in still_deleting and n not in failed]
    crds_gone = [n for n in plan.crds_to_delete if n not in failed and n not in still_deleting]
    if plan.crds_to_delete or plan.crds_kept:
        parts = ([f"removed {len(crds_gone)} created during the run ({_names(crds_gone)})"] if crds_gone else []) \
            + ([f"deletion of {len(crds_slow)} not finished ({_names(crds_slow)})"] if crds_slow else []) \
            + ([f"could not remove {len(crds_failed)}: "
                + "; ".join(f"{n} ({failed[n]})" for n in crds_failed)] if crds_failed else []) \
            + ([f"kept {len(plan.crds_kept)} that existed before the run ({_names(plan.crds_kept)})"]
               if plan.crds_kept else [])
        lines.append(f"*{CRD_SUFFIX} CRDs: " + "; ".join(parts))
    lease = f"Lease {namespace}/{LEASE_NAME}"
    if plan.lease_to_delete:
        lines.append(f"{lease}: " + (f"could not remove it ({failed[lease]})" if lease in failed
                                     else "removed (created during the run)"))
    elif plan.lease_kept:
        lines.append(f"{lease}: kept (existed before the run)")
    parts = []
    for change in plan.taints:
        key = f"taints of node {change.node}"
        if key in failed:
            left = [f"left {', '.join(change.removed)}"] if change.removed else []
            missing = [f"not restored {', '.join(change.restored)}"] if change.restored else []
            parts.append(f"could not change {key} ({failed[key]}): {'; '.join(left + missing)}")
            continue
        if change.removed:
            parts.append(f"removed {', '.join(change.removed)} from {change.node}")
        if change.restored:
            parts.append(f"restored {', '.join(change.restored)} on {change.node} (there before the run, "
                         "lifted by the operator)")
    if plan.taints_kept:
        parts.append(f"kept {', '.join(plan.taints_kept)} (there before the run)")
    if parts:
        lines.append("Cilium node taints: " + "; ".join(parts))
    if not lines:
        lines.append(f"no *{CRD_SUFFIX} CRD, Lease {LEASE_NAME} or Cilium node taint before or after the run")
    return lines
