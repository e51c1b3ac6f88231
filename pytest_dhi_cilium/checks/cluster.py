"""Cluster-tier checks: verdicts over Kubernetes objects in the API's JSON shape (what
``kubectl get -o json`` prints, or ``ApiClient().sanitize_for_serialization(model)`` returns)
plus what was observed on the nodes. No I/O here.

The ``*_problems`` helpers are shared with cluster/waiting.py, so "is the rollout done?" while
waiting and "is the operator healthy?" in the verdict are the same decision.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..verdict import Verdict, failed, passed
from .users import RuntimeUser

OPERATOR_DEPLOYMENT = "cilium-operator"
OPERATOR_CONTAINER = "cilium-operator"
OPERATOR_SELECTOR = {"io.cilium/app": "operator", "name": "cilium-operator"}  # the chart's
AGENT_DAEMONSET = "cilium"
AGENT_SELECTOR = {"k8s-app": "cilium"}  # the chart's DaemonSet selector
AGENT_CONTAINER = "cilium-agent"
LEASE_NAME = "cilium-operator-resource-lock"
OPERATOR_CRDS = ("ciliumidentities", "ciliumnodes", "ciliumendpoints", "ciliumnetworkpolicies",
                 "ciliumclusterwidenetworkpolicies")
UPSTREAM_OPERATOR = "quay.io/cilium/operator"  # operator, operator-generic, operator-aws, ...
LEASE_SKEW = 5.0  # seconds of clock difference tolerated between this host and the API server
# Waiting reasons no amount of waiting cures (CrashLoopBackOff is judged by its restart count).
HOPELESS_REASONS = frozenset({"ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError",
                              "CreateContainerError", "RunContainerError"})
CRASHLOOP_GIVE_UP = 3
# What CreateUpdateCRD (pkg/k8s/apis/crdhelpers/register.go, 1.17 and 1.18) logs, with
# name=<crd>, for a CRD it created, updated or found up to date: an operator that finds the CRD
# current leaves the object untouched, so this line is the only trace that it checked it.
CRD_CONFIRMED_LOG = "CRD (CustomResourceDefinition) is installed and up-to-date"
# The operator's client-go user agent is the binary's base name (pkg/k8s/client/cell.go), which
# the API server records as the manager of the fields it writes.
OPERATOR_MANAGER_PREFIX = "cilium-operator"


PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "RegistryUnavailable"})
# Pull errors that name a cause a retry does not cure: the registry's name does not resolve, the
# image or tag does not exist, credentials are refused, the registry's certificate is not trusted.
# A timeout, a reset connection or a 5xx is a hiccup: those get PULL_GIVE_UP seconds of retries.
PERMANENT_PULL_ERRORS = ("no such host", "not found", "manifest unknown", "name unknown", "unauthorized",
                         "authentication required", "denied", "forbidden", "x509:", "invalid reference format",
                         "no match for platform")
PULL_GIVE_UP = 120.0  # seconds: the kubelet's back-off (10 s, doubling) has retried about 4 times by then
HEADLINE_CAUSE = 160  # characters of a long container message kept in a headline (its end: the root cause)


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


@dataclass(frozen=True)
class SettleObservation:
    """What the settle window actually saw of the operator's pods, apart from the window asked
    for: ``outcome`` "held" (Ready, no restart, for ``observed`` seconds), "broke" (``detail``:
    what broke it, after ``observed`` seconds) or "not started" (``detail``: why not)."""

    outcome: str
    observed: float = 0.0
    started_at: datetime | None = None
    detail: str = ""
    looks: int = 0  # observations made in the window
    unreadable: int = 0  # of them, how many found the API server unreadable

    def blind_spots(self) -> str:
        """Looks that saw nothing: a restart in between still shows in restartCount, a brief
        readiness flap does not — so the message says how much of the window was seen."""
        return (f", API server unreadable at {self.unreadable} of {self.looks} looks"
                if self.unreadable else "")

    def describe(self) -> str:
        since = f" from {self.started_at:%H:%M:%SZ}" if self.started_at else ""
        if self.outcome == "held":
            return f"held {self.observed:.0f}s{since}{self.blind_spots()}"
        if self.outcome == "broke":
            return f"broke after {self.observed:.0f}s{since}: {self.detail}"
        return f"not started: {self.detail}"


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
    agent_pods: list[dict] = field(default_factory=list)  # the agent DaemonSet's pods
    nodes: list[dict] = field(default_factory=list)
    healthz: list[Healthz] = field(default_factory=list)
    users: list[ProcessUser] = field(default_factory=list)
    users_unobservable: str = ""  # why no process user could be read (BYO cluster, no node access)
    node_images: list[NodeImage] = field(default_factory=list)
    settle: float = 0.0  # the configured settle window (seconds)
    settle_observed: SettleObservation | None = None  # None: no settle window was run
    operator_logs: dict[str, str] = field(default_factory=dict)  # pod -> current container's log, from its start
    previous_logs: dict[str, str] = field(default_factory=dict)  # pod -> the crashed container's log tail
    waited: str = ""  # how the wait ended: "ready after 84s" / "gave up after 600s: ..."
    diagnostics: list[str] = field(default_factory=list)  # events, logs, helm values
    agent_diagnostics: list[str] = field(default_factory=list)  # the agent pods' events and logs
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


def _cannot_recover(cs: dict) -> bool:
    """A container in a state no amount of waiting cures, or crash-looping."""
    reason = _get(cs, "state", "waiting", "reason", default="")
    return reason in HOPELESS_REASONS or (reason == "CrashLoopBackOff"
                                          and cs.get("restartCount", 0) >= CRASHLOOP_GIVE_UP)


def hopeless(pods: list[dict]) -> str:
    """A reason to stop waiting now: a state that no amount of waiting cures."""
    for pod in pods:
        for cs in _get(pod, "status", "containerStatuses", default=[]):
            if _cannot_recover(cs):
                reason = _get(cs, "state", "waiting", "reason")
                message = _get(cs, "state", "waiting", "message", default="")
                return (f"pod {pod_name(pod)}: container {cs.get('name')} {reason} after "
                        f"{cs.get('restartCount', 0)} restart(s)" + (f": {message}" if message else ""))
    return ""


def settle_problems(snap: Snapshot) -> list[str]:
    """What breaks the settle window: no operator pod left to watch, a pod not Ready, or restarted."""
    if snap.api_error:
        return []  # an unreadable API server says nothing about the pods; keep observing
    if not snap.pods:  # nothing watched is not "Ready with no restart"
        return [f"no pod of Deployment {OPERATOR_DEPLOYMENT} to watch"]
    return [p for pod in snap.pods for p in restart_problems(pod) + pod_readiness_problems(pod)]


def settle_blocker(snap: Snapshot) -> str:
    """Why the operator's settle window cannot start when the rollout wait ends ('' when it can):
    the operator has no pod, cannot recover, or is not Ready with no restart to begin with."""
    if not snap.api_error and not snap.pods:
        return f"no pod of Deployment {OPERATOR_DEPLOYMENT} to watch"
    stuck = hopeless(snap.pods)
    if stuck:
        return f"the operator cannot recover: {stuck}"
    broken = settle_problems(snap)
    return f"the operator was not Ready with no restart when the rollout wait ended: {broken[0]}" if broken else ""


# -- the agents ----------------------------------------------------------------------------------


def _statuses(pod: dict) -> list[tuple[str, dict]]:
    """A pod's container statuses, init containers first (they run first), each with its kind."""
    status = _get(pod, "status", default={})
    return ([("init container", cs) for cs in status.get("initContainerStatuses") or []]
            + [("container", cs) for cs in status.get("containerStatuses") or []])


