"""The only code that starts containers. Every container is labelled with this session's id
and removed after success, failure, timeout and Ctrl-C; a sweep at session end removes any
container a crash between "created" and "registered" could have left."""

from __future__ import annotations

import functools
import hashlib
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Callable

from ..image.sources import Platform, RawImage, SourceError, docker_client

LABEL = "org.pytest-dhi-cilium.session"
SESSION = uuid.uuid4().hex
_NO_EXEC = re.compile(r"(executable file not found|no such file or directory|permission denied"
                      r"|exec format error|not a directory)", re.I)


def _testcontainers():
    """testcontainers, with its Ryuk reaper off unless the user turned it on explicitly:
    Ryuk must be pulled from a registry, and this module removes its containers itself."""
    from testcontainers.core.config import testcontainers_config
    from testcontainers.core.container import DockerContainer

    if os.environ.get("TESTCONTAINERS_RYUK_DISABLED", "").lower() not in ("false", "0"):
        testcontainers_config.ryuk_disabled = True
    return DockerContainer


@dataclass(repr=False)
class RunResult:
    """What one container run showed. ``start_error`` is set when the OCI runtime refused to
    start the process at all (e.g. "executable file not found")."""

    argv: list[str]
    exit_code: int | None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    start_error: str = ""
    seconds: float = 0.0
    running_at_end: bool = False  # still alive when observation stopped (long-running boots)
    limit: float = 0.0  # the timeout it was killed at

    @property
    def not_executable(self) -> bool:
        """The runtime could not exec the command: no such file, not executable, ..."""
        return bool(self.start_error and _NO_EXEC.search(self.start_error)) or self.exit_code in (126, 127)

    def head(self, lines: int = 8) -> list[str]:
        """The first lines of stdout and stderr, for failure messages."""
        out = [f"stdout: {l}" for l in self.stdout.splitlines()[:lines]]
        err = [f"stderr: {l}" for l in self.stderr.splitlines()[:lines]]
        return out + err or ["(no output)"]

    def __repr__(self) -> str:  # short: pytest prints fixture values next to failures
        return f"<RunResult {self.describe()}>"

    def describe(self) -> str:
        if self.start_error:
            return f"`{' '.join(self.argv)}` did not start: {self.start_error}"
        if self.timed_out:
            return f"`{' '.join(self.argv)}` still running after {self.limit or self.seconds:g}s: killed"
        return f"`{' '.join(self.argv)}` exited {self.exit_code} after {self.seconds:.1f}s"


@dataclass(frozen=True)
class RunSpec:
    """How to start one container. ``entrypoint=None`` keeps the image's own entrypoint."""

    args: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    user: str | None = None
    read_only: bool = False
    cap_drop: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    files: tuple[tuple[str, bytes], ...] = ()  # (absolute path, content), read-only, before start


