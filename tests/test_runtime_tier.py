"""The runtime tier against a real Docker engine and images built locally from the static fake
operator (tests/fake_operator): its own entrypoint, shells that must not start, the observed UID,
the chart-like boot — and nothing left running afterwards."""

import os
import signal
import time

import pytest

import imagekit as ik
from conftest import TEST_REPO, check, outcomes

pytestmark = pytest.mark.docker

FAST = ("--dhi-settle=2", "--dhi-timeout=20")
RUNTIME_CHECKS = {"help", "version", "no-shell-runtime", "runtime-user", "restricted-run",
                  "operator-starts", "reference-flags"}


def runtime_report(run_suite, ref, *args):
    return run_suite(ref, args=("--dhi-tier=image,runtime", *FAST, *args))


def test_archive_input_is_loaded_untagged_and_removed(docker_client, run_suite, fake_operator, tmp_path,
                                                      our_containers):
    # A label of its own makes the image id unique: no other run on this engine holds it.
    spec = ik.dhi_like(fake_operator, labels={"test": TEST_REPO})
    archive = ik.write_docker_archive(tmp_path / "a.tar", spec, [f"{TEST_REPO}/never-tagged:1.18.3"])
    # A label of its own makes the image id unique: no other run on this engine holds it.
    spec = ik.dhi_like(fake_operator, labels={"test": TEST_REPO})
    archive = ik.write_docker_archive(tmp_path / "a.tar", spec, [f"{TEST_REPO}/never-tagged:1.18.3"])
    # Ids only (images.list() inspects each image: racy while other runs on this engine remove theirs)
    assert ik.image_id(spec) not in docker_client.api.images(all=True, quiet=True)
    result, report = runtime_report(run_suite, f"docker-archive:{archive}")
    assert set(outcomes(report).values()) == {"passed", "skipped"}, result.stdout.str()[-3000:]
    assert ik.image_id(spec) not in docker_client.api.images(all=True, quiet=True)  # loaded, then removed
    assert not docker_client.images.list(name=f"{TEST_REPO}/never-tagged")
    assert our_containers(ik.image_id(spec)) == []


def test_archive_already_in_engine_is_kept(docker_client, loaded_images, run_suite, fake_operator, tmp_path):
    spec = ik.dhi_like(fake_operator)
    loaded_images(spec, "kept:1.18.3", tmp_path)
    archive = ik.write_docker_archive(tmp_path / "b.tar", spec, ["whatever:1"])
    _, report = runtime_report(run_suite, f"docker-archive:{archive}", "-k", "test_help")
    assert outcomes(report) == {"help": "passed"}
    assert docker_client.images.get(ik.image_id(spec))  # still there


def test_dev_like_image_forced_to_runtime_variant_fails_no_shell_runtime(loaded_images, run_suite, fake_operator,
                                                                       tmp_path):
    """Every verdict of the dev layout: test_real_layouts.py; here, the shell it starts."""
    ref = loaded_images(ik.dev_like(fake_operator), "dhi-cilium-operator-generic:1.18.3-dev", tmp_path)
    _, report = runtime_report(run_suite, ref, "-k", "no-shell-runtime")
    assert "dev variant: sh starts a shell as expected" == check(report, "no-shell-runtime")["message"]
    result, report = runtime_report(run_suite, ref, "--dhi-variant=runtime", "-k", "no-shell-runtime")
    shell = check(report, "no-shell-runtime")
    assert shell["outcome"] == "failed" and "a shell started: sh, /bin/sh" in shell["message"]
    assert any("/bin/sh: STARTED A SHELL" in e for e in shell["evidence"])


BROKEN_BUILDS = {
    "help-exit-1": ({"FAKE_HELP_EXIT_1": None}, "help", "--help exited 1"),
    "missing-flag": ({"FAKE_MISSING_FLAG": "--k8s-namespace"}, "help", "--help lacks --k8s-namespace"),
    "help-to-stderr": ({"FAKE_HELP_TO_STDERR": None}, "help", "no `Usage:` on stdout (it went to stderr)"),
    "wrong-version": ({"FAKE_VERSION": "1.17.5"}, "version", "prints 1.17.5 but tag '1.18.3' says 1.18.3"),
    "crash-on-start": ({"FAKE_CRASH_ON_START": None}, "operator-starts", "the operator exited 255 after"),
}


@pytest.mark.parametrize("name", BROKEN_BUILDS)
def test_broken_builds_fail_their_check(name, loaded_images, run_suite, fake_operator_variant, tmp_path):
    defines, failing, message = BROKEN_BUILDS[name]
    ref = loaded_images(ik.dhi_like(fake_operator_variant(**defines)), f"broken-{name}:1.18.3", tmp_path)
    result, report = runtime_report(run_suite, ref, "-k", failing)
    verdict = check(report, failing)
    assert verdict["outcome"] == "failed", verdict
    assert verdict["message"].startswith(message), verdict["message"]
    assert any("exited" in e for e in verdict["evidence"])  # exit code and output head are shown