def short_cause(message: str, limit: int | None = HEADLINE_CAUSE) -> str:
    """The end of a long message: Go errors wrap outward (``outer: inner: cause``), so the root
    cause comes last; cut where a wrapped error starts."""
    if limit is None or len(message) <= limit:
        return message
    tail = message[-limit:]
    return "…" + (tail.split(": ", 1)[1] if ": " in tail else tail)


def _container_trouble(cs: dict, limit: int | None = None) -> str:
    """What keeps one container from running, as kubectl would show it; "" when nothing does
    (running, completed, or an init container's successor waiting its turn: PodInitializing)."""
    waiting, terminated = _get(cs, "state", "waiting"), _get(cs, "state", "terminated")
    restarts = cs.get("restartCount", 0)
    if waiting and waiting.get("reason") != "PodInitializing":
        text = f"waiting {waiting.get('reason')}" + (f" after {restarts} restart(s)" if restarts else "")
        last = _get(cs, "lastState", "terminated", default={})
        if last:
            text += f", last exit {last.get('exitCode')} ({last.get('reason')})"
        # The last run's own words (the chart's FallbackToLogsOnError: its last log lines) say more
        # than the kubelet's "back-off 5m0s restarting failed container".
        message = (last.get("message") or "").strip() or waiting.get("message")
        return text + (f": {short_cause(message, limit)}" if message else "")
    if terminated and terminated.get("exitCode") != 0:
        return _terminated_text(terminated, limit)
    return ""