class Engine:
    """A Docker engine session: runs containers, loads archive inputs, cleans up."""

    def __init__(self) -> None:
        self.client = docker_client()  # SourceError with one clear sentence when unreachable
        self._loaded: list[str] = []  # image ids this session loaded (removed at close)
        self._pulled: list[str] = []  # HOST/REPO@sha256 references this session pulled (removed at close)
        self._tmp = tempfile.mkdtemp(prefix="dhi-cilium-")

    @functools.cached_property
    def platform(self) -> Platform:
        """The engine's os/arch (asked once per session)."""
        info = self.client.version()
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(info.get("Arch", ""), info.get("Arch", ""))
        return Platform(info.get("Os", "linux"), arch)

    # -- images ----------------------------------------------------------------------------

    def ensure_image(self, ref: str, pull: str) -> str:
        """A daemon reference, pulled per policy; returns the image id."""
        import docker.errors

        try:
            if pull == "always":
                return self.client.images.pull(ref).id
            try:
                return self.client.images.get(ref).id
            except docker.errors.ImageNotFound:
                if pull == "never":
                    raise SourceError(f"{ref}: not in the local Docker engine and --dhi-pull=never") from None
                return self.client.images.pull(ref).id
        except docker.errors.APIError as exc:
            raise SourceError(f"{ref}: {exc.explanation or exc}") from None

    def pull_pinned(self, name: str, pull: str, config_digest: str, manifest_digest: str) -> str:
        """A registry image by digest (``HOST/REPO@sha256:…``), pulled per policy with the Docker
        config's credentials, which must be the very image the image tier judged: the engine
        names it by its config digest (its manifest digest with the containerd image store).
        Removed at close unless the engine already had it."""
        import docker.errors

        try:
            try:
                image, existed = self.client.images.get(name), True
            except docker.errors.ImageNotFound:
                image, existed = None, False
            if image is None and pull == "never":
                raise SourceError(f"{name}: not in the local Docker engine and --dhi-pull=never "
                                  "(docker pull it, or --dhi-pull=missing)")
            if image is None or pull == "always":
                image = self.client.images.pull(name)
        except docker.errors.APIError as exc:
            hint = ("; the engine needs this registry in its own insecure-registries (daemon.json)"
                    if "HTTP response to HTTPS client" in str(exc) else "")
            raise SourceError(f"docker pull {name} failed: {_one_line(exc.explanation or str(exc))}{hint}") from None
        if not existed:
            self._pulled.append(name)
        if image.id not in (config_digest, manifest_digest):
            raise SourceError(f"the engine's image {image.id} pulled as {name} is not the image the image "
                              f"tier judged (config {config_digest})")
        return image.id

    def entrypoint(self, image: str) -> list[str] | None:
        return (self.client.images.get(image).attrs.get("Config") or {}).get("Entrypoint")

    def load(self, raw: RawImage) -> str:
        """Load an archive input for running it. It is loaded *untagged* (so no tag in the
        engine is ever moved) and removed at close unless it was already there."""
        import docker.errors

        # The engine names a loaded image by the hash of its config bytes: compute it from the
        # bytes themselves rather than trusting the digest the input claims.
        image_id = "sha256:" + hashlib.sha256(raw.config_bytes).hexdigest()
        try:
            self.client.images.get(image_id)
            return image_id  # already present: use it, never remove it
        except docker.errors.ImageNotFound:
            pass
        path = os.path.join(self._tmp, f"load-{uuid.uuid4().hex[:8]}.tar")
        _write_docker_archive(raw, path)
        try:
            with open(path, "rb") as data:
                self.client.images.load(data)
        except docker.errors.APIError as exc:
            raise SourceError(f"docker load failed: {exc.explanation or exc}") from None
        except docker.errors.ImageLoadError as exc:  # the engine refused the archive's content
            raise SourceError(f"docker load refused the image: {_one_line(str(exc))}") from None
        finally:
            os.unlink(path)
        self._loaded.append(image_id)
        return image_id

    # -- containers ------------------------------------------------------------------------

    def run(self, image: str, spec: RunSpec, timeout: float,
            observe: Callable[[object, float], bool] | None = None) -> RunResult:
        """Run one container to completion (or until ``timeout``, then kill it), then remove
        it. ``observe(container, elapsed)`` is called while it runs; returning False stops the
        observation early and the container is stopped: SIGTERM, then SIGKILL after
        ``STOP_GRACE`` seconds (some operator builds ignore SIGTERM while starting)."""
        started = time.monotonic()
        container, result = self._start(image, spec)
        try:
            if result.start_error:
                return result
            wrapped = container.get_wrapped_container()
            running_since = time.monotonic()  # the observation window starts once it runs
            if observe is not None:
                while time.monotonic() - running_since < timeout:
                    wrapped.reload()
                    if wrapped.status != "running":
                        break
                    if not observe(wrapped, time.monotonic() - running_since):
                        result.running_at_end = True
                        wrapped.stop(timeout=STOP_GRACE)
                        break
            self._finish(container, result, running_since, timeout)
            return result
        finally:
            result.seconds = time.monotonic() - started
            _remove(container)

    def run_all(self, image: str, specs: list[RunSpec], timeout: float) -> list[RunResult]:
        """Run several short containers side by side: all are started, then each is waited
        for until ``timeout`` after its own start and killed there, so the whole batch takes
        about one timeout however many hang. All are removed afterwards."""
        begun: list[tuple[object, RunResult, float]] = []
        try:
            for spec in specs:
                started = time.monotonic()
                container, result = self._start(image, spec)
                begun.append((container, result, started))
            for container, result, started in begun:
                if not result.start_error:
                    self._finish(container, result, started, timeout)
                # The engine's own clock: how long the process ran, not how long the batch took.
                ran = _ran_for(container)  # 0.0 is a real record (exited at once); None is none
                result.seconds = ran if ran is not None else time.monotonic() - started
            return [result for _, result, _ in begun]
        finally:
            for container, _, _ in begun:
                _remove(container)

    def _start(self, image: str, spec: RunSpec):
        """Create and start one container; ``start_error`` says why the runtime refused it."""
        import docker.errors

        DockerContainer = _testcontainers()
        kwargs = {"labels": {LABEL: SESSION}, "network_disabled": True,
                  "read_only": spec.read_only, "stdin_open": False,
                  # A runaway writer (`yes`) must not fill the disk, nor make reading its logs
                  # take minutes: the engine keeps one bounded file (json-file stores ~60 bytes
                  # per line on top of the text, hence more than the LOG_CAP read).
                  "log_config": {"type": "json-file", "config": {"max-size": LOG_FILE_CAP, "max-file": "1"}}}
        if spec.entrypoint is not None:
            kwargs["entrypoint"] = list(spec.entrypoint)
        if spec.user is not None:
            kwargs["user"] = spec.user
        if spec.cap_drop:
            kwargs["cap_drop"] = list(spec.cap_drop)
        if spec.security_opt:
            kwargs["security_opt"] = list(spec.security_opt)
        container = DockerContainer(image, command=list(spec.args),
                                    env=dict(spec.environment)).with_kwargs(**kwargs)
        result = RunResult(list(spec.entrypoint or ["<entrypoint>"]) + list(spec.args), None)
        try:
            for path, data in spec.files:  # copied after create, before start; root-owned 0444
                container.with_copy_into_container(data, path, 0o444)
            container.start()
        except docker.errors.APIError as exc:
            result.start_error = _one_line(exc.explanation or str(exc))
            result.exit_code = _exit_code(container)
        except BaseException:
            _remove(container)
            raise
        return container, result

    def _finish(self, container, result: RunResult, since: float, timeout: float) -> None:
        """Wait for the exit until ``timeout`` after ``since`` (monotonic), kill it there, read
        its logs (bounded in bytes and in time: a killed runaway must not stall the check)."""
        import requests

        wrapped = container.get_wrapped_container()
        remaining = max(1.0, since + timeout - time.monotonic())
        waiting_since = time.monotonic()
        try:
            result.exit_code = wrapped.wait(timeout=remaining)["StatusCode"]
        except requests.exceptions.RequestException as exc:
            # The SDK reports its read timeout as ReadTimeout or ConnectionError; only the
            # clock tells a timeout from an engine that went away.
            if time.monotonic() - waiting_since < remaining * 0.9:
                raise SourceError(f"lost the Docker engine while waiting: {_one_line(str(exc))}") from None
            result.timed_out, result.limit = True, timeout
            _kill(wrapped)
            result.exit_code = _exit_code(container)
        result.stdout = _capped_logs(wrapped, stdout=True)
        result.stderr = _capped_logs(wrapped, stderr=True)

    def logs(self, container) -> str:
        """stdout and stderr of a running container so far, capped like a finished run's."""
        return _capped_logs(container, stdout=True) + "\n" + _capped_logs(container, stderr=True)

    def new_logs(self, container, since: float | None = None) -> tuple[str, float | None]:
        """stdout and stderr lines a running container logged since ``since`` (the engine's
        clock, from an earlier call; None: from the start), and the ``since`` of the next call.
        A watch polling with it reads each line about once instead of the whole log every time;
        one call reads at most LOG_CAP bytes or LOG_READ_SECONDS, the next goes on from there."""
        data = bytearray()
        deadline = time.monotonic() + LOG_READ_SECONDS
        window = {"since": since} if since else {}
        for chunk in container.logs(stdout=True, stderr=True, stream=True, follow=False, timestamps=True,
                                    **window):
            data += chunk
            if len(data) >= LOG_CAP or time.monotonic() > deadline:
                break
        complete = bytes(data).rpartition(b"\n")[0]  # a line cut by the cap is read again next time
        lines = complete.decode("utf-8", "replace").splitlines()
        if not lines:
            return "", since
        stamp, _, _ = lines[-1].partition(" ")
        try:
            # Back by a millisecond: the engine's `since` is inclusive and nanosecond-exact, a float
            # of seconds is not; a line read twice is harmless, one skipped is not.
            since = _parse_stamp(stamp).timestamp() - 0.001
        except ValueError:
            pass  # not a timestamp: read from the same point again
        return "\n".join(line.partition(" ")[2] for line in lines), since

    def added_files(self, container) -> list[str]:
        """Paths the container created in its filesystem so far (`docker diff`, kind "A")."""
        return [c["Path"] for c in container.diff() or [] if c.get("Kind") == 1]

    def top(self, container) -> list[dict]:
        """Processes of a running container as the host sees them (effective uid/gid)."""
        listing = container.top(ps_args="-o pid,uid,gid,comm")
        titles = [t.lower() for t in listing.get("Titles") or []]
        return [dict(zip(titles, row)) for row in listing.get("Processes") or []]

    def sweep(self) -> list[str]:
        """Remove every container this session created that is still there."""
        removed = []
        for c in self.client.containers.list(all=True, filters={"label": f"{LABEL}={SESSION}"}):
            c.remove(force=True)
            removed.append(c.short_id)
        return removed

    def close(self) -> None:
        import docker.errors

        try:
            self.sweep()
            for image_id in self._loaded:
                try:
                    self.client.images.remove(image_id, force=True)
                except docker.errors.APIError:
                    pass
            for name in self._pulled:  # the digest reference only: other names of the image stay
                try:
                    self.client.images.remove(name)
                except docker.errors.APIError:
                    pass
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self.client.close()


