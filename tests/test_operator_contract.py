"""The fake operator follows the real one: the same probes, run the same way (in containers,
through the runtime tier's own Engine and boot), on the fake and on a real
``cilium-operator-generic``; any behaviour the suite relies on that differs fails here.

The real one is named by DHI_TEST_OPERATOR (a binary) or DHI_TEST_OPERATOR_IMAGE (an image;
see tests/real_operator.py); without either these tests skip, saying how to run them. The fake
is built in the real one's style (1.17: logrus lines, exit 1; 1.18+: slog lines, exit 255) and
version. Compared: exit codes, whether it is still running, which stream each line goes to,
and every field of the lines that matter (not timestamps, durations or the Go version).
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import pytest

import imagekit as ik
import real_operator as ro
from pytest_dhi_cilium import cilium
from pytest_dhi_cilium.checks.versions import printed_version
from pytest_dhi_cilium.runtime.boot import CHART_ENV, boot_spec, watch_boot
from pytest_dhi_cilium.runtime.engine import Engine, RunSpec
from pytest_dhi_cilium.settings import BUILTIN_PROFILES, STABLE_HELP_FLAGS

pytestmark = pytest.mark.docker

PROFILE = BUILTIN_PROFILES["dhi"]
BINARY = f"/usr/local/bin/{ik.OPERATOR}"
RENAMED = "/usr/local/bin/renamed-op"
_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')
_BUILD = re.compile(r"(\d+\.\d+\.\d+\S*) [0-9a-f]{7,} \S+ go version go\S+ linux/\S+")
_EPHEMERAL_PORT = re.compile(r"(\[::1\]):\d+->")
VOLATILE = {"time", "duration"}
# The hive logs these at info level only when a step is slow: timing, not behaviour.
SLOW_STEP = {"Invoked", "Start hook executed"}


def contract_image(binary) -> ik.ImageSpec:
    """The DHI layout, plus the same binary under another name (a hard link) and a home that
    the runtime user cannot write, so every probe runs on one image."""
    spec = ik.dhi_like(binary, extra_layers=[[ik.directory("home/nonroot", 0o755, 0, 0)]])
    # A hard link in the binary's own layer, with the binary's mode (the engine applies it).
    spec.layers[1].append(ik.Member(RENAMED[1:], "hardlink", b"", 0o755, 0, 0, BINARY[1:]))
    return spec


@pytest.fixture(scope="module")
def real(real_operator) -> ro.Operator:
    return real_operator


@pytest.fixture(scope="module")
def images(real, fake_operator_variant, loaded_images, tmp_path_factory) -> dict[str, str]:
    """One contract image each: the real operator and the fake built in its style."""
    tmp = tmp_path_factory.mktemp("contract")
    fake = fake_operator_variant(**ro.fake_defines(real))
    return {"real": loaded_images(contract_image(real.binary), f"contract-real:{real.version}", tmp),
            "fake": loaded_images(contract_image(fake), f"contract-fake:{real.version}", tmp)}


@pytest.fixture(scope="module")
def engine(docker_client):
    engine = Engine()
    yield engine
    engine.close()


# -- what a probe saw, without what legitimately differs ----------------------------------------


def record(line: str) -> dict[str, str]:
    """A logfmt line as fields; volatile ones dropped, build metadata reduced to the version."""
    fields = {}
    for key, raw in _FIELD.findall(line):
        if key in VOLATILE:
            continue
        value = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\") if raw.startswith('"') else raw
        fields[key] = _EPHEMERAL_PORT.sub(r"\1:N->", _BUILD.sub(r"\1 <build>", value))
    return fields


def key_lines(text: str, only_reasons: bool = False, also: frozenset = frozenset()) -> list[dict]:
    """Log records in order, consecutive repeats collapsed; the option dump (which lists far
    more options in the real one) and slow-step notes left out."""
    records = []
    for line in text.splitlines():
        if "level=" not in line:
            continue
        fields = record(line)
        if fields.get("msg", "").startswith("  --") or fields.get("msg") in SLOW_STEP:
            continue
        if only_reasons and fields.get("level") not in ("error", "fatal") and fields.get("msg") not in also:
            continue
        if not records or records[-1] != fields:
            records.append(fields)
    return records


@dataclass
class Seen:
    exit_code: int | None
    running_at_end: bool
    stdout: list[dict] = field(default_factory=list)
    stderr: list[dict] = field(default_factory=list)
    api_wait: bool = False
    gops_files: list[str] = field(default_factory=list)
    attempts: int = 0
    raw_stdout: str = ""
    logs: str = ""


def boot(engine: Engine, image: str, watch: float, env=(), user=None, args=(), api=True,
         only_reasons=False, also=frozenset(), files=()) -> Seen:
    """The chart-like boot of operator-starts (runtime/boot.py), watched for ``watch``
    seconds, then stopped; ``api=False`` leaves out the API server address."""
    spec, _ = boot_spec(replace(PROFILE, operator_args=tuple(args)), None)
    if not api:
        spec = replace(spec, args=tuple(a for a in spec.args if not a.startswith("--k8s-kubeconfig-path")),
                       files=tuple(f for f in spec.files if f[0] != cilium.KUBECONFIG_PATH))
    spec = replace(spec, environment=spec.environment + tuple(env), user=user, files=spec.files + tuple(files))
    watched = watch_boot(engine, image, spec, watch, 30, cilium.API_SERVER, "/home/gops", "GOPS_CONFIG_DIR=/home/gops")
    run = watched.run
    return Seen(run.exit_code, run.running_at_end, key_lines(run.stdout, only_reasons, also),
                key_lines(run.stderr, only_reasons, also), watched.api_wait_at is not None,
                [path for path, _ in watched.gops_files], watched.logs.count(cilium.API_WAIT),
                run.stdout, watched.logs)


def both(probe, images):
    """Run one probe on the fake and the real image at the same time."""
    with ThreadPoolExecutor(2) as pool:
        fake, real = pool.map(probe, (images["fake"], images["real"]))
    return fake, real


def agree(fake: Seen, real: Seen, *fields: str) -> None:
    for name in fields or ("exit_code", "running_at_end", "stdout", "stderr", "api_wait", "gops_files"):
        assert getattr(fake, name) == getattr(real, name), (
            f"{name} differs:\n  fake: {getattr(fake, name)}\n  real: {getattr(real, name)}")


# -- the probes ---------------------------------------------------------------------------------


def test_help_on_stdout_exit_0_with_every_flag_the_fake_lists(engine, images, real):
    def probe(image):
        return engine.run(image, RunSpec(args=("--help",)), 60)

    fake, actual = both(probe, images)
    for run in (fake, actual):
        assert run.exit_code == 0 and run.stderr == "", run.describe()
    assert fake.stdout.split("Flags:")[0] == actual.stdout.split("Flags:")[0]  # header, usage, commands
    assert fake.stdout.splitlines()[-1] == actual.stdout.splitlines()[-1]
    real_flags, fake_flags = _flag_lines(actual.stdout), _flag_lines(fake.stdout)
    missing = sorted(set(fake_flags) - set(real_flags))
    assert not missing, f"the fake lists flags the real {real.version} does not: {missing}"
    differ = {f: (fake_flags[f], real_flags[f]) for f in fake_flags if fake_flags[f] != real_flags[f]}
    assert not differ, f"type, usage or default differ (fake, real): {differ}"
    relied_on = set(STABLE_HELP_FLAGS) | {"--k8s-kubeconfig-path"}
    assert relied_on <= set(real_flags) and relied_on <= set(fake_flags)
    gops_switch = "--enable-gops" in real_flags
    assert gops_switch == ("--enable-gops" in fake_flags) == (real.minor >= (1, 18))


def _flag_lines(text: str) -> dict[str, str]:
    """``--flag`` -> "type usage (default ...)" with pflag's column padding removed."""
    flags = {}
    for line in text.split("Flags:", 1)[1].splitlines():
        match = re.match(r"^\s+(?:-\w, )?(--[\w-]+)(?: (\w+))?\s{3,}(.*)$", line)
        if match:
            flags[match.group(1)] = f"{match.group(2) or ''} {match.group(3)}".strip()
    return flags