# -- operator-starts: what the boot proves (every layout's verdicts: test_real_layouts.py) --------


def boot_verdict(run_suite, ref, *args) -> dict:
    _, report = runtime_report(run_suite, ref, "-k", "operator-starts", *args)
    return check(report, "operator-starts")


def test_boot_passes_on_the_api_wait_and_gops_port_file(loaded_images, run_suite, fake_operator, tmp_path):
    ref = loaded_images(ik.dhi_like(fake_operator), "boot:1.18.3", tmp_path)
    boot = boot_verdict(run_suite, ref)
    assert boot["outcome"] == "passed", boot
    assert boot["message"] == ("its start hooks ran up to the API-server wait (gops wrote its port file) and it "
                               "kept waiting for http://127.0.0.1:1 for the whole 2s window; stopped by SIGTERM "
                               "(exit 143)")
    assert "--k8s-kubeconfig-path=/tmp/dhi-cilium/kubeconfig" in boot["evidence"][0]
    assert boot["evidence"][2] == ("gops wrote its port file /home/gops/1 (port 9891); expected in /home/gops "
                                   "(GOPS_CONFIG_DIR=/home/gops)")


def test_profile_config_reaches_the_boot(loaded_images, run_suite, fake_operator, tmp_path):
    """A config-map value the operator cannot parse is its own fatal error, as for the real one."""
    ref = loaded_images(ik.dhi_like(fake_operator), "boot-config:1.18.3", tmp_path)
    boot = boot_verdict(run_suite, ref, "--dhi-expect", 'operator_config={"gops-port": "notaport"}')
    assert boot["outcome"] == "failed" and boot["message"].startswith("the operator exited 255 after")
    assert any('msg="Incorrect config-map flag value" error="option gops-port: unable to cast' in e
               for e in boot["evidence"]), boot["evidence"]


def test_an_api_server_named_by_the_operator_args_replaces_the_boots(loaded_images, run_suite, fake_operator,
                                                                   tmp_path):
    ref = loaded_images(ik.dhi_like(fake_operator), "boot-kubeconfig:1.18.3", tmp_path)
    boot = boot_verdict(run_suite, ref, "--dhi-operator-arg=--k8s-kubeconfig-path=/nonexistent/kubeconfig")
    assert boot["outcome"] == "failed", boot
    assert boot["message"].startswith("the operator exited 255 after") and "before it waited for the API" \
        " server" in boot["message"]
    assert "/tmp/dhi-cilium/kubeconfig" not in boot["evidence"][0]  # only the one the args name
    assert any("stat /nonexistent/kubeconfig: no such file or directory" in e for e in boot["evidence"])
    assert "the API server its operator args name" in boot["expectation"]


@pytest.mark.parametrize("style", ["1.18", "1.17"])
def test_gops_disabled_by_the_operator_args(style, loaded_images, run_suite, fake_operator_variant, tmp_path):
    """--enable-gops=false: 1.18 runs without gops (nothing to prove there); 1.17 has no such
    flag and refuses to start, which the verdict shows."""
    defines = {"FAKE_V117": None} if style == "1.17" else {}
    ref = loaded_images(ik.dhi_like(fake_operator_variant(**defines)), f"boot-nogops-{style}:{style}", tmp_path)
    boot = boot_verdict(run_suite, ref, "--dhi-operator-arg=--enable-gops=false")
    if style == "1.18":
        assert boot["outcome"] == "passed", boot
        assert "no `Started gops server`: gops is disabled" in " ".join(boot["evidence"])
    else:
        assert boot["outcome"] == "failed" and boot["message"].startswith("the operator exited 1 after"), boot
        assert "log: unknown flag: --enable-gops" in boot["evidence"], boot["evidence"]


def test_operator_that_stops_waiting_within_the_window_fails(loaded_images, run_suite, fake_operator_variant,
                                                             tmp_path):
    """An operator that gives up on the API server inside the window (here a 2 s wait) fails,
    with its own account: `Unable to contact k8s api-server`, then the fatal line."""
    ref = loaded_images(ik.dhi_like(fake_operator_variant(FAKE_API_WAIT_SECONDS=2)), "boot-short:1.18.3", tmp_path)
    boot = boot_verdict(run_suite, ref, "--dhi-settle=6")
    assert boot["outcome"] == "failed", boot
    assert boot["message"].startswith("the operator exited 255 after") and "within the 6s settle window" \
        " (reached its API-server wait" in boot["message"], boot["message"]
    assert any("Unable to contact k8s api-server" in e for e in boot["evidence"])
    assert any('level=fatal msg="failed to start: Get' in e for e in boot["evidence"])


