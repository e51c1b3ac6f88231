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


@pytest.fixture
def our_containers(docker_client):
    """Containers the runtime engine created (its label) from one image, existing right now.
    Filtered by image so that another run on the same engine cannot disturb the test."""
    def listing(image):
        return docker_client.containers.list(
            all=True, filters={"label": "org.pytest-dhi-cilium.session", "ancestor": image})
    return listing


def runtime_report(run_suite, ref, *args):
    return run_suite(ref, args=("--dhi-tier=image,runtime", *FAST, *args))


def test_dhi_like_image_passes_runtime_tier(docker_client, loaded_images, run_suite, fake_operator,
                                            tmp_path, our_containers):
    ref = loaded_images(ik.dhi_like(fake_operator), "dhi-cilium-operator-generic:1.18.3", tmp_path)
    result, report = runtime_report(run_suite, ref)
    got = outcomes(report)
    assert got.pop("reference-flags") == "skipped"
    assert set(got.values()) == {"passed"}, result.stdout.str()[-3000:]
    assert "reference-flags" in result.stdout.str()  # the skip says why, in the summary too
    assert check(report, "runtime-user")["message"] == "observed 65532:65532, as resolved from the image"
    assert check(report, "version")["message"] == "prints 1.18.3, as tag '1.18.3' says"
    assert "all 6 shell candidates refused" in check(report, "no-shell-runtime")["message"]
    assert our_containers(ref) == []


def test_archive_input_is_loaded_untagged_and_removed(docker_client, run_suite, fake_operator, tmp_path,
                                                      our_containers):
    # A label of its own makes the image id unique: no other run on this engine holds it.
    spec = ik.dhi_like(fake_operator, labels={"test": TEST_REPO})
    archive = ik.write_docker_archive(tmp_path / "a.tar", spec, [f"{TEST_REPO}/never-tagged:1.18.3"])
    images_before = {i.id for i in docker_client.images.list(all=True)}
    assert ik.image_id(spec) not in images_before
    result, report = runtime_report(run_suite, f"docker-archive:{archive}")
    assert set(outcomes(report).values()) == {"passed", "skipped"}, result.stdout.str()[-3000:]
    assert ik.image_id(spec) not in {i.id for i in docker_client.images.list(all=True)}  # loaded, then removed
    assert not docker_client.images.list(name=f"{TEST_REPO}/never-tagged")
    assert our_containers(ik.image_id(spec)) == []


def test_archive_already_in_engine_is_kept(docker_client, loaded_images, run_suite, fake_operator, tmp_path):
    spec = ik.dhi_like(fake_operator)
    loaded_images(spec, "kept:1.18.3", tmp_path)
    archive = ik.write_docker_archive(tmp_path / "b.tar", spec, ["whatever:1"])
    _, report = runtime_report(run_suite, f"docker-archive:{archive}", "-k", "test_help")
    assert outcomes(report) == {"help": "passed"}
    assert docker_client.images.get(ik.image_id(spec))  # still there


def test_upstream_like_runs_the_chart_command_and_is_root(loaded_images, run_suite, fake_operator, tmp_path):
    ref = loaded_images(ik.upstream_like(fake_operator), "operator-generic:v1.18.3", tmp_path)
    result, report = runtime_report(run_suite, ref, "--dhi-profile=upstream")
    got = outcomes(report)
    assert got["help"] == got["version"] == got["operator-starts"] == got["no-shell-runtime"] == "passed", \
        result.stdout.str()[-3000:]
    assert got["runtime-user"] == "failed"
    assert check(report, "runtime-user")["message"] == "the operator process runs as UID 0 (root)"
    assert "cilium-operator-generic --help" in check(report, "help")["evidence"][0]


def test_dev_like_image_starts_a_shell_as_expected(loaded_images, run_suite, fake_operator, tmp_path):
    ref = loaded_images(ik.dev_like(fake_operator), "dhi-cilium-operator-generic:1.18.3-dev", tmp_path)
    result, report = runtime_report(run_suite, ref)
    got = outcomes(report)
    assert got["no-shell-runtime"] == "passed" and got["runtime-user"] == "passed", result.stdout.str()[-3000:]
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
    "crash-on-start": ({"FAKE_CRASH_ON_START": None}, "operator-starts", "the operator exited 1 after"),
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


def test_renamed_binary_loses_its_ipam_default(loaded_images, run_suite, fake_operator, tmp_path):
    spec = ik.dhi_like(fake_operator, entrypoint=["/usr/local/bin/operator"],
                       extra_layers=[[ik.host_file("usr/local/bin/operator", fake_operator)]])
    ref = loaded_images(spec, "renamed:1.18.3", tmp_path)
    _, report = runtime_report(run_suite, ref, "-k", "help", "--dhi-expect", 'entrypoint=["/usr/local/bin/operator"]')
    assert "stdout never names cilium-operator-generic" in check(report, "help")["message"]


def test_gops_not_writable_fails_image_and_boot(loaded_images, run_suite, fake_operator, tmp_path):
    """The cilium#40435 class: no GOPS_CONFIG_DIR, a root-owned home: predicted, then proven."""
    spec = ik.dhi_like(fake_operator, env=["PATH=/usr/local/bin"],
                       extra_layers=[[ik.directory("home/nonroot", 0o755, 0, 0)]])
    ref = loaded_images(spec, "rootowned-home:1.18.3", tmp_path)
    _, report = runtime_report(run_suite, ref, "-k", "gops-writable or operator-starts")
    assert outcomes(report) == {"gops-writable": "failed", "operator-starts": "failed"}
    boot = check(report, "operator-starts")
    assert "Start hook failed" in " ".join(boot["evidence"])
    assert "mkdir /home/nonroot/.config: permission denied" in " ".join(boot["evidence"])


def test_operator_args_and_profile_config_reach_the_boot(loaded_images, run_suite, fake_operator, tmp_path):
    ref = loaded_images(ik.dhi_like(fake_operator), "boot-args:1.18.3", tmp_path)
    # without the CIDR the operator dies like the real one ("must be provided")
    _, report = runtime_report(run_suite, ref, "-k", "operator-starts", "--dhi-expect",
                               'operator_config={"enable-ipv6": "false"}')
    boot = check(report, "operator-starts")
    assert boot["outcome"] == "failed" and "cluster-pool-ipv4-cidr must be provided" in " ".join(boot["evidence"])
    _, report = runtime_report(run_suite, ref, "-k", "operator-starts", "--dhi-expect",
                               'operator_config={"enable-ipv6": "false"}',
                               "--dhi-operator-arg=--cluster-pool-ipv4-cidr=10.0.0.0/8")
    assert check(report, "operator-starts")["outcome"] == "passed"


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
