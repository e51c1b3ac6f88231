"""Cluster-tier checks: verdicts over Kubernetes objects in the API's JSON shape (what
``kubectl get -o json`` prints, or ``ApiClient().sanitize_for_serialization(model)`` returns)
plus what was observed on the nodes. No I/O here.

The ``*_problems`` helpers are shared with cluster/waiting.py, so "is the rollout done?" while
waiting and "is the operator healthy?" in the verdict are the same decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..verdict import Verdict, failed, passed
from .users import RuntimeUser

OPERATOR_DEPLOYMENT = "cilium-operator"
OPERATOR_CONTAINER = "cilium-operator"
OPERATOR_SELECTOR = {"io.cilium/app": "operator", "name": "cilium-operator"}  # the chart's
AGENT_DAEMONSET = "cilium"
LEASE_NAME = "cilium-operator-resource-lock"
OPERATOR_CRDS = ("ciliumidentities", "ciliumnodes", "ciliumendpoints", "ciliumnetworkpolicies",
                 "ciliumclusterwidenetworkpolicies")
UPSTREAM_OPERATOR = "quay.io/cilium/operator"  # operator, operator-generic, operator-aws, ...
LEASE_SKEW = 5.0  # seconds of clock difference tolerated between this host and the API server
# Waiting reasons no amount of waiting cures (CrashLoopBackOff is judged by its restart count).
HOPELESS_REASONS = frozenset({"ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError",
                              "CreateContainerError", "RunContainerError"})
CRASHLOOP_GIVE_UP = 3


# -- observations (filled by cluster/, judged here) ----------------------------------------------


@dataclass(frozen=True)
class Healthz:
    """One GET of the operator's /healthz. ``status`` None: the endpoint could not be reached
    from where we asked (``error`` says why), which is not the same as a bad answer."""

    pod: str
    method: str  # "node netns" (nsenter on the kind node) or "pod proxy" (API server)
    url: str
    status: int | None
    body: str = ""
    error: str = ""


@dataclass(frozen=True)
class ProcessUser:
    """The operator's UID/GID. ``observed``: read from a live process (/proc/<pid>/status);
    otherwise only configured — the OCI spec's process.user, which is also all the kubelet's
    containerStatuses[].user carries (containerd copies it from the spec): the IDs the first
    process was started with, not necessarily those it holds."""

    pod: str
    uid: int | None
    gid: int | None
    source: str  # where the numbers were read
    evidence: tuple[str, ...] = ()
    observed: bool = False


@dataclass(frozen=True)
class NodeImage:
    """What a node's container runtime holds under the image name (``crictl inspecti``)."""

    node: str
    name: str
    id: str  # the image ID = config digest
    repo_digests: tuple[str, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class ImageUnderTest:
    name: str  # the reference the chart was given (operator.image.override)
    digest: str  # manifest digest, or the config digest when the input has no manifest
    config_digest: str


@dataclass
class Snapshot:
    namespace: str
    taken_at: datetime
    deployment: dict | None = None
    pods: list[dict] = field(default_factory=list)  # the operator Deployment's pods
    all_pods: list[dict] = field(default_factory=list)  # every namespace
    lease: dict | None = None
    crds: dict[str, dict | None] = field(default_factory=dict)  # plural -> CRD
    daemonset: dict | None = None
    nodes: list[dict] = field(default_factory=list)
    healthz: list[Healthz] = field(default_factory=list)
    users: list[ProcessUser] = field(default_factory=list)
    users_unobservable: str = ""  # why no process user could be read (BYO cluster, no node access)
    node_images: list[NodeImage] = field(default_factory=list)
    settle: float = 0.0
    waited: str = ""  # how the wait ended: "ready after 84s" / "gave up after 600s: ..."
    diagnostics: list[str] = field(default_factory=list)  # events, logs, helm values
    api_error: str = ""  # the API server could not be read for this snapshot


@dataclass
class Upgrade:
    from_name: str
    before: Snapshot | None  # None: the upstream install itself failed (``error``)
    after: Snapshot | None
    error: str = ""


# -- small readers over API-shaped dicts --------------------------------------------------------


def _get(obj: dict | None, *keys, default=None):
    for key in keys:
        if not isinstance(obj, dict):
            return default
        obj = obj.get(key)
    return default if obj is None else obj


def pod_name(pod: dict) -> str:
    return f"{_get(pod, 'metadata', 'namespace', default='?')}/{_get(pod, 'metadata', 'name', default='?')}"


def condition(obj: dict | None, kind: str) -> dict | None:
    return next((c for c in _get(obj, "status", "conditions", default=[]) if c.get("type") == kind), None)


def _cond_text(cond: dict | None, kind: str) -> str:
    if cond is None:
        return f"no {kind} condition"
    why = ": ".join(p for p in (cond.get("reason"), cond.get("message")) if p)
    return f"{kind}={cond.get('status')}" + (f" ({why})" if why else "")


def _cond(obj: dict | None, kind: str) -> str:
    return _cond_text(condition(obj, kind), kind)


def _is_true(obj: dict | None, kind: str) -> bool:
    cond = condition(obj, kind)
    return cond is not None and cond.get("status") == "True"


def container_status(pod: dict, name: str = OPERATOR_CONTAINER) -> dict | None:
    statuses = _get(pod, "status", "containerStatuses", default=[])
    return next((s for s in statuses if s.get("name") == name), statuses[0] if len(statuses) == 1 else None)


def container_spec(pod: dict, name: str = OPERATOR_CONTAINER) -> dict | None:
    containers = _get(pod, "spec", "containers", default=[])
    return next((c for c in containers if c.get("name") == name), containers[0] if len(containers) == 1 else None)


def digest_of(image_id: str) -> str:
    """``docker.io/x/op@sha256:ab..`` or ``sha256:ab..`` -> ``sha256:ab..`` ("" when none)."""
    ref = (image_id or "").split("://", 1)[-1]  # docker-pullable:// from dockershim days
    if "@" in ref:
        return ref.rsplit("@", 1)[1]
    return ref if ref.startswith("sha256:") else ""


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


# -- shared problem finders ----------------------------------------------------------------------


def _where(kind: str, obj: dict) -> str:
    return f"{kind} {_get(obj, 'metadata', 'namespace')}/{_get(obj, 'metadata', 'name')}"


def _generation_problems(obj: dict, where: str) -> list[str]:
    generation = _get(obj, "metadata", "generation", default=0)
    observed = _get(obj, "status", "observedGeneration", default=0)
    return [] if observed == generation else [
        f"{where}: observedGeneration {observed} != generation {generation} "
        "(the controller has not acted on the latest spec)"]


def deployment_problems(dep: dict | None) -> list[str]:
    """cilium-cli's rule (Replicas == ReadyReplicas, ObservedGeneration == Generation,
    UpdatedReplicas >= Replicas), plus Available and no leftover old pods."""
    if dep is None:
        return [f"Deployment {OPERATOR_DEPLOYMENT} does not exist"]
    where = _where("Deployment", dep)
    want = _get(dep, "spec", "replicas", default=1)
    status = _get(dep, "status", default={})
    problems = _generation_problems(dep, where)
    if status.get("updatedReplicas", 0) < want:
        problems.append(f"{where}: updatedReplicas {status.get('updatedReplicas', 0)} < replicas {want}")
    if status.get("readyReplicas", 0) != want:
        problems.append(f"{where}: readyReplicas {status.get('readyReplicas', 0)} != replicas {want}")
    if status.get("replicas", 0) > want:
        problems.append(f"{where}: {status['replicas']} pods for {want} replicas (old pods not gone yet)")
    if not _is_true(dep, "Available"):
        problems.append(f"{where}: {_cond(dep, 'Available')}")
    return problems


def pod_readiness_problems(pod: dict) -> list[str]:
    name = pod_name(pod)
    if _get(pod, "metadata", "deletionTimestamp"):
        return [f"pod {name} is terminating"]
    cs = container_status(pod)
    if cs is None:
        return [f"pod {name}: container {OPERATOR_CONTAINER} has no status yet "
                f"(phase {_get(pod, 'status', 'phase', default='?')})"]
    problems = []
    waiting, terminated = _get(cs, "state", "waiting"), _get(cs, "state", "terminated")
    if waiting:
        problems.append(f"pod {name}: container {cs.get('name')} waiting: {waiting.get('reason')}"
                        + (f" ({waiting['message']})" if waiting.get("message") else ""))
    elif terminated:
        problems.append(f"pod {name}: container {cs.get('name')} terminated: exit "
                        f"{terminated.get('exitCode')} ({terminated.get('reason')})")
    if not _is_true(pod, "Ready"):
        problems.append(f"pod {name}: {_cond(pod, 'Ready')}")
    return problems


def restart_problems(pod: dict) -> list[str]:
    problems = []
    for cs in _get(pod, "status", "containerStatuses", default=[]):
        count = cs.get("restartCount", 0)
        if count:
            last = _get(cs, "lastState", "terminated", default={})
            detail = (f"; last exit {last.get('exitCode')} ({last.get('reason')}) at {last.get('finishedAt')}"
                      if last else "")
            problems.append(f"pod {pod_name(pod)}: container {cs.get('name')} restarted {count} time(s){detail}")
    return problems


def hopeless(pods: list[dict]) -> str:
    """A reason to stop waiting now: a state that no amount of waiting cures."""
    for pod in pods:
        for cs in _get(pod, "status", "containerStatuses", default=[]):
            reason = _get(cs, "state", "waiting", "reason", default="")
            crashlooping = reason == "CrashLoopBackOff" and cs.get("restartCount", 0) >= CRASHLOOP_GIVE_UP
            if reason in HOPELESS_REASONS or crashlooping:
                message = _get(cs, "state", "waiting", "message", default="")
                return (f"pod {pod_name(pod)}: container {cs.get('name')} {reason} after "
                        f"{cs.get('restartCount', 0)} restart(s)" + (f": {message}" if message else ""))
    return ""


def _hostname(pod: dict) -> str:
    """What os.Hostname() returns in the pod: its node's name with hostNetwork."""
    if _get(pod, "spec", "hostNetwork"):
        return _get(pod, "spec", "nodeName", default="")
    return _get(pod, "spec", "hostname") or _get(pod, "metadata", "name", default="")


def lease_holder(lease: dict | None, pods: list[dict]) -> dict | None:
    """The operator pod whose identity holds the lease: the operator's identity is
    ``<hostname>-<10 random chars>`` (operator/cmd/root.go)."""
    holder = _get(lease, "spec", "holderIdentity", default="")
    return next((p for p in pods if holder and _hostname(p) and holder.startswith(f"{_hostname(p)}-")), None)


def lease_problems(lease: dict | None, pods: list[dict], now: datetime) -> list[str]:
    if lease is None:
        return [f"Lease {LEASE_NAME} does not exist (no operator has run leader election)"]
    where = _where("Lease", lease)
    holder = _get(lease, "spec", "holderIdentity", default="")
    if not holder:
        return [f"{where} is held by nobody (holderIdentity empty)"]
    if lease_holder(lease, pods) is None:
        hosts = ", ".join(f"{pod_name(p)} (hostname {_hostname(p)})" for p in pods) or "none"
        return [f"{where} is held by {holder!r}, which is none of the operator pods: {hosts}"]
    renewed = parse_time(_get(lease, "spec", "renewTime"))
    duration = _get(lease, "spec", "leaseDurationSeconds", default=15)
    if renewed is None:
        return [f"{where}: held by {holder!r} but never renewed"]
    age = (now - renewed).total_seconds()
    if age > duration + LEASE_SKEW:
        return [f"{where}: held by {holder!r} but expired: last renewed {age:.0f}s ago, "
                f"leaseDurationSeconds {duration}"]
    return []


def crd_problems(crds: dict[str, dict | None]) -> list[str]:
    problems = []
    for plural in OPERATOR_CRDS:
        crd = crds.get(plural)
        if crd is None:
            problems.append(f"CRD {plural}.cilium.io does not exist")
        elif not _is_true(crd, "Established"):
            problems.append(f"CRD {plural}.cilium.io: {_cond(crd, 'Established')}")
    return problems


def daemonset_problems(ds: dict | None) -> list[str]:
    if ds is None:
        return [f"DaemonSet {AGENT_DAEMONSET} does not exist"]
    where = _where("DaemonSet", ds)
    status = _get(ds, "status", default={})
    desired = status.get("desiredNumberScheduled", 0)
    problems = [] if desired else [f"{where}: no node is scheduled to run the agent (desiredNumberScheduled 0)"]
    for key in ("numberReady", "updatedNumberScheduled", "numberAvailable"):
        if desired and status.get(key, 0) != desired:
            problems.append(f"{where}: {key} {status.get(key, 0)} != desiredNumberScheduled {desired}")
    return problems + _generation_problems(ds, where)


def _node_line(node: dict) -> str:
    return f"node {_get(node, 'metadata', 'name')}: {_cond(node, 'Ready')}"


def node_problems(nodes: list[dict]) -> list[str]:
    if not nodes:
        return ["the cluster lists no node"]
    return [_node_line(n) for n in nodes if not _is_true(n, "Ready")]


def rollout_pending(snap: Snapshot) -> list[str]:
    """Everything the waiter waits for; empty when the install has converged."""
    if snap.api_error:
        return [f"API server: {snap.api_error}"]
    pending = deployment_problems(snap.deployment)
    pending += [p for pod in snap.pods for p in pod_readiness_problems(pod)]
    if snap.deployment is not None and not snap.pods:
        pending.append(f"no pod of Deployment {OPERATOR_DEPLOYMENT} yet")
    pending += daemonset_problems(snap.daemonset) + node_problems(snap.nodes) + crd_problems(snap.crds)
    pending += lease_problems(snap.lease, snap.pods, snap.taken_at)
    return pending


# -- verdict helpers -----------------------------------------------------------------------------


def _failed(check: str, problems: list[str], evidence: list[str], snap: Snapshot | None, **kw) -> Verdict:
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    context, extra = [], []
    if snap is not None:
        context = [f"API server unreadable at the last observation: {snap.api_error}"] if snap.api_error else []
        context += [f"wait: {snap.waited}"] if snap.waited else []
        extra = _deployment_summary(snap.deployment) + snap.diagnostics
    return failed(check, problems[0] + more, evidence=problems[1:] + context + evidence + extra, **kw)


def _deployment_summary(dep: dict | None) -> list[str]:
    if dep is None:
        return []
    conds = "; ".join(_cond_text(c, c.get("type", "?")) for c in _get(dep, "status", "conditions", default=[]))
    return [f"Deployment {OPERATOR_DEPLOYMENT} conditions: {conds or 'none'}"]


def _pod_line(pod: dict) -> str:
    cs = container_status(pod) or {}
    return (f"pod {pod_name(pod)} on node {_get(pod, 'spec', 'nodeName', default='?')}: "
            f"{_cond(pod, 'Ready')}, restarts {cs.get('restartCount', 0)}, "
            f"image {cs.get('image', '?')}, imageID {cs.get('imageID') or 'none'}")


def _readiness_probe_is_healthz(pod: dict) -> bool:
    probe = _get(container_spec(pod), "readinessProbe", "httpGet", default={})
    return probe.get("path") == "/healthz"


def _healthz_problems(snap: Snapshot) -> tuple[list[str], list[str], list[str]]:
    problems, evidence, notes = [], [], []
    for pod in snap.pods:
        name = pod_name(pod)
        seen = [h for h in snap.healthz if h.pod == name]
        good = [h for h in seen if h.status == 200]
        answered = [h for h in seen if h.status is not None and h.status != 200]
        for h in seen:
            answer = f"HTTP {h.status} {h.body[:80]!r}" if h.status is not None else f"unreachable: {h.error}"
            evidence.append(f"/healthz of {name} via {h.method} ({h.url}): {answer}")
        if good:
            continue
        if answered:
            problems.append(f"pod {name}: /healthz answered HTTP {answered[0].status} via {answered[0].method}")
        elif _is_true(pod, "Ready") and _readiness_probe_is_healthz(pod):
            # The chart binds /healthz to 127.0.0.1 in the pod's network namespace; where we
            # cannot enter it, the kubelet's readiness probe (an HTTP GET of /healthz) is the witness.
            notes.append(f"{name}: /healthz not reachable from here; the kubelet's readiness probe "
                         "GET /healthz succeeds (Ready=True)")
        else:
            problems.append(f"pod {name}: /healthz not observed answering 200"
                            + (f" ({seen[0].error})" if seen and seen[0].error else ""))
    return problems, evidence, notes


# -- the checks ----------------------------------------------------------------------------------


def operator_healthy(snap: Snapshot) -> Verdict:
    expectation = (f"Deployment {OPERATOR_DEPLOYMENT} Available and rolled out; its pods Ready with no "
                   f"restart after a {snap.settle:.0f}s settle window; /healthz 200; lease {LEASE_NAME} held "
                   f"by an operator pod; CRDs {', '.join(OPERATOR_CRDS)} Established")
    problems = deployment_problems(snap.deployment)
    if snap.deployment is not None and not snap.pods:
        problems.append(f"Deployment {OPERATOR_DEPLOYMENT} has no pod")
    for pod in snap.pods:
        problems += pod_readiness_problems(pod) + restart_problems(pod)
    health_problems, evidence, notes = _healthz_problems(snap)
    problems += health_problems
    problems += lease_problems(snap.lease, snap.pods, snap.taken_at)
    problems += crd_problems(snap.crds)
    evidence = [_pod_line(p) for p in snap.pods] + evidence
    if problems:
        return _failed("operator-healthy", problems, evidence, snap, expectation=expectation, notes=notes)
    holder = lease_holder(snap.lease, snap.pods)
    evidence.append(f"Lease {LEASE_NAME}: holderIdentity {_get(snap.lease, 'spec', 'holderIdentity')!r} "
                    f"= pod {pod_name(holder)}, renewed {_get(snap.lease, 'spec', 'renewTime')}")
    evidence.append(f"CRDs Established: {', '.join(p + '.cilium.io' for p in OPERATOR_CRDS)}")
    return passed("operator-healthy",
                  f"{len(snap.pods)}/{_get(snap.deployment, 'spec', 'replicas', default=1)} operator pod(s) "
                  f"Ready with no restart over {snap.settle:.0f}s, /healthz 200, lease held, CRDs Established",
                  evidence=evidence, expectation=expectation, notes=notes)


def accepted_digests(image: ImageUnderTest, node_images: list[NodeImage]) -> dict[str, str]:
    """Every digest that names the image under test, and why. A node's runtime may know the
    loaded image by a digest of its own (containerd re-computes a manifest when it imports a
    ``docker save`` archive): that digest counts only when the node's image ID is our config digest."""
    accepted = {image.config_digest: "its config digest (= the image ID)"}
    accepted.setdefault(image.digest, "its manifest digest")
    for record in node_images:
        if record.id == image.config_digest:
            for ref in record.repo_digests:
                accepted.setdefault(digest_of(ref), f"the digest node {record.node} gave the loaded image "
                                                    f"(its image ID there is the config digest)")
    return {d: why for d, why in accepted.items() if d}


def _image_problems(pods: list[dict], image: ImageUnderTest,
                    accepted: dict[str, str]) -> tuple[list[str], list[str]]:
    problems, evidence = [], []
    for pod in pods:
        name, spec, cs = pod_name(pod), container_spec(pod) or {}, container_status(pod) or {}
        if spec.get("image") != image.name:
            problems.append(f"pod {name}: spec image {spec.get('image')!r}, expected the override {image.name!r}")
        found = digest_of(cs.get("imageID", ""))
        if not found:
            problems.append(f"pod {name}: no imageID reported (the container never started)")
        elif found not in accepted:
            problems.append(f"pod {name} runs {cs.get('imageID')}: not the image under test "
                            f"(an old image digest still running?)")
        else:
            evidence.append(f"pod {name}: imageID {cs.get('imageID')} = {accepted[found]}")
    return problems, evidence


def _upstream_pods(all_pods: list[dict], accepted: dict[str, str]) -> list[str]:
    found = []
    for pod in all_pods:
        statuses = {s.get("name"): s for s in _get(pod, "status", "containerStatuses", default=[])
                    + _get(pod, "status", "initContainerStatuses", default=[])}
        for c in _get(pod, "spec", "containers", default=[]) + _get(pod, "spec", "initContainers", default=[]):
            image = c.get("image", "")
            running = digest_of(_get(statuses.get(c.get("name")), "imageID", default=""))
            if image.startswith(UPSTREAM_OPERATOR) and running not in accepted:
                found.append(f"pod {pod_name(pod)} container {c.get('name')} runs upstream image {image}")
    return found


def operator_image_in_use(snap: Snapshot, image: ImageUnderTest) -> Verdict:
    accepted = accepted_digests(image, snap.node_images)
    expectation = (f"every operator pod runs {image.name} with a digest of the image under test "
                   f"({', '.join(accepted)}); no pod runs an upstream {UPSTREAM_OPERATOR}* image")
    evidence = [f"node {r.node}: {r.name} -> " + (f"image ID {r.id}, repo digests {list(r.repo_digests)}"
                                                   if not r.error else r.error) for r in snap.node_images]
    if not snap.pods:
        return _failed("operator-image-in-use", [f"no pod of Deployment {OPERATOR_DEPLOYMENT} to inspect"],
                       evidence, snap, expectation=expectation)
    problems, matched = _image_problems(snap.pods, image, accepted)
    problems += _upstream_pods(snap.all_pods, accepted)
    if problems:
        return _failed("operator-image-in-use", problems, matched + evidence, snap, expectation=expectation)
    running = sorted({digest_of(_get(container_status(p), "imageID", default="")) for p in snap.pods})
    return passed("operator-image-in-use",
                  f"{len(snap.pods)} operator pod(s) run {image.name} ({', '.join(running)})",
                  evidence=matched + evidence, expectation=expectation)


def _security_context_user(pod: dict) -> str:
    c = _get(container_spec(pod), "securityContext", "runAsUser")
    p = _get(pod, "spec", "securityContext", "runAsUser")
    if c is not None:
        return f"container securityContext.runAsUser={c}"
    return f"pod securityContext.runAsUser={p}" if p is not None else "no runAsUser in the pod spec"


def _runs_as(u: ProcessUser) -> str:
    return "the operator process runs as" if u.observed else "the operator container is configured to run as"


def operator_runtime_user(snap: Snapshot, user: RuntimeUser) -> Verdict:
    want = f"{user.uid}:{user.gid}" if user.resolved else "?"
    expectation = (f"the operator process runs as the image's user "
                   f"{user.label() if user.resolved else '(unresolved)'}, not root")
    if not snap.users:
        why = snap.users_unobservable or "no operator pod running"
        return _failed("operator-runtime-user", [f"no operator process user observed: {why}"], [], snap,
                       expectation=expectation)
    pods = {pod_name(p): p for p in snap.pods}
    evidence = [f"{u.pod}: UID {u.uid} GID {u.gid} from {u.source} "
                f"({'observed' if u.observed else 'configured; no live process observed'}); "
                f"{_security_context_user(pods[u.pod]) if u.pod in pods else 'pod gone'}" for u in snap.users]
    evidence += [e for u in snap.users for e in u.evidence]
    evidence.append(f"image tier: Config.User {user.spec!r} resolves to {want}" if user.resolved
                    else f"image tier: {user.error or 'user not resolved'}")
    problems = []
    for u in snap.users:
        if u.uid is None:
            problems.append(f"{u.pod}: the process UID could not be read ({u.source})")
        elif u.uid == 0:
            problems.append(f"{u.pod}: {_runs_as(u)} root (UID 0)")
        elif not user.resolved:
            problems.append(f"{u.pod}: {_runs_as(u)} UID {u.uid}, but the image's user is unresolved: {user.error}")
        elif (u.uid, u.gid) != (user.uid, user.gid):
            problems.append(f"{u.pod}: {_runs_as(u)} {u.uid}:{u.gid}, the image declares "
                            f"{want} (Config.User {user.spec!r})")
    if problems:
        return _failed("operator-runtime-user", problems, evidence, snap, expectation=expectation)
    # A configured user passes too (a crash loop leaves nothing live to read): runc execs the
    # process with exactly these IDs and the operator never changes them; the message says so.
    configured = [u.pod for u in snap.users if not u.observed]
    if not configured:
        return passed("operator-runtime-user", f"the operator process runs as {want}, the image's user",
                      evidence=evidence, expectation=expectation)
    return passed("operator-runtime-user",
                  f"the operator container is configured to run as {want}, the image's user "
                  f"(no live process observed for {', '.join(configured)}: read from "
                  f"{'; '.join(u.source for u in snap.users if not u.observed)})",
                  evidence=evidence, expectation=expectation)


def cilium_ready(snap: Snapshot) -> Verdict:
    expectation = (f"DaemonSet {AGENT_DAEMONSET} has every scheduled agent Ready and updated, and every node "
                   "is Ready (Cilium works as the CNI)")
    problems = daemonset_problems(snap.daemonset) + node_problems(snap.nodes)
    status = _get(snap.daemonset, "status", default={})
    evidence = [f"DaemonSet {AGENT_DAEMONSET}: desired {status.get('desiredNumberScheduled', 0)}, ready "
                f"{status.get('numberReady', 0)}, updated {status.get('updatedNumberScheduled', 0)}, "
                f"available {status.get('numberAvailable', 0)}"] if snap.daemonset else []
    evidence += [_node_line(n) for n in snap.nodes]
    if problems:
        return _failed("cilium-ready", problems, evidence, snap, expectation=expectation)
    return passed("cilium-ready", f"{status.get('numberReady')} agent(s) Ready; {len(snap.nodes)} node(s) Ready",
                  evidence=evidence, expectation=expectation)


def upgrade_from_upstream(upgrade: Upgrade, image: ImageUnderTest) -> Verdict:
    expectation = (f"{upgrade.from_name} installs and becomes healthy; helm upgrade to {image.name} rolls "
                   "out healthy pods running the new digest; no pod keeps the old one")
    if upgrade.error or upgrade.before is None or upgrade.after is None:
        return _failed("upgrade-from-upstream", [upgrade.error or "the upgrade did not run"], [],
                       upgrade.after or upgrade.before, expectation=expectation)
    before, after = upgrade.before, upgrade.after
    evidence = [f"before: {_pod_line(p)}" for p in before.pods] + [f"after: {_pod_line(p)}" for p in after.pods]
    problems = [f"before the upgrade: {p}" for p in deployment_problems(before.deployment)
                + [q for pod in before.pods for q in pod_readiness_problems(pod)]]
    problems += [f"before the upgrade: pod {pod_name(p)} runs {(container_spec(p) or {}).get('image')!r}, "
                 f"not {upgrade.from_name!r}" for p in before.pods
                 if (container_spec(p) or {}).get("image") != upgrade.from_name]
    if problems:
        return _failed("upgrade-from-upstream", problems, evidence, before, expectation=expectation)
    gen_before = _get(before.deployment, "metadata", "generation", default=0)
    gen_after = _get(after.deployment, "metadata", "generation", default=0)
    if gen_after <= gen_before:
        problems.append(f"Deployment generation {gen_after} after the upgrade, {gen_before} before: "
                        "helm upgrade did not change the operator")
    problems += deployment_problems(after.deployment)
    problems += [q for pod in after.pods for q in pod_readiness_problems(pod)]
    accepted = accepted_digests(image, after.node_images)
    image_problems, matched = _image_problems(after.pods, image, accepted)
    problems += image_problems
    old = {digest_of(_get(container_status(p), "imageID", default="")) for p in before.pods} - set(accepted) - {""}
    for pod in after.all_pods:
        for cs in _get(pod, "status", "containerStatuses", default=[]):
            if digest_of(cs.get("imageID", "")) in old:
                problems.append(f"pod {pod_name(pod)} still runs the pre-upgrade digest {cs.get('imageID')}")
    if problems:
        return _failed("upgrade-from-upstream", problems, evidence + matched, after, expectation=expectation)
    return passed("upgrade-from-upstream",
                  f"{upgrade.from_name} -> {image.name}: generation {gen_before} -> {gen_after}, "
                  f"{len(after.pods)} new pod(s) Ready on the new digest",
                  evidence=evidence + matched, expectation=expectation)
