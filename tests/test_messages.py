"""What a new user reads: option errors that name where the bad value came from, `--help`,
the header, the hint in an empty directory, failures that show the check's explanation (not
the suite's source), `not_run` whatever the result, and Markdown that survives backticks."""

import json

import pytest

import imagekit as ik
from conftest import check, outcomes


# -- option errors name their source -------------------------------------------------------------


@pytest.mark.parametrize("env, ini, argv, message", [
    ({"DHI_TIER": "bogus"}, "", (), "DHI_TIER='bogus' (environment variable): tiers are image, runtime, cluster"),
    ({}, "dhi_tier = bogus", (), "dhi_tier='bogus' (ini key in tox.ini): tiers are image, runtime, cluster"),
    ({"DHI_TIER": "image"}, "", ("--dhi-tier=bogus",), "--dhi-tier='bogus': tiers are"),  # the command line wins
    ({"DHI_PULL": "sometimes"}, "", (), "DHI_PULL='sometimes' (environment variable): expected missing, always or never"),
    ({"DHI_PROFILE": "nope"}, "", (), "DHI_PROFILE='nope' (environment variable): not one of dhi, chainguard, upstream"),
    ({"DHI_TIMEOUT": "0"}, "", (), "DHI_TIMEOUT='0' (environment variable): expected a positive number of seconds"),
    ({"DHI_PLATFORM": "amd64"}, "", (), "DHI_PLATFORM='amd64' (environment variable): platform 'amd64' is not os/arch"),
    ({"DHI_IMAGE": "Not"}, "", (), "DHI_IMAGE (environment variable): 'Not' is not a Docker reference"),
    ({}, "", ("--dhi-expect", "uid=abc"),
     "--dhi-expect 'uid=abc': uid must be a number such as 65532, or none for no expectation"),
    ({}, "", ("--dhi-expect", "gid=-1"), "--dhi-expect 'gid=-1': gid must not be negative"),
])
def test_a_bad_value_is_one_line_naming_where_it_was_set(pytester, monkeypatch, env, ini, argv, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if ini:
        pytester.makefile(".ini", tox=f"[pytest]\n{ini}\n")
    image = () if "DHI_IMAGE" in env else ("--dhi-image=x/op:1",)
    result = pytester.runpytest("-p", "no:cacheprovider", *image, *argv)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1 and errors[0].startswith(f"ERROR: {message}"), errors
    assert "invalid literal" not in errors[0]


def test_help_shows_placeholders_and_defaults(pytester):
    result = pytester.runpytest("--help")
    out = result.stdout.str()
    for placeholder in ("--dhi-image=REF", "--dhi-pull=missing|always|never", "--dhi-profile=dhi|chainguard|upstream|FILE",
                        "--dhi-variant=auto|runtime|dev", "--dhi-tier=auto|TIER,...", "--dhi-report=PATH.json",
                        "--dhi-report-md=PATH.md", "--dhi-timeout=SECONDS", "--dhi-settle=SECONDS",
                        "--dhi-reference-image=REF", "--dhi-cluster-timeout=SECONDS", "--dhi-cilium-chart=CHART"):
        assert placeholder in out, placeholder
    assert "DHI_IMAGES" not in out and "DHI_PULL\n" not in out and "=DHI_" not in out
    flat = " ".join(out.split())
    for default in ("[default: missing;", "[default: dhi;", "[default: auto;", "[default: all;", "[default: 60;",
                    "[default: 15]"):
        assert default in flat, default


def test_header_says_which_tiers_apply_to_each_image(pytester, archive, fake_operator):
    ref = archive(ik.dhi_like(fake_operator))
    result = pytester.runpytest("-p", "no:cacheprovider", f"--dhi-image={ref}", "--dhi-image=acme/op:1.18.3", "--co")
    result.stdout.fnmatch_lines([
        "dhi-cilium: profile dhi, variant auto, platforms all; 2 image(s):",
        f"dhi-cilium:   {ref}: tiers image (an archive is read without an engine; --dhi-tier=image,runtime "
        "adds the runtime tier)",
        "dhi-cilium:   acme/op:1.18.3: tiers image, runtime (a Docker daemon reference: the engine that holds "
        "it runs it too)"])
    result = pytester.runpytest("-p", "no:cacheprovider", f"--dhi-image={ref}", "--dhi-tier=image,runtime", "--co")
    result.stdout.fnmatch_lines([f"dhi-cilium:   {ref}: tiers image, runtime (as --dhi-tier asks)"])


# -- plain pytest in an empty directory ---------------------------------------------------------

HINT = "dhi-cilium: no image to certify. Point pytest at one: pytest --dhi-image=REF*"


def test_plain_pytest_in_an_empty_directory_says_how_to_point_it_at_an_image(pytester):
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines([HINT])


@pytest.mark.parametrize("files, argv", [
    ({"test_mine.py": "def test_a():\n    pass\n"}, ()),  # a project with tests
    ({"test_mine.py": "def test_a():\n    pass\n"}, ("-k", "nothing")),  # everything deselected
    ({"test_none.py": "x = 1\n"}, ("test_none.py",)),  # an explicit path
])
def test_the_hint_stays_out_of_projects_with_tests(pytester, files, argv):
    for name, text in files.items():
        (pytester.path / name).write_text(text)
    result = pytester.runpytest("-p", "no:cacheprovider", *argv)
    assert "no image to certify" not in result.stdout.str()


# -- failures read as the check's explanation ---------------------------------------------------


def test_a_failure_shows_the_explanation_not_the_suite_source(pytester, archive, fake_operator, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # the short summary line, untruncated
    ref = archive(ik.dev_like(fake_operator))
    result = pytester.runpytest("-p", "no:cacheprovider", f"--dhi-image={ref}", "--dhi-variant=runtime",
                                "-k", "no_shell")
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        "*_ test_no_shell[[]docker-archive:img.tar[]] _*",
        "no-shell: 1 shell provider found: /bin/busybox, reachable as /bin/sh",
        "  expected: no shell executable anywhere in the image",
        "  - /bin/busybox (file 0755 0:0, layer 3 of 3, sha256:*): busybox is a multi-call binary that provides sh; "
        "also run by 1 link",
        "*FAILED dhi_image.py::test_no_shell[[]docker-archive:img.tar[]] - CheckFailed: no-shell: 1 shell provider "
        "found: /bin/busybox, reachable as /bin/sh"])
    for noise in ("dhi_settings = ", "dhi_record = ", "def test_no_shell", "verdict = dhi_record", "AssertionError",
                  "assert verdict.ok"):
        assert noise not in out, noise
    # debugging the plugin itself: pytest's own traceback of the suite is still there
    result = pytester.runpytest("-p", "no:cacheprovider", f"--dhi-image={ref}", "--dhi-variant=runtime",
                                "-k", "no_shell", "--tb=long")
    assert "def test_no_shell" in result.stdout.str()