def test_reference_image_flags_are_compared(loaded_images, run_suite, fake_operator, fake_operator_variant, tmp_path):
    ours = loaded_images(ik.dhi_like(fake_operator_variant(FAKE_MISSING_FLAG="--gops-port")), "ours:1.18.3", tmp_path)
    upstream = loaded_images(ik.upstream_like(fake_operator), "upstream:v1.18.3", tmp_path)
    _, report = runtime_report(run_suite, ours, "-k", "reference", f"--dhi-reference-image={upstream}")
    verdict = check(report, "reference-flags")
    assert verdict["outcome"] == "failed", verdict
    assert verdict["message"] == "1 upstream flag(s) removed: --gops-port"
    assert any("entrypoint differs" in n for n in verdict["notes"])


def test_hanging_help_fails_within_timeout_and_leaves_nothing(loaded_images, run_suite, fake_operator_variant,
                                                              tmp_path, our_containers):
    ref = loaded_images(ik.dhi_like(fake_operator_variant(FAKE_HANG_ON_HELP=None)), "hang:1.18.3", tmp_path)
    started = time.monotonic()
    result, report = run_suite(ref, args=("--dhi-tier=runtime", "--dhi-timeout=3", "-k", "test_help"))
    assert time.monotonic() - started < 60
    verdict = check(report, "help")
    assert verdict["outcome"] == "failed" and "still running after 3s: killed (timeout)" in verdict["message"]
    assert our_containers(ref) == []


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_interrupted_run_leaves_no_container(signum, loaded_images, pytester, fake_operator_variant, tmp_path,
                                            our_containers):
    """Ctrl-C (SIGINT) or a cancelled CI job (SIGTERM) while a container hangs: the run stops,
    the container is removed, the report is written."""
    ref = loaded_images(ik.dhi_like(fake_operator_variant(FAKE_HANG_ON_HELP=None)), f"interrupt-{signum.lower()}:1.18.3", tmp_path)
    proc = pytester.popen([*pytester._getpytestargs(), f"--dhi-image={ref}", "--dhi-tier=runtime",
                           "--dhi-timeout=300", "-k", "test_help", "-p", "no:cacheprovider",
                           f"--dhi-report={tmp_path}/r.json"],
                          stdout=open(tmp_path / "out", "w"), stderr=open(tmp_path / "err", "w"))
    deadline = time.monotonic() + 60
    while not our_containers(ref) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert our_containers(ref), "the hanging container never appeared"
    proc.send_signal(getattr(signal, signum))
    assert proc.wait(timeout=60) == pytest.ExitCode.INTERRUPTED
    assert our_containers(ref) == []
    assert "KeyboardInterrupt" in (tmp_path / "out").read_text()
    assert os.path.exists(tmp_path / "r.json")  # the report is still written


def test_docker_unreachable_errors_runtime_once_and_image_tier_runs(pytester, fake_operator, tmp_path, monkeypatch):
    archive = ik.write_docker_archive(tmp_path / "a.tar", ik.dhi_like(fake_operator), ["x/y:1.18.3"])
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    result = pytester.runpytest_subprocess(f"--dhi-image=docker-archive:{archive}", "--dhi-tier=image,runtime",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6, errors=7)
    out = result.stdout.str()
    # one sentence per runtime check (and again in the short summary when CI=true un-truncates it)
    assert out.count(f"runtime tier: cannot reach a Docker engine at unix://{tmp_path}/no-docker.sock") in (7, 14)
    assert "start one (e.g. scripts/ensure-docker.sh)" in out
    assert "Traceback" not in out and "docker.errors" not in out


def test_xdist_keeps_runtime_checks_on_one_worker(loaded_images, pytester, fake_operator, tmp_path):
    """Runtime checks share the engine (an archive loaded once, removed at the end): under -n
    they stay on one worker, and the report still gathers every check."""
    archive = ik.write_docker_archive(tmp_path / "x.tar", ik.dhi_like(fake_operator), ["x/op:1.18.3"])
    result = pytester.runpytest_subprocess(f"--dhi-image=docker-archive:{archive}", "--dhi-tier=image,runtime",
                                           "-n", "2", *FAST, "--dhi-report=r.json", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["dhi-cilium: --dist load switched to loadscope: one worker runs the runtime checks"])
    result.assert_outcomes(passed=12, skipped=1)


def test_oci_archive_input_runs_through_the_engine(docker_client, run_suite, fake_operator, tmp_path):
    """OCI inputs (gzip layers, no RepoTags) are re-packaged for `docker load` and run."""
    spec = ik.dhi_like(fake_operator, labels={"test": "oci-archive"})  # an image id no other test loads
    layout = ik.write_oci_layout(tmp_path / "o.tar", [spec], ref_name="1.18.3", as_archive=True)
    result, report = runtime_report(run_suite, f"oci-archive:{layout}", "-k", "test_help or test_version")
    assert outcomes(report) == {"help": "passed", "version": "passed"}, result.stdout.str()[-2000:]
    with pytest.raises(Exception):
        docker_client.images.get(ik.image_id(spec))  # loaded for the run, removed after
