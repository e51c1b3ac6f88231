"""The runtime tier against a real Docker engine and images built locally from the static fake
operator (tests/fake_operator): its own entrypoint, shells that must not start, the observed UID,
the chart-like boot — and nothing left running afterwards."""

import json
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
    spec = ik.dhi_like(fake_operator, labels={"session": TEST_REPO})  # an image id only this run has
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
    spec = ik.dhi_like(fake_operator_variant(FAKE_HANG_ON_HELP=None), labels={"session": TEST_REPO})  # ours alone
    ref = loaded_images(spec, "hang:1.18.3", tmp_path)
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
    # An image id only this run and case have: our_containers finds containers by image, and the
    # same hanging image may be running at this moment for another test (another xdist worker, or
    # another test run on this engine) — seen here, it would be signalled before it even started.
    spec = ik.dhi_like(fake_operator_variant(FAKE_HANG_ON_HELP=None), labels={"session": TEST_REPO, "case": signum})
    ref = loaded_images(spec, f"interrupt-{signum.lower()}:1.18.3", tmp_path)
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
    image, = json.loads((tmp_path / "r.json").read_text())["images"]  # the report is still written,
    assert image["result"] == "incomplete" and "help" in image["not_run"]  # saying what did not run


def test_docker_unreachable_errors_runtime_once_and_image_tier_runs(pytester, fake_operator, tmp_path, monkeypatch):
    archive = ik.write_docker_archive(tmp_path / "a.tar", ik.dhi_like(fake_operator), ["x/y:1.18.3"])
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    result = pytester.runpytest_subprocess(f"--dhi-image=docker-archive:{archive}", "--dhi-tier=image,runtime",
                                           "-p", "no:cacheprovider", "--dhi-report=r.json")
    result.assert_outcomes(passed=6, errors=1, skipped=6)  # one error; the checks it stops: not run
    out = result.stdout.str()
    sentence = (f"runtime tier: cannot reach a Docker engine at unix://{tmp_path}/no-docker.sock (")
    advice = ("start one, or leave out the runtime tier (--dhi-tier=image): archive inputs are "
              "certified without an engine")
    assert out.count("ERROR at setup") == 1
    result.stdout.fnmatch_lines([f"{sentence}*{advice}", "FAIL *: 6 passed, 7 not run", f"    error    {sentence}*",
                                 "    not run  help, version, no-shell-runtime, runtime-user, restricted-run, "
                                 "reference-flags, operator-starts"])
    # what applies to an archive input, nothing that does not (it is read daemonless already;
    # scripts/ensure-docker.sh is not in a pip install)
    assert "ensure-docker" not in out and "daemonless with" not in out
    assert "Traceback" not in out and "docker.errors" not in out and "During handling" not in out
    image = json.loads((pytester.path / "r.json").read_text())["images"][0]
    assert image["result"] == "fail" and len(image["errors"]) == 1 and image["errors"][0].startswith(sentence)
    assert image["not_run"] == ["help", "version", "no-shell-runtime", "runtime-user", "restricted-run",
                                "reference-flags", "operator-starts"]


def test_missing_daemon_image_is_one_error(docker_client, run_suite):
    result, report = run_suite(f"{TEST_REPO}/never-loaded:1.18.3", args=("--dhi-pull=never",))
    result.assert_outcomes(errors=1, skipped=12)  # reference-flags skips on its own
    image = report["images"][0]
    assert image["errors"] == [f"{TEST_REPO}/never-loaded:1.18.3: not in the local Docker engine and "
                               "--dhi-pull=never (docker pull it, or --dhi-pull=missing)"]
    assert len(image["not_run"]) == 12 and image["result"] == "fail"


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


def test_busybox_image_probes_each_shell_provider_once(loaded_images, run_suite, fake_operator, tmp_path,
                                                       our_containers):
    """~270 hard links to one busybox: probed as sh, ash and `busybox sh` (plus the fixed
    candidates), never as /bin/yes, /bin/init or any other applet."""
    # An image id of its own: the engine names an image by every tag it has, and the same layers
    # tagged 1.18.3-dev (the next test, or another run on this engine) would make it a dev variant.
    ref = loaded_images(ik.busybox_like(fake_operator, labels={"session": TEST_REPO}), "busybox-op:1.18.3", tmp_path)
    _, report = runtime_report(run_suite, ref, "-k", "no-shell-runtime")
    shell = check(report, "no-shell-runtime")
    assert shell["outcome"] == "failed"
    assert shell["message"] == "a shell started: sh, /bin/sh, ash, /bin/ash, /bin/busybox sh"
    assert shell["expectation"] == ("none of 8 candidates starts: sh, bash, /bin/sh, /bin/bash, /busybox/sh, "
                                    "ash, /bin/ash, /bin/busybox sh")
    applets = len(ik.busybox_applets()) - 1
    assert shell["notes"] == [f"shell provider /bin/busybox: probed as /bin/sh, /bin/ash, /bin/busybox sh; its "
                              f"{applets - 2} other path(s) (/bin/[, /bin/[[, /bin/acpid, ...) run other "
                              "programs and were not started"]
    assert our_containers(ref) == []