def _terminated_text(terminated: dict, limit: int | None = None) -> str:
    message = (terminated.get("message") or "").strip()
    return (f"terminated: exit {terminated.get('exitCode')} ({terminated.get('reason')})"
            + (f": {short_cause(message, limit)}" if message else ""))


def agent_problems(pod: dict, limit: int | None = None) -> list[str]:
    """Why an agent pod is not Ready, cause first: its init containers (a failed one keeps the
    agent from ever starting), then its containers, then the Ready condition. A terminating pod
    is the DaemonSet's to replace: its counts judge it."""
    if _get(pod, "metadata", "deletionTimestamp") or _is_true(pod, "Ready"):
        return []
    name = pod_name(pod)
    problems = [f"agent pod {name}: {kind} {cs.get('name')} {trouble}" for kind, cs in _statuses(pod)
                for trouble in [_container_trouble(cs, limit)] if trouble]
    if not _statuses(pod):
        problems.append(f"agent pod {name}: no container status yet (phase {_get(pod, 'status', 'phase', default='?')}, "
                        f"{_cond(pod, 'PodScheduled')})")
    return problems + [f"agent pod {name}: {_cond(pod, 'Ready')}"]


def _pod_start(pod: dict) -> datetime | None:
    """When the pod started: status.startTime (the kubelet accepted it), else its creation."""
    return parse_time(_get(pod, "status", "startTime")) or parse_time(_get(pod, "metadata", "creationTimestamp"))


def agent_hopeless(pods: list[dict], now: datetime) -> str:
    """A reason to stop waiting for the agents now (init containers included), or "".
    The operator's rule (``hopeless``) for states no wait cures and for a crash loop; for an image
    pull: at once when the error names a cause no retry cures (PERMANENT_PULL_ERRORS), otherwise
    only once it still fails PULL_GIVE_UP seconds after the pod started — a registry hiccup
    clears within the kubelet's retries."""
    for pod in pods:
        for kind, cs in _statuses(pod):
            reason = _get(cs, "state", "waiting", "reason", default="")
            message = _get(cs, "state", "waiting", "message", default="").lower()
            stuck = f"agent pod {pod_name(pod)}: {kind} {cs.get('name')} {_container_trouble(cs)}"
            if _cannot_recover(cs) or (reason in PULL_FAILURES
                                       and any(cause in message for cause in PERMANENT_PULL_ERRORS)):
                return stuck
            started = _pod_start(pod) if reason in PULL_FAILURES else None
            age = (now - started).total_seconds() if started else 0.0
            if age >= PULL_GIVE_UP:
                return f"{stuck} (still failing {age:.0f}s after the pod started)"
    return ""


def pod_status_column(pod: dict) -> str:
    """The STATUS kubectl prints for a pod: ``Init:ErrImagePull``, ``Init:2/6``, ``CrashLoopBackOff``..."""
    if _get(pod, "metadata", "deletionTimestamp"):
        return "Terminating"
    inits = _get(pod, "status", "initContainerStatuses", default=[])
    for index, cs in enumerate(inits):
        waiting, terminated = _get(cs, "state", "waiting"), _get(cs, "state", "terminated")
        if terminated and terminated.get("exitCode") == 0:
            continue
        if terminated:
            return "Init:" + (terminated.get("reason") or f"ExitCode:{terminated.get('exitCode')}")
        if waiting and waiting.get("reason") not in (None, "PodInitializing"):
            return f"Init:{waiting['reason']}"
        return f"Init:{index}/{len(inits)}"
    for cs in _get(pod, "status", "containerStatuses", default=[]):
        reason = _get(cs, "state", "waiting", "reason") or _get(cs, "state", "terminated", "reason")
        if reason:
            return reason
    return _get(pod, "status", "phase", default="?")