STOP_GRACE = 3  # seconds between SIGTERM and SIGKILL when a watched boot is stopped
LOG_CAP = 1 << 20  # a runaway --help must not fill memory: the head is what messages show
LOG_FILE_CAP = "8m"  # what the engine keeps per container
LOG_READ_SECONDS = 1.0  # a flood of tiny lines costs Python time per line: stop reading there


def _capped_logs(wrapped, stdout: bool = False, stderr: bool = False) -> str:
    data = bytearray()
    deadline = time.monotonic() + LOG_READ_SECONDS
    for chunk in wrapped.logs(stdout=stdout, stderr=stderr, stream=True, follow=False):
        data += chunk
        if len(data) >= LOG_CAP:
            data = data[:LOG_CAP] + b"\n[... output cut at 1 MiB]"
            break
        if time.monotonic() > deadline:
            data += f"\n[... output cut after {len(data)} bytes: read for {LOG_READ_SECONDS:g}s]".encode()
            break
    return data.decode("utf-8", "replace")


def _kill(wrapped) -> None:
    try:
        wrapped.kill()
    except Exception:
        pass  # exited on its own meanwhile; removal below is what matters


def _remove(container) -> None:
    try:
        container.stop()  # testcontainers: force-remove, volumes too
    except Exception:
        pass  # never created, or already gone; the session sweep is the safety net


