"""The operator-starts and runtime-user verdicts over boots as the real operator logs them
(lines copied from real 1.17.5 and 1.18.10 runs in containers), including the paths no image
in the other tests takes, and what no-shell-runtime says it probed. Pure: no container runs here."""

import imagekit as ik
from pytest_dhi_cilium.checks.runtime import no_shell_runtime, operator_starts, runtime_user, shell_probes
from pytest_dhi_cilium.checks.users import RuntimeUser
from pytest_dhi_cilium.runtime.boot import BootRun
from pytest_dhi_cilium.runtime.engine import RunResult
from pytest_dhi_cilium.settings import BUILTIN_PROFILES, Expectations

ARGV = ["/usr/local/bin/cilium-operator-generic", "--config-dir=/tmp/cilium/config-map", "--debug=false",
        "--k8s-kubeconfig-path=/tmp/dhi-cilium/kubeconfig"]
USER = RuntimeUser("65532:65532", 65532, 65532, "nonroot", "/home/nonroot")
RUNTIME = Expectations(BUILTIN_PROFILES["dhi"], "runtime", "test")

# real 1.17.5: logrus on stderr, hive on stdout
STDERR_117 = """\
time="2026-11-27T09:59:44.331339998Z" level=info msg="Cilium Operator 1.17.5 69aab28cf1 2025-06-12T11:29:27+00:00 go version go1.27.3 linux/amd64" subsys=cilium-operator-generic
time="2026-11-27T09:59:44.419181006Z" level=info msg="Started gops server" address="127.0.0.1:9891" subsys=gops
time="2026-11-27T09:59:44.420538701Z" level=info msg="Establishing connection to apiserver" host="http://127.0.0.1:1" subsys=k8s-client-builder
time="2026-11-27T09:59:49.438450861Z" level=info msg="Establishing connection to apiserver" host="http://127.0.0.1:1" subsys=k8s-client-builder
"""
STDOUT_117 = """\
time=2026-11-27T09:59:44Z level=info msg="Registering CNP / CCNP validator" module=operator.operator-controlplane.leader-lifecycle.network-policy-validator
time=2026-11-27T09:59:44Z level=info msg="Starting hive"
"""
# real 1.18.10, the gops directory not writable: everything after the banner on stdout, rc 255
STDOUT_118_GOPS = """\
time=2026-11-27T10:05:34.731010765Z level=info msg="Registering CNP / CCNP validator" module=operator.operator-controlplane.leader-lifecycle.network-policy-validator
time=2026-11-27T10:05:34.731728257Z level=info msg="Starting hive"
time=2026-11-27T10:05:34.731771571Z level=info msg="Started gops server" module=operator.operator-infra.gops address=127.0.0.1:9891
time=2026-11-27T10:05:34.731843127Z level=error msg="Start hook failed" function="gops.registerGopsHooks.func1 (pkg/gops/cell.go:47) (operator.operator-infra.gops)" error="mkdir /home/nonroot/.config: permission denied"
time=2026-11-27T10:05:34.731873102Z level=error msg="Failed to start hive" error="mkdir /home/nonroot/.config: permission denied" duration=125.226µs
time=2026-11-27T10:05:34.73189917Z level=info msg="Stopping hive"
time=2026-11-27T10:05:34.731906571Z level=info msg="Stopped hive" duration=1.573µs
time=2026-11-27T10:05:34.731917387Z level=fatal msg="failed to start: mkdir /home/nonroot/.config: permission denied"
"""


def boot(stdout="", stderr="", exit_code=143, running=True, api_wait_at=0.1, gops_files=(("/home/gops/1", b"9891"),),
         samples=({"uid": "65532", "gid": "65532"},), seconds=15.2) -> BootRun:
    run = RunResult(ARGV, exit_code, stdout, stderr, seconds=seconds, running_at_end=running)
    return BootRun(run, 15, "http://127.0.0.1:1", "/home/gops", "GOPS_CONFIG_DIR=/home/gops", api_wait_at,
                   list(gops_files), list(samples))


def test_real_117_boot_passes_with_its_evidence():
    verdict = operator_starts(boot(STDOUT_117, STDERR_117))
    assert verdict.ok, verdict.explain()
    assert verdict.message == ("its start hooks ran up to the API-server wait (gops wrote its port file) and it kept "
                               "waiting for http://127.0.0.1:1 for the whole 15s window; stopped by SIGTERM (exit 143)")
    assert verdict.evidence[1:] == ("reached its API-server wait 0.1s after start; 2 attempt(s) to reach "
                                    "http://127.0.0.1:1",
                                    "gops wrote its port file /home/gops/1 (port 9891); expected in /home/gops "
                                    "(GOPS_CONFIG_DIR=/home/gops)")
    assert runtime_user(boot(STDOUT_117, STDERR_117), USER, RUNTIME).ok