def _container_state(cs: dict) -> str:
    """One container's state in full (``kubectl describe``'s State and Last State), for the evidence."""
    state = _get(cs, "state", default={})
    if "running" in state:
        return f"running since {_get(state, 'running', 'startedAt', default='?')}"
    if "terminated" in state:
        return _terminated_text(state["terminated"] or {})
    if "waiting" not in state:
        return "no state reported"
    waiting, last = state.get("waiting") or {}, _get(cs, "lastState", "terminated", default={})
    return (f"waiting {waiting.get('reason', '?')}" + (f": {waiting['message']}" if waiting.get("message") else "")
            + (f"; last exit {last.get('exitCode')} ({last.get('reason')})" if last else "")
            + (f": {last['message'].strip()}" if last.get("message") else ""))


def agent_status(pod: dict) -> str:
    """An agent pod as ``kubectl get`` and ``describe`` show it, every container (init first)."""
    image = (container_spec(pod, AGENT_CONTAINER) or {}).get("image", "?")
    lines = [f"agent pod {pod_name(pod)} on node {_get(pod, 'spec', 'nodeName', default='?')}: "
             f"{pod_status_column(pod)} (phase {_get(pod, 'status', 'phase', default='?')}), {_cond(pod, 'Ready')}; "
             f"image {image}"]
    lines += [f"  {kind} {cs.get('name')}: {_container_state(cs)}; restarts {cs.get('restartCount', 0)}"
              + (f", image {cs.get('image')}" if cs.get("image") not in (image, None) else "")
              for kind, cs in _statuses(pod)]
    return "\n".join(lines)


def _hostname(pod: dict) -> str:
    """What os.Hostname() returns in the pod: its node's name with hostNetwork."""
    if _get(pod, "spec", "hostNetwork"):
        return _get(pod, "spec", "nodeName", default="")
    return _get(pod, "spec", "hostname") or _get(pod, "metadata", "name", default="")


def container_started(pod: dict) -> datetime | None:
    """When the operator container now running started (None: none is running)."""
    return parse_time(_get(container_status(pod), "state", "running", "startedAt"))


def _named_by(holder: str, pods: list[dict]) -> list[dict]:
    """The pods whose hostname the identity ``<hostname>-<10 random chars>`` carries
    (operator/cmd/root.go)."""
    return [p for p in pods if holder and _hostname(p) and holder.startswith(f"{_hostname(p)}-")]


def lease_holder(lease: dict | None, pods: list[dict]) -> dict | None:
    """The operator pod whose process acquired the lease. The random part of the identity is
    drawn by each process, and with hostNetwork the hostname is the node's, shared with every
    earlier operator there; client-go keeps acquireTime only while one identity holds the lease,
    so the holder is a pod named by the identity whose container started before that time."""
    acquired = parse_time(_get(lease, "spec", "acquireTime"))
    return next((p for p in _named_by(_get(lease, "spec", "holderIdentity", default=""), pods)
                 if acquired and container_started(p)
                 and (container_started(p) - acquired).total_seconds() <= LEASE_SKEW), None)


def lease_problems(lease: dict | None, pods: list[dict], now: datetime) -> list[str]:
    if lease is None:
        return [f"Lease {LEASE_NAME} does not exist (no operator has run leader election)"]
    where = _where("Lease", lease)
    holder = _get(lease, "spec", "holderIdentity", default="")
    if not holder:
        return [f"{where} is held by nobody (holderIdentity empty)"]
    named = _named_by(holder, pods)
    if not named:
        hosts = ", ".join(f"{pod_name(p)} (hostname {_hostname(p)})" for p in pods) or "none"
        return [f"{where} is held by {holder!r}, which is none of the operator pods: {hosts}"]
    acquired = _get(lease, "spec", "acquireTime")
    if parse_time(acquired) is None:
        return [f"{where}: held by {holder!r} with no acquireTime: which operator process acquired it is unknown"]
    running = [p for p in named if container_started(p)]
    if not running:
        return [f"{where}: held by {holder!r} (acquired {acquired}), but no operator container of "
                f"{', '.join(pod_name(p) for p in named)} is running to hold it"]
    if lease_holder(lease, pods) is None:
        starts = ", ".join(f"pod {pod_name(p)} container started "
                           f"{_get(container_status(p), 'state', 'running', 'startedAt')}" for p in running)
        return [f"{where}: held by {holder!r} since {acquired}, before the running operator container "
                f"started ({starts}): an earlier operator process's lease (a previous run's, or this pod's "
                "container before a restart), not the running one's"]
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