def _exit_code(container) -> int | None:
    try:
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        return wrapped.attrs["State"]["ExitCode"]
    except Exception:
        return None


def read_container_file(container, path: str, limit: int | None = None, follow_links: int = 8) -> bytes | None:
    """The bytes of a regular file in a container (running or not; its first ``limit`` bytes
    when given) through the engine's archive API: no shell needed. A symlink is followed, up
    to ``follow_links`` hops. None when it is absent or not a file."""
    import io

    import docker.errors

    try:
        stream, _ = container.get_archive(path)
    except docker.errors.NotFound:
        return None
    data = bytearray()
    for chunk in stream:  # one file: its tar is the file plus a header
        data += chunk
        if limit is not None and len(data) > limit + 4096:
            break
    try:
        with tarfile.open(fileobj=io.BytesIO(bytes(data)), mode="r|") as tar:
            member = tar.next()
            if member is not None and member.issym() and follow_links > 0:
                target = posixpath.normpath(posixpath.join(posixpath.dirname(path), member.linkname))
                return read_container_file(container, target, limit, follow_links - 1)
            if member is None or not member.isfile():
                return None
            handle = tar.extractfile(member)
            return handle.read(limit) if handle else None
    except tarfile.TarError:
        return None


def _parse_stamp(stamp: str):
    """The engine's RFC 3339 times carry nanoseconds: keep microseconds (ValueError if not one)."""
    import datetime as dt

    return dt.datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", stamp).replace("Z", "+00:00"))


def _ran_for(container) -> float | None:
    """Seconds between the container's start and exit, as the engine recorded them."""
    try:
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        state = wrapped.attrs["State"]
        if state["FinishedAt"].startswith("0001-"):
            return None  # never started, or still running
        seconds = (_parse_stamp(state["FinishedAt"]) - _parse_stamp(state["StartedAt"])).total_seconds()
    except Exception:
        return None
    return max(seconds, 0.0)  # a process that exits at once can be recorded as finishing first


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:400]


def _write_docker_archive(raw: RawImage, path: str) -> None:
    """Re-package any input as the legacy `docker save` layout Engine 20.10+ loads: the config
    byte-for-byte (so the image id stays the config digest), layers streamed as stored."""
    import io
    import json

    config_name = hashlib.sha256(raw.config_bytes).hexdigest() + ".json"
    with tarfile.open(path, "w") as tar:
        layer_names = []
        for index, layer in enumerate(raw.layers):
            name = f"{index}/layer.tar"
            info = tarfile.TarInfo(name)
            info.size = layer.size
            with layer.open() as stream:
                tar.addfile(info, stream)
            layer_names.append(name)
        for name, data in ((config_name, raw.config_bytes),
                           ("manifest.json", json.dumps([{"Config": config_name, "RepoTags": None,
                                                          "Layers": layer_names}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
