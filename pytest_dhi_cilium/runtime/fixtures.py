"""Runtime-tier fixtures: each run happens once per image and session and is shared by the
checks that read it (``runtime-user`` reads the same boot as ``operator-starts``)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from ..image.reference import REGISTRY, Reference
from ..image.sources import EngineUnreachable, Platform, SourceError, open_source, reading
from ..image.sources.registry import daemon_name
from ..options import Settings
from ..settings import OPERATOR_NAME
from ..signals import sigterm_as_interrupt
from ..state import ENGINE_UNREACHABLE, SetupError
from ..targets import Target
from .boot import BootRun, boot_spec, watch_boot
from .engine import Engine, RunResult, RunSpec


@contextmanager
def _as_setup_error(what: str = "runtime tier"):
    """An engine failure becomes one sentence for every check that needed what it stopped."""
    try:
        yield
    except SourceError as exc:
        raise SetupError(f"{what}: {exc}") from None


@pytest.fixture(scope="session")
def dhi_engine(dhi_settings: Settings) -> Engine:
    """The Docker engine, or one sentence saying what applies (shown once per image)."""
    try:
        engine = Engine()
    except EngineUnreachable as exc:
        if all(ref.daemonless for ref in dhi_settings.images):
            what = "registry (docker://) inputs" if any(r.transport == REGISTRY for r in dhi_settings.images) \
                else "archive inputs"
            advice = (f"start one, or leave out the runtime tier (--dhi-tier=image): {what} "
                      "are certified without an engine")
        else:
            advice = "start one: the runtime tier runs the image in it"
        raise SetupError(f"runtime tier: {exc}; {advice}", cause=ENGINE_UNREACHABLE) from None
    except SourceError as exc:
        raise SetupError(f"runtime tier: {exc}") from None
    with sigterm_as_interrupt():  # a cancelled CI job still removes its containers
        try:
            yield engine
        finally:
            engine.close()  # removes leftover containers and the archive inputs it loaded


@dataclass(frozen=True)
class Runnable:
    image: str  # what to hand to the engine: a reference or an image id
    chart_entrypoint: tuple[str, ...] | None  # None: the image's own entrypoint
    shown_entrypoint: tuple[str, ...]  # for messages


@pytest.fixture(scope="session")
def dhi_runnable(dhi_engine: Engine, dhi_target: Target, dhi_image, dhi_expectations,
                 dhi_settings: Settings) -> Runnable:
    """The image under test, present in the engine (archive inputs are loaded, untagged, and
    removed at the end unless they were already there; a registry image is pulled by the digest
    the image tier judged). Depends on the expectations so the report names digest, platform
    and variant even when only the runtime tier runs."""
    host = dhi_engine.platform
    if not dhi_image.platform.matches(host):
        pytest.skip(f"{dhi_image.platform} image cannot run on this {host} engine (runtime tier "
                    "runs only the host's platform)")
    with _as_setup_error():
        if dhi_target.ref.transport == REGISTRY:
            image = _pull_judged(dhi_engine, dhi_target.ref, dhi_image.digest, dhi_image.config_digest,
                                 dhi_settings.pull)
        elif dhi_target.ref.daemonless:
            with reading(dhi_target.ref), open_source(dhi_target.ref) as source:
                image = dhi_engine.load(source.read(dhi_target.platform))
        else:
            image = dhi_engine.ensure_image(dhi_target.ref.location, dhi_settings.pull)
    if dhi_settings.profile.uses_cmd_only:
        # No ENTRYPOINT (upstream layout): run what the chart runs, `command: [cilium-operator-generic]`.
        return Runnable(image, (OPERATOR_NAME,), (OPERATOR_NAME,))
    return Runnable(image, None, tuple(dhi_image.config.entrypoint or ()))


def _run(engine: Engine, runnable: Runnable, spec: RunSpec, timeout: float) -> RunResult:
    with _as_setup_error():
        return _shown(engine.run(runnable.image, spec, timeout), runnable, spec)


def _shown(run: RunResult, runnable: Runnable, spec: RunSpec) -> RunResult:
    """A run of the image's own entrypoint names it as the image does, not `<entrypoint>`."""
    if spec.entrypoint is None:
        run.argv = list(runnable.shown_entrypoint) + list(spec.args)
    return run


def _run_args(engine: Engine, runnable: Runnable, settings: Settings, *args: str, **spec) -> RunResult:
    spec.setdefault("entrypoint", runnable.chart_entrypoint)
    return _run(engine, runnable, RunSpec(args=args, **spec), settings.timeout)