def test_help_header_and_ipam_default_follow_argv0(engine, images):
    def probe(image):
        return engine.run(image, RunSpec(args=("--help",), entrypoint=(RENAMED,)), 60)

    fake, actual = both(probe, images)
    assert fake.exit_code == actual.exit_code == 0
    for run in (fake, actual):
        assert run.stdout.startswith("Run renamed-op\n\nUsage:\n  renamed-op [flags]\n"), run.stdout[:200]
        ipam = next(l for l in run.stdout.splitlines() if "--ipam " in l)
        assert "(default" not in ipam, ipam  # the generic default needs the generic name
    assert fake.stdout.split("Flags:")[0] == actual.stdout.split("Flags:")[0]


def test_version_line(engine, images, real):
    def probe(image):
        return engine.run(image, RunSpec(args=("--version",)), 60)

    fake, actual = both(probe, images)
    assert fake.exit_code == actual.exit_code == 0 and fake.stderr == actual.stderr == ""
    shape = re.compile(r"^Cilium-Operator (\S+) [0-9a-f]{10} \S+ go version go\S+ linux/(amd64|arm64)\n$")
    assert shape.match(actual.stdout) and shape.match(fake.stdout), (actual.stdout, fake.stdout)
    assert printed_version(fake.stdout) == printed_version(actual.stdout) == real.version