_LOGFMT_FIELD = re.compile(r'([\w.-]+)=("(?:[^"\\]|\\.)*"|\S*)')


def log_fields(line: str) -> dict[str, str]:
    """The fields of one operator log line: logfmt (logrus in 1.17, slog in 1.18) or JSON."""
    if line.lstrip().startswith("{"):
        try:
            return {k: str(v) for k, v in json.loads(line).items()}
        except (ValueError, AttributeError):
            return {}
    fields = {}
    for key, value in _LOGFMT_FIELD.findall(line):
        try:
            fields[key] = json.loads(value) if value.startswith('"') else value
        except ValueError:  # a Go escape JSON does not know: keep it as written
            fields[key] = value.strip('"')
    return fields


def fatal_line(log: str) -> str:
    """The operator's last ``level=fatal`` line (what it died of), as ``level=fatal msg="..."``."""
    for line in reversed(log.splitlines()):
        fields = log_fields(line)
        if fields.get("level") == "fatal":
            return f"level=fatal msg={json.dumps(fields.get('msg', line.strip()), ensure_ascii=False)}"
    return ""


def _since(value: str | None, start: datetime) -> bool:
    when = parse_time(value)
    return when is not None and (when - start).total_seconds() >= -LEASE_SKEW


def _crd_touch(crd: dict, name: str, start: datetime, logs: dict[str, str]) -> str:
    """How this run's operator established or re-confirmed the CRD ('' when nothing shows it).
    An up-to-date CRD is left untouched by a starting operator, which only logs that it checked it."""
    established = _get(condition(crd, "Established"), "lastTransitionTime")
    if _since(established, start):
        return f"Established at {established}, after this run's operator pod started"
    for entry in _get(crd, "metadata", "managedFields", default=[]):
        if entry.get("manager", "").startswith(OPERATOR_MANAGER_PREFIX) and _since(entry.get("time"), start):
            return f"written by {entry['manager']} at {entry['time']} (managedFields, {entry.get('operation')})"
    for pod, log in logs.items():
        for line in log.splitlines():
            fields = log_fields(line)
            if fields.get("msg") == CRD_CONFIRMED_LOG and fields.get("name") == name:
                return f"re-confirmed by pod {pod}, its log: {line.strip()}"
    return ""


def crd_run_problems(snap: Snapshot) -> tuple[list[str], list[str]]:
    """The Established CRDs this run's operator did not establish or re-confirm (a previous
    run's CRDs prove nothing about today's operator), and the evidence for those it did."""
    starts = [t for t in map(_pod_start, snap.pods) if t]
    if not starts:
        return ["no start time of an operator pod of this run: its CRDs cannot be told from earlier ones"], []
    start = min(starts)
    problems, evidence = [], []
    for plural in OPERATOR_CRDS:
        crd, name = snap.crds.get(plural), f"{plural}.cilium.io"
        if crd is None or not _is_true(crd, "Established"):
            continue  # crd_problems names it
        touch = _crd_touch(crd, name, start, snap.operator_logs)
        if touch:
            evidence.append(f"CRD {name}: {touch}")
        else:
            problems.append(
                f"CRD {name}: Established since "
                f"{_get(condition(crd, 'Established'), 'lastTransitionTime', default='(no lastTransitionTime)')}, "
                f"before this run's operator pod started ({start:%Y-%m-%dT%H:%M:%SZ}), and not re-confirmed by it: "
                f"no write by {OPERATOR_MANAGER_PREFIX}* since (managedFields), no {CRD_CONFIRMED_LOG!r} line "
                f"for it in the operator's log")
    return problems, evidence


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


def operator_pending(snap: Snapshot) -> list[str]:
    """What the operator's own rollout still waits for: its Deployment and pods, the lease, the CRDs."""
    if snap.api_error:
        return [f"API server: {snap.api_error}"]
    pending = deployment_problems(snap.deployment)
    pending += [p for pod in snap.pods for p in pod_readiness_problems(pod)]
    if snap.deployment is not None and not snap.pods:
        pending.append(f"no pod of Deployment {OPERATOR_DEPLOYMENT} yet")
    return pending + crd_problems(snap.crds) + lease_problems(snap.lease, snap.pods, snap.taken_at)