@pytest.fixture(scope="session")
def dhi_help_run(dhi_engine, dhi_runnable, dhi_settings) -> RunResult:
    return _run_args(dhi_engine, dhi_runnable, dhi_settings, "--help")


@pytest.fixture(scope="session")
def dhi_version_run(dhi_engine, dhi_runnable, dhi_settings) -> RunResult:
    return _run_args(dhi_engine, dhi_runnable, dhi_settings, "--version")


@pytest.fixture(scope="session")
def dhi_restricted_run(dhi_engine, dhi_runnable, dhi_settings, dhi_user) -> RunResult | str:
    """--help under the chart 1.18 / Pod Security "restricted" constraints."""
    if not dhi_user.resolved:
        return f"the image's user cannot be resolved: {dhi_user.error}"
    return _run_args(dhi_engine, dhi_runnable, dhi_settings, "--help", read_only=True, cap_drop=("ALL",),
                security_opt=("no-new-privileges",), user=f"{dhi_user.uid}:{dhi_user.gid}")


@pytest.fixture(scope="session")
def dhi_shell_runs(dhi_engine, dhi_runnable, dhi_settings, dhi_shell_providers) -> list[tuple]:
    """Every shell probe (fixed candidates, then each shell provider the image tier found,
    through the names that select a shell) with its run, as (ShellProbe, RunResult) pairs; all
    started side by side: the batch takes one --dhi-timeout at most."""
    from ..checks.runtime import shell_probes

    probes = shell_probes(dhi_shell_providers)
    specs = [RunSpec(args=p.args, entrypoint=p.entrypoint) for p in probes]
    with _as_setup_error():
        runs = dhi_engine.run_all(dhi_runnable.image, specs, dhi_settings.timeout)
    return list(zip(probes, runs))


@pytest.fixture(scope="session")
def dhi_operator_run(dhi_engine, dhi_runnable, dhi_settings, dhi_image, dhi_user) -> BootRun:
    """Boot the operator as the Helm chart does, pointed at an API server nobody answers on, and
    watch it for the settle window (runtime/boot.py): did it reach its API-server wait, what
    did gops write, which uid/gid did the process run as."""
    from ..checks.image import gops_directory

    spec, api_server = boot_spec(dhi_settings.profile, dhi_runnable.chart_entrypoint)
    gops_dir, gops_how = gops_directory(dhi_image, dhi_user)
    with _as_setup_error():
        boot = watch_boot(dhi_engine, dhi_runnable.image, spec, dhi_settings.settle, dhi_settings.timeout,
                          api_server, gops_dir, gops_how)
    _shown(boot.run, dhi_runnable, spec)
    return boot


@dataclass(frozen=True)
class ReferenceRuns:
    help: RunResult
    version: RunResult
    entrypoint: str


@pytest.fixture(scope="session")
def dhi_reference_runs(dhi_engine, dhi_settings) -> ReferenceRuns:
    """--help and --version of --dhi-reference-image (the upstream image being replaced), run
    the way the chart runs it: its entrypoint if it has one, else the bare binary name."""
    ref = dhi_settings.reference_image
    if ref is None:
        pytest.skip("no --dhi-reference-image given: nothing to compare the flags with")
    with _as_setup_error("reference image"):
        if ref.daemonless:
            with reading(ref), open_source(ref, insecure=dhi_settings.insecure_registries) as source:
                raw = source.read(_host_platform(source, dhi_engine))
                image = (_pull_judged(dhi_engine, ref, raw.manifest_digest, raw.config_digest, dhi_settings.pull)
                         if ref.transport == REGISTRY else dhi_engine.load(raw))
            entry = (raw.config.get("config") or {}).get("Entrypoint")
        else:
            image = dhi_engine.ensure_image(ref.location, dhi_settings.pull)
            entry = dhi_engine.entrypoint(image)
    runnable = Runnable(image, None if entry else (OPERATOR_NAME,), tuple(entry or ()))
    return ReferenceRuns(_run_args(dhi_engine, runnable, dhi_settings, "--help"),
                         _run_args(dhi_engine, runnable, dhi_settings, "--version"),
                         str(entry) if entry else f"none (chart command {OPERATOR_NAME})")


def _pull_judged(engine: Engine, ref: Reference, digest: str, config_digest: str, pull: str) -> str:
    """A registry image into the engine by its manifest digest: exactly what was read."""
    return engine.pull_pinned(daemon_name(ref, digest), pull, config_digest, digest)


def _host_platform(source, engine: Engine) -> Platform | None:
    host = engine.platform
    matching = [p for p in source.platforms() if p.matches(host)]
    return matching[0] if matching else None