def test_unknown_flag_is_a_usage_error(engine, images):
    def probe(image):
        return engine.run(image, RunSpec(args=("--dhi-no-such-flag",)), 60)

    fake, actual = both(probe, images)
    assert fake.exit_code == actual.exit_code == 1
    assert fake.stdout == actual.stdout == "unknown flag: --dhi-no-such-flag\n"
    assert fake.stderr.splitlines()[:2] == actual.stderr.splitlines()[:2] == [
        "Error: unknown flag: --dhi-no-such-flag", "Usage:"]


def test_no_api_server_address_dies_building_its_object_graph(engine, images):
    fake, real = both(lambda image: boot(engine, image, 5, api=False), images)
    agree(fake, real)
    assert real.exit_code in (1, 255) and not real.api_wait and not real.gops_files
    fatal = [r for r in real.stdout + real.stderr if r.get("level") == "fatal"]
    assert fatal[0]["msg"].startswith("failed to start: failed to populate object graph: unable to create "
                                      "k8s client rest configuration: unable to load in-cluster configuration")


def test_with_an_address_gops_starts_then_it_retries_the_api_server(engine, images):
    """What operator-starts relies on: start hooks (gops writing its port file), then
    `Establishing connection to apiserver` every 5 s, still running; SIGTERM stops it."""
    fake, real = both(lambda image: boot(engine, image, 8), images)
    agree(fake, real)
    assert real.running_at_end and real.api_wait and real.gops_files == ["/home/gops/1"]
    assert real.exit_code == 143  # stopped by SIGTERM within the grace, not killed
    assert fake.attempts >= 2 and real.attempts >= 2  # it retries (every 5 s) while it waits


def test_gops_directory_it_cannot_create_fails_its_start_hook(engine, images):
    env = (("GOPS_CONFIG_DIR", "/home/nonroot/.config/gops"),)
    fake, real = both(lambda image: boot(engine, image, 5, env=env), images)
    agree(fake, real)
    failed = next(r for r in real.stdout if r.get("msg") == "Start hook failed")
    assert failed["function"].startswith("gops.registerGopsHooks.func1 (pkg/gops/cell.go:")
    assert failed["error"] == "mkdir /home/nonroot/.config: permission denied"
    assert not real.api_wait


def test_root_without_capabilities_cannot_write_a_65532_gops_directory(engine, images):
    fake, real = both(lambda image: boot(engine, image, 5, user="0:0"), images)
    agree(fake, real)
    assert any(r.get("error") == "open /home/gops/1: permission denied" for r in real.stdout)