def rollout_pending(snap: Snapshot) -> list[str]:
    """Everything the waiter waits for (the operator's part, then the agents and the nodes);
    empty when the install has converged."""
    pending = operator_pending(snap)
    if snap.api_error:
        return pending
    return pending + daemonset_problems(snap.daemonset) + node_problems(snap.nodes)


# -- verdict helpers -----------------------------------------------------------------------------


def _failed(check: str, problems: list[str], evidence: list[str], snap: Snapshot | None,
            diagnostics: list[str] | None = None, **kw) -> Verdict:
    """``diagnostics``: what to show instead of the operator's (the agents' for cilium-ready)."""
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    context, extra = [], []
    if snap is not None:
        context = [f"API server unreadable at the last observation: {snap.api_error}"] if snap.api_error else []
        context += [f"wait: {snap.waited}"] if snap.waited else []
        extra = _deployment_summary(snap.deployment) + snap.diagnostics if diagnostics is None else diagnostics
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


def _probe_text(pod: dict) -> str:
    probe = _get(container_spec(pod), "readinessProbe", "httpGet", default={})
    return f"GET {probe.get('host', '<pod IP>')}:{probe.get('port')}{probe.get('path')}"


def _healthz_problems(snap: Snapshot) -> tuple[list[str], list[str], list[str], list[str]]:
    """Problems, evidence, notes, and per pod the witness of a 200: our own GET (from where,
    which URL, what answer) or, where no GET of ours reached it, the kubelet's readiness probe."""
    problems, evidence, notes, witnesses = [], [], [], []
    for pod in snap.pods:
        name = pod_name(pod)
        seen = [h for h in snap.healthz if h.pod == name]
        good = [h for h in seen if h.status == 200]
        answered = [h for h in seen if h.status is not None and h.status != 200]
        for h in seen:
            answer = f"HTTP {h.status} {h.body[:80]!r}" if h.status is not None else f"unreachable: {h.error}"
            evidence.append(f"/healthz of {name} via {h.method} ({h.url}): {answer}")
        if good:
            witnesses.append(f"/healthz 200 to our GET {good[0].url} via {good[0].method}")
            continue
        if answered:
            problems.append(f"pod {name}: /healthz answered HTTP {answered[0].status} via {answered[0].method}")
        elif _is_true(pod, "Ready") and _readiness_probe_is_healthz(pod):
            # The chart binds /healthz to 127.0.0.1 in the pod's network namespace; where we
            # cannot enter it, the kubelet's readiness probe (an HTTP GET of /healthz) is the witness.
            ready_since = _get(condition(pod, "Ready"), "lastTransitionTime", default="?")
            witnesses.append("/healthz not reached by our GET"
                             + (f" ({seen[0].method}: {seen[0].error[:160]})" if seen else "")
                             + f"; witness: the kubelet's readiness probe {_probe_text(pod)} (Ready=True since "
                               f"{ready_since})")
            notes.append(f"{name}: /healthz not reachable from here; the kubelet's readiness probe "
                         f"{_probe_text(pod)} succeeds (Ready=True since {ready_since})")
        else:
            problems.append(f"pod {name}: /healthz not observed answering 200"
                            + (f" ({seen[0].error})" if seen and seen[0].error else ""))
    return problems, evidence, notes, witnesses


def crash_problems(snap: Snapshot) -> list[str]:
    """Operator containers crash-looping (or just exited), each led by what the operator said as
    it died: the last ``level=fatal`` line of the log of the container that exited."""
    problems = []
    for pod in snap.pods:
        cs, name = container_status(pod) or {}, pod_name(pod)
        exited_now = _get(cs, "state", "terminated")
        if _get(cs, "state", "waiting", "reason") != "CrashLoopBackOff" and not exited_now:
            continue
        # The kubelet serves the exited container's log as the current one while it is the
        # current state, and as the previous one once a back-off or a new container follows.
        last = exited_now or _get(cs, "lastState", "terminated", default={})
        fatal = fatal_line((snap.operator_logs if exited_now else snap.previous_logs).get(name, ""))
        state = "exited" if exited_now else "CrashLoopBackOff"
        problems.append(f"pod {name}: {state}, {cs.get('restartCount', 0)} restart(s), last exit "
                        f"{last.get('exitCode', '?')} ({last.get('reason', '?')}) at {last.get('finishedAt', '?')}: "
                        + (fatal or "no level=fatal line in the exited container's log"))
    return problems