def test_busybox_dev_image_passes_the_runtime_tier(loaded_images, run_suite, fake_operator, tmp_path):
    ref = loaded_images(ik.busybox_like(fake_operator), "busybox-op:1.18.3-dev", tmp_path)
    result, report = runtime_report(run_suite, ref, "--dhi-tier=runtime")
    got = outcomes(report)
    assert got.pop("reference-flags") == "skipped"
    assert set(got.values()) == {"passed"}, result.stdout.str()[-3000:]


def test_every_container_is_killed_at_the_timeout_and_its_output_capped(docker_client, loaded_images,
                                                                          fake_operator, tmp_path):
    """A runaway writer (`yes`) and a process that never exits (`init`), run side by side:
    both killed at the timeout, the runaway's output read only up to the cap."""
    from pytest_dhi_cilium.runtime.engine import LOG_CAP, Engine, RunSpec

    spec = ik.busybox_like(fake_operator, labels={"session": TEST_REPO, "test": "runaway"})  # its id alone
    ref = loaded_images(spec, "busybox-runaway:1", tmp_path)
    engine = Engine()
    try:
        yes, init, echo = engine.run_all(ref, [RunSpec(entrypoint=("/bin/yes",)), RunSpec(entrypoint=("/bin/sleep",), args=("600",)),
                                               RunSpec(entrypoint=("/bin/echo",), args=("done",))], timeout=3)
        alone = engine.run(ref, RunSpec(entrypoint=("/bin/yes",)), timeout=2)
    finally:
        engine.close()
    assert yes.timed_out and init.timed_out and not echo.timed_out and echo.stdout == "done\n"
    assert yes.describe() == "`/bin/yes` still running after 3s: killed"
    assert alone.timed_out and 0 < len(alone.stdout) <= LOG_CAP + 100 and alone.stdout.startswith("y\n")
    assert docker_client.containers.list(all=True, filters={"ancestor": ref}) == []


def test_a_watch_reads_each_log_line_once_and_misses_none(loaded_images, tmp_path):
    """What BootWatch polls with: each look returns only the lines logged since the last one, and
    no line is lost — not between looks, not when one look stops at the 1 MiB cap mid-line."""
    from pytest_dhi_cilium.runtime.engine import LOG_CAP, Engine, RunSpec

    spec = ik.ImageSpec(layers=[[ik.directory("bin"), ik.host_file("bin/busybox", ik.BUSYBOX)]],
                        entrypoint=["/bin/busybox"], labels={"session": TEST_REPO, "test": "new-logs"})
    ref = loaded_images(spec, "new-logs:1", tmp_path)
    pad = "x" * 100
    # 1.5 MiB at once (more than one look reads), then 600 lines on both streams, in bursts.
    script = (f"i=0; while [ $i -lt 12000 ]; do echo burst$i-{pad}; i=$((i+1)); done; "
              "i=0; while [ $i -lt 300 ]; do echo out$i; echo err$i >&2; i=$((i+1)); "
              "[ $((i % 30)) = 0 ] && busybox usleep 50000; done; echo done; sleep 60")
    looks, since = [], [None]

    def observe(container, elapsed):
        text, since[0] = engine.new_logs(container, since[0])
        looks.append(text)
        time.sleep(0.02)
        return "done" not in text.splitlines()

    engine = Engine()
    try:
        engine.run(ref, RunSpec(entrypoint=("/bin/busybox",), args=("sh", "-c", script)), 60, observe=observe)
    finally:
        engine.close()
    lines = [line for text in looks for line in text.splitlines()]
    want = ({f"burst{i}-{pad}" for i in range(12000)} | {f"out{i}" for i in range(300)}
            | {f"err{i}" for i in range(300)} | {"done"})
    assert want - set(lines) == set(), f"{len(want - set(lines))} line(s) never seen"
    assert set(lines) <= want, "a line came back cut or garbled"
    assert max(len(text) for text in looks) <= LOG_CAP
    assert len(lines) < 1.5 * len(want)  # lines come back only when the look before read them too


def test_a_skipped_check_is_listed_once_with_its_reason_not_again_as_not_run(run_suite, fake_operator, archive):
    """An arm64 image on this amd64 engine: each runtime check is skipped with the reason, and the
    terminal's tally counts it once (the report's not_run still lists it: the result is incomplete)."""
    spec = ik.dhi_like(fake_operator)
    spec.architecture = "arm64"
    result, report = runtime_report(run_suite, archive(spec))
    summary = result.stdout.str().split("dhi-cilium ==", 1)[1]
    assert "    skipped  help: linux/arm64 image cannot run on this" in summary
    assert ": 6 passed, 7 skipped\n" in summary and "    not run  " not in summary
    assert report["images"][0]["result"] == "incomplete" and "help" in report["images"][0]["not_run"]