def test_real_118_gops_failure_shows_the_operators_lines_and_exit_code():
    dead = boot(STDOUT_118_GOPS, "", exit_code=255, running=False, api_wait_at=None, gops_files=(), samples=(),
                seconds=0.3)
    verdict = operator_starts(dead)
    assert not verdict.ok
    assert verdict.message == ("the operator exited 255 after 0.3s, before it waited for the API server: it did not "
                               "get through its start")
    assert [e.split(" msg=")[1][:30] for e in verdict.evidence[1:]] == [
        '"Start hook failed" function="', '"Failed to start hive" error="', '"failed to start: mkdir /home/']
    user = runtime_user(dead, USER, RUNTIME)
    assert not user.ok
    assert user.message == ("the operator process was not observed running: it never reached its API-server wait "
                            "(operator-starts says why)")
    assert not any("observation(s)" in e for e in user.evidence)  # no dangling "0 observation(s) ...: "
    assert "mkdir /home/nonroot/.config: permission denied" in user.evidence[1]


def test_gops_started_but_no_port_file_fails():
    verdict = operator_starts(boot(STDOUT_117, STDERR_117, gops_files=()))
    assert not verdict.ok
    assert verdict.message == ("it logged `Started gops server` but gops wrote no port file (expected in /home/gops "
                               "(GOPS_CONFIG_DIR=/home/gops))")


def test_port_file_elsewhere_is_shown_where_it_is():
    verdict = operator_starts(boot(STDOUT_117, STDERR_117, gops_files=(("/home/nonroot/.config/gops/1", b"9891"),)))
    assert verdict.ok
    assert verdict.evidence[2].startswith("gops wrote its port file /home/nonroot/.config/gops/1 (port 9891); "
                                          "expected in /home/gops")


def test_start_failure_logged_while_still_running_fails():
    late = STDOUT_117 + ('time=2026-11-27T09:59:50Z level=error msg="Start hook failed" '
                         'function="x.onStart (operator.operator-infra.x)" error="boom"\n')
    verdict = operator_starts(boot(late, STDERR_117))
    assert not verdict.ok and verdict.message == "the operator logged a start failure while running"
    assert verdict.evidence[-1].endswith('error="boom"')


def test_exit_after_the_api_wait_inside_the_window_fails():
    verdict = operator_starts(boot(STDOUT_117, STDERR_117, exit_code=1, running=False, seconds=9.0))
    assert not verdict.ok
    assert verdict.message == ("the operator exited 1 after 9.0s, within the 15s settle window (reached its "
                               "API-server wait 0.1s after start)")


def test_alive_without_the_api_wait_fails():
    alive = boot(STDOUT_117, STDERR_117.split("Establishing")[0], api_wait_at=None, gops_files=(), samples=())
    verdict = operator_starts(alive)
    assert not verdict.ok
    assert verdict.message == ("still running after 15s but it never logged `Establishing connection to apiserver`: "
                               "nothing shows that its start hooks completed")


def test_ignored_sigterm_is_said():
    verdict = operator_starts(boot(STDOUT_117, STDERR_117, exit_code=137))
    assert verdict.ok and verdict.message.endswith("ignored SIGTERM: killed (exit 137)")


def test_a_shell_provider_at_a_path_with_a_space_is_counted_as_probed(tmp_path, fake_operator):
    """The probe of a multi-call binary is labelled ``<path> sh``; which of the provider's paths
    were started is read from the probe, not from its label cut at the first space."""
    from pytest_dhi_cilium.checks.image import shell_providers
    from pytest_dhi_cilium.image.model import build_image
    from pytest_dhi_cilium.image.reference import parse_reference
    from pytest_dhi_cilium.image.sources import open_source

    spec = ik.dhi_like(fake_operator, extra_layers=[[ik.host_file("opt/my tools/busybox", ik.BUSYBOX),
                                                     ik.symlink("opt/my tools/ash", "busybox"),
                                                     ik.symlink("opt/my tools/ls", "busybox")]])
    ref = parse_reference(f"docker-archive:{ik.write_docker_archive(tmp_path / 'a.tar', spec, ['x/y:1.18.3'])}")
    with open_source(ref) as source:
        providers = shell_providers(build_image(ref.raw, source.read()))
    probes = shell_probes(providers)
    assert [p.label for p in probes if " " in p.path] == ["/opt/my tools/ash", "/opt/my tools/busybox sh"]
    refused = RunResult([], 127, start_error="exec: no such file or directory")
    verdict = no_shell_runtime([(p, refused) for p in probes], RUNTIME, providers)
    assert verdict.ok, verdict.explain()
    assert verdict.notes == ("shell provider /opt/my tools/busybox: probed as /opt/my tools/ash, /opt/my tools/busybox "
                             "sh; its 1 other path(s) (/opt/my tools/ls) run other programs and were not started",)