def _settle_window_problems(snap: Snapshot) -> list[str]:
    seen, window = snap.settle_observed, snap.settle
    if seen is None:
        return [f"the operator was not watched over a settle window ({window:.0f}s configured)"]
    if seen.outcome == "not started":
        return [f"settle window of {window:.0f}s not started: {seen.detail}"]
    if seen.outcome == "broke":
        return [f"settle window broke after {seen.observed:.0f}s of {window:.0f}s: {seen.detail}"]
    if seen.observed < window:
        return [f"the operator pods were watched {seen.observed:.0f}s, less than the {window:.0f}s settle window"]
    if seen.looks and seen.unreadable >= seen.looks:
        return [f"settle window of {window:.0f}s not observed: the API server was unreadable at every look"]
    return []


# -- the checks ----------------------------------------------------------------------------------


def operator_healthy(snap: Snapshot) -> Verdict:
    expectation = (f"Deployment {OPERATOR_DEPLOYMENT} Available and rolled out; its pods watched Ready with no "
                   f"restart for the whole {snap.settle:.0f}s settle window; /healthz 200; lease {LEASE_NAME} "
                   f"acquired and renewed by an operator pod of this run; CRDs {', '.join(OPERATOR_CRDS)} "
                   "Established, and established or re-confirmed by this run's operator")
    # A crash loop leads with what the operator died of; then what the settle window saw.
    problems = crash_problems(snap) + _settle_window_problems(snap) + deployment_problems(snap.deployment)
    if snap.deployment is not None and not snap.pods:
        problems.append(f"Deployment {OPERATOR_DEPLOYMENT} has no pod")
    for pod in snap.pods:
        problems += pod_readiness_problems(pod) + restart_problems(pod)
    health_problems, evidence, notes, witnesses = _healthz_problems(snap)
    problems += health_problems
    problems += lease_problems(snap.lease, snap.pods, snap.taken_at)
    problems += crd_problems(snap.crds)
    crd_problems_of_run, crd_evidence = crd_run_problems(snap)
    problems += crd_problems_of_run
    evidence = [_pod_line(p) for p in snap.pods] + evidence
    if snap.settle_observed is not None:
        evidence.append(f"settle window ({snap.settle:.0f}s configured): {snap.settle_observed.describe()}")
    if problems:
        return _failed("operator-healthy", problems, evidence + crd_evidence, snap, expectation=expectation,
                       notes=notes)
    holder = lease_holder(snap.lease, snap.pods)
    evidence.append(f"Lease {LEASE_NAME}: holderIdentity {_get(snap.lease, 'spec', 'holderIdentity')!r} "
                    f"= pod {pod_name(holder)}, acquired {_get(snap.lease, 'spec', 'acquireTime')} (its container "
                    f"started {_get(container_status(holder), 'state', 'running', 'startedAt')}), renewed "
                    f"{_get(snap.lease, 'spec', 'renewTime')}")
    evidence += crd_evidence
    seen = snap.settle_observed
    return passed("operator-healthy",
                  f"{len(snap.pods)}/{_get(snap.deployment, 'spec', 'replicas', default=1)} operator pod(s) "
                  f"Ready with no restart, watched {seen.observed:.0f}s"
                  + (f" from {seen.started_at:%H:%M:%SZ}" if seen.started_at else "")
                  + f" (the whole {snap.settle:.0f}s settle window{seen.blind_spots()}); {'; '.join(witnesses)}; lease acquired and "
                    f"renewed by pod {pod_name(holder)}; CRDs established or re-confirmed by this run's operator",
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
    # The agents' own state first: it names the cause the DaemonSet's counts only summarise.
    problems = [p for pod in snap.agent_pods for p in agent_problems(pod, limit=HEADLINE_CAUSE)]
    problems += daemonset_problems(snap.daemonset) + node_problems(snap.nodes)
    status = _get(snap.daemonset, "status", default={})
    evidence = [f"DaemonSet {AGENT_DAEMONSET}: desired {status.get('desiredNumberScheduled', 0)}, ready "
                f"{status.get('numberReady', 0)}, updated {status.get('updatedNumberScheduled', 0)}, "
                f"available {status.get('numberAvailable', 0)}"] if snap.daemonset else []
    evidence += [agent_status(p) for p in snap.agent_pods] + [_node_line(n) for n in snap.nodes]
    if problems:
        return _failed("cilium-ready", problems, evidence, snap, diagnostics=snap.agent_diagnostics,
                       expectation=expectation)
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