def test_junit_carries_the_explanation(pytester, archive, fake_operator):
    ref = archive(ik.dev_like(fake_operator))
    pytester.runpytest("-p", "no:cacheprovider", f"--dhi-image={ref}", "--dhi-variant=runtime", "-k", "no_shell",
                       "--junitxml=j.xml")
    xml = (pytester.path / "j.xml").read_text()
    assert 'message="CheckFailed: no-shell: 1 shell provider found: /bin/busybox, reachable as /bin/sh"' in xml
    assert "busybox provides sh" in xml


# -- not_run whatever the result -----------------------------------------------------------------


def test_not_run_lists_what_x_left_out_of_a_failing_run(run_suite, archive, fake_operator):
    result, report = run_suite(archive(ik.dev_like(fake_operator)), args=("--dhi-variant=runtime", "-x"))
    result.assert_outcomes(failed=1)
    image = report["images"][0]
    assert outcomes(report) == {"no-shell": "failed"} and image["result"] == "fail"
    assert image["not_run"] == ["no-package-manager", "nonroot-user", "entrypoint", "operator-binary", "gops-writable"]
    result.stdout.fnmatch_lines(["FAIL *: 1 failed, 5 not run",
                                 "    not run  no-package-manager, nonroot-user, entrypoint, operator-binary, gops-writable"])


def test_not_run_lists_what_k_left_out_of_a_failing_run(run_suite, archive, fake_operator):
    _, report = run_suite(archive(ik.dev_like(fake_operator)), args=("--dhi-variant=runtime", "-k", "nonroot"))
    image = report["images"][0]
    assert image["result"] == "fail"
    assert image["not_run"] == ["no-shell", "no-package-manager", "entrypoint", "operator-binary", "gops-writable"]


# -- Markdown ------------------------------------------------------------------------------------


def test_markdown_survives_backticks_and_pipes():
    from pytest_dhi_cilium.report import render_markdown

    check_ = {"id": "help", "tier": "runtime", "outcome": "failed", "message": "an odd ` backtick | and a pipe",
              "expectation": "`--help` exits 0", "notes": [], "details": {},
              "evidence": ["`cilium-operator-generic --help` exited 1 after 0.2s", "stdout: a ``double`` run",
                           "`"]}
    image = {"ref": "x/op:1", "platform": "linux/amd64", "variant": "runtime", "variant_reason": "`-dev` tag",
             "profile": "dhi", "tiers": ["runtime"], "digest": "sha256:ab", "result": "fail", "errors": [],
             "checks": [check_], "not_run": [], "warnings": []}
    text = render_markdown({"images": [image]})
    assert "| `help` | runtime | ❌ failed | an odd \\` backtick \\| and a pipe |" in text
    assert "  - `` `cilium-operator-generic --help` exited 1 after 0.2s ``" in text
    assert "  - ```stdout: a ``double`` run```" in text
    assert "  - `` ` ``" in text
    assert "expected: \\`--help\\` exits 0" in text


def test_markdown_of_a_real_failure_keeps_every_code_span_closed(run_suite, archive, fake_operator, pytester):
    md = pytester.path / "r.md"
    run_suite(archive(ik.dev_like(fake_operator)), args=("--dhi-variant=runtime", f"--dhi-report-md={md}"))
    for line in md.read_text().splitlines():
        if line.startswith("  - `"):
            fence = line[4:len(line[4:]) - len(line[4:].lstrip("`")) + 4]
            assert line.endswith(fence) and len(line) > 2 * len(fence) + 4, line
    report = json.loads((pytester.path / "report.json").read_text())
    assert check(report, "no-shell")["outcome"] == "failed"