def test_gops_disabled_or_refused(engine, images, real):
    """1.18+: --enable-gops=false skips gops (no port file); 1.17 does not know the flag."""
    fake, actual = both(lambda image: boot(engine, image, 4, args=("--enable-gops=false",)), images)
    agree(fake, actual)
    if real.minor >= (1, 18):
        assert actual.api_wait and actual.gops_files == []
        assert cilium.GOPS_STARTED not in actual.logs + fake.logs
    else:
        assert actual.exit_code == 1 and actual.raw_stdout == fake.raw_stdout == "unknown flag: --enable-gops\n"


@pytest.mark.parametrize("value", [("gops-port", "notaport"), ("enable-ipv6", "maybe")])
def test_config_map_value_of_the_wrong_type_is_fatal(engine, images, value):
    def probe(image):
        spec = RunSpec(args=("--config-dir=/tmp/cfg",), files=((f"/tmp/cfg/{value[0]}", value[1].encode()),),
                       environment=CHART_ENV, cap_drop=("ALL",))
        return engine.run(image, spec, 60)

    fake, actual = both(probe, images)
    assert fake.exit_code == actual.exit_code and actual.exit_code in (1, 255)
    assert key_lines(fake.stderr) == key_lines(actual.stderr)
    assert key_lines(actual.stderr)[-1]["msg"] == "Incorrect config-map flag value"


def test_kubernetes_disabled_by_the_environment(engine, images, real):
    """CILIUM_ENABLE_K8S=false: no API wait at all. In a container without /etc/hosts the
    operator API's start hook cannot resolve localhost: 1.17 hangs, 1.18 exits."""
    env = (("CILIUM_ENABLE_K8S", "false"),)
    fake, actual = both(lambda image: boot(engine, image, 4, env=env, only_reasons=True), images)
    agree(fake, actual, "exit_code", "running_at_end", "api_wait", "stdout", "stderr")
    assert not actual.api_wait
    assert actual.running_at_end == (real.minor < (1, 18))


def test_kubernetes_disabled_with_localhost_resolvable_stays_up_and_outlives_sigterm(engine, images):
    """With /etc/hosts naming localhost its hive starts; SIGTERM then stops the hive but not the
    process (a stop hook waits forever): only SIGKILL ends it (REFERENCE.md, 1.18; 1.17 alike)."""
    env = (("CILIUM_ENABLE_K8S", "false"),)
    hosts = (("/etc/hosts", b"127.0.0.1 localhost\n::1 localhost\n"),)
    also = frozenset({"Started hive", "Signal received", "Stopping hive"})
    fake, real = both(lambda image: boot(engine, image, 4, env=env, files=hosts, only_reasons=True, also=also),
                      images)
    agree(fake, real, "exit_code", "running_at_end", "api_wait", "stdout", "stderr")
    assert real.running_at_end and real.exit_code == 137  # killed after the SIGTERM grace
    assert [r["msg"] for r in real.stdout if r["msg"] in also] == ["Started hive", "Signal received", "Stopping hive"]


def test_gives_up_on_the_api_server_after_60_seconds(engine, images):
    """The full wait (a minute, fake and real side by side): 13 attempts, then
    `Unable to contact k8s api-server`, the k8s client's start hook fails, fatal exit."""
    fake, real = both(lambda image: boot(engine, image, cilium.API_WAIT_SECONDS + 20), images)
    agree(fake, real, "exit_code", "running_at_end", "stdout", "stderr", "api_wait", "attempts")
    assert not real.running_at_end and real.exit_code in (1, 255) and real.attempts == 13
    fatal = [r for r in real.stdout + real.stderr if r.get("level") == "fatal"]
    assert fatal[0]["msg"] == ('failed to start: Get "http://127.0.0.1:1/api/v1/namespaces/kube-system": '
                               "dial tcp 127.0.0.1:1: connect: connection refused")
