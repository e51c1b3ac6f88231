"""The chart-like boot behind ``operator-starts`` and ``runtime-user``: how it is started and
what is observed while it runs (the verdicts are in checks/runtime.py)."""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass, field

from .. import cilium
from ..settings import Profile
from .engine import Engine, RunResult, RunSpec, read_container_file

CONFIG_DIR = "/tmp/cilium/config-map"  # where the chart mounts the cilium-config ConfigMap
CHART_ENV = (("K8S_NODE_NAME", "dhi-cilium-node"), ("CILIUM_K8S_NAMESPACE", "kube-system"))
SAMPLE_SECONDS = 0.5  # docker top while the operator waits for the API server
POLL_SECONDS = 0.1


@dataclass(repr=False)
class BootRun:
    """One boot and what was seen of it. ``api_wait_at`` is when the operator first logged that
    it waits for the API server (seconds after it started), None if it never did."""

    run: RunResult
    settle: float
    api_server: str  # where the boot pointed the operator ("" when the profile's args did)
    gops_dir: str  # where gops writes its port file (predicted from the image)
    gops_how: str  # why there
    api_wait_at: float | None = None
    gops_files: list[tuple[str, bytes]] = field(default_factory=list)  # port files it created
    samples: list[dict] = field(default_factory=list)  # docker top while it waited

    def __repr__(self) -> str:
        return f"<BootRun {self.run.describe()} api_wait_at={self.api_wait_at}>"

    @property
    def logs(self) -> str:
        return self.run.stderr + "\n" + self.run.stdout


def boot_spec(profile: Profile, entrypoint: tuple[str, ...] | None) -> tuple[RunSpec, str]:
    """The chart's way — `--config-dir` with one read-only file per option, `--debug=false`,
    env K8S_NODE_NAME and CILIUM_K8S_NAMESPACE, all capabilities dropped, no-new-privileges,
    the image's own user — plus a kubeconfig naming an API server nobody answers on (unless the
    profile's operator args name one). Returns the spec and the API server it names."""
    files = [(f"{CONFIG_DIR}/{key}", value.encode()) for key, value in profile.operator_config.items()]
    args = [f"--config-dir={CONFIG_DIR}", "--debug=false"]
    api_server = ""
    if not cilium.names_api_server(profile.operator_args):
        api_server = cilium.API_SERVER
        files.append((cilium.KUBECONFIG_PATH, cilium.kubeconfig(api_server)))
        args.append(f"--k8s-kubeconfig-path={cilium.KUBECONFIG_PATH}")
    spec = RunSpec(args=(*args, *profile.operator_args), entrypoint=entrypoint, files=tuple(files),
                   environment=CHART_ENV, cap_drop=("ALL",), security_opt=("no-new-privileges",))
    return spec, api_server


def watch_boot(engine: Engine, image: str, spec: RunSpec, settle: float, timeout: float, api_server: str,
               gops_dir: str, gops_how: str) -> BootRun:
    """Boot ``image`` with ``spec`` and watch it for ``settle`` seconds (BootWatch), then stop
    it; killed if it is still there ``timeout`` seconds after that."""
    boot = BootRun(RunResult([], None), settle, api_server, gops_dir, gops_how)
    boot.run = engine.run(image, spec, settle + timeout, observe=BootWatch(engine, boot))
    return boot


class BootWatch:
    """The ``observe`` callback of one boot: reads the logs until the operator waits for the
    API server, then records the gops port files it wrote and samples its uid/gid, until the
    settle window ends."""

    def __init__(self, engine: Engine, boot: BootRun) -> None:
        self.engine, self.boot, self.gops_dir = engine, boot, boot.gops_dir
        self.next_sample = 0.0
        self.since: float | None = None  # where the next look at the logs starts

    def __call__(self, container, elapsed: float) -> bool:
        import docker.errors
        import requests

        boot = self.boot
        try:
            if boot.api_wait_at is None:
                # Only the lines logged since the last look: the wait is the newest line.
                lines, self.since = self.engine.new_logs(container, self.since)
                if cilium.API_WAIT in lines:
                    boot.api_wait_at = elapsed
                    if cilium.GOPS_STARTED in self.engine.logs(container):  # logged earlier, once
                        boot.gops_files = self._port_files(container)
            if boot.api_wait_at is not None and elapsed >= self.next_sample:
                boot.samples.extend(self.engine.top(container))
                self.next_sample = elapsed + SAMPLE_SECONDS
        except (docker.errors.APIError, requests.exceptions.RequestException):
            pass  # it exited between the status check and this look; the run records how
        time.sleep(POLL_SECONDS)
        return elapsed < boot.settle

    def _port_files(self, container) -> list[tuple[str, bytes]]:
        """gops writes `<dir>/<pid>` holding its port once it listens: any file with a numeric
        name the container created, those in the predicted directory first."""
        predicted = self.gops_dir.rstrip("/") or "/"
        created = [p for p in self.engine.added_files(container) if posixpath.basename(p).isdigit()]
        created.sort(key=lambda p: posixpath.dirname(p) != predicted)
        found = []
        for path in created[:4]:
            data = read_container_file(container, path, limit=64, follow_links=0)
            if data is not None:
                found.append((path, data))
        return found
