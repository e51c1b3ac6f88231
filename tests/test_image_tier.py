"""The image tier end to end, daemonless: images written as archives, certified by the plugin
running in pytester exactly as users run it (`pytest --dhi-image=...` with no test files)."""

import json

import pytest

import imagekit as ik
from conftest import assert_one_error, check, outcomes

ALL_IMAGE_CHECKS = {"no-shell", "no-package-manager", "nonroot-user", "entrypoint",
                    "operator-binary", "gops-writable"}


def test_dhi_like_image_passes_everything(run_suite, archive, fake_operator):
    result, report = run_suite(archive(ik.dhi_like(fake_operator)))
    result.assert_outcomes(passed=6)
    assert result.ret == 0
    assert outcomes(report) == {c: "passed" for c in ALL_IMAGE_CHECKS}
    image = report["images"][0]
    assert image["variant"] == "runtime" and image["profile"] == "dhi"
    assert image["digest"].startswith("sha256:") and image["platform"] == "linux/amd64"


def test_test_ids_are_readable_and_k_selects_a_check(run_suite, archive, fake_operator):
    ref = archive(ik.dhi_like(fake_operator), name="mine")
    result, report = run_suite(ref, args=("-v", "-k", "no-shell"))
    result.stdout.fnmatch_lines(["*dhi_image.py::test_no_shell[[]docker-archive:mine.tar[]] PASSED*"])
    result.assert_outcomes(passed=1, deselected=5)
    assert list(outcomes(report)) == ["no-shell"]
    assert report["images"][0]["result"] == "incomplete"  # a partial run never reads as a pass
    assert report["images"][0]["not_run"] == ["no-package-manager", "nonroot-user", "entrypoint",
                                              "operator-binary", "gops-writable"]


def test_upstream_like_image_fails_nonroot_only_under_upstream_profile(run_suite, archive, fake_operator):
    result, report = run_suite(archive(ik.upstream_like(fake_operator)), args=("--dhi-profile=upstream",))
    assert result.ret == 1
    got = outcomes(report)
    assert got.pop("nonroot-user") == "failed"
    assert set(got.values()) == {"passed"}, got
    assert "Config.User is not set" in check(report, "nonroot-user")["message"]
    assert any("does not resolve" in n for n in check(report, "entrypoint")["notes"])  # ${OPERATOR_VARIANT}


def test_upstream_like_image_under_dhi_profile_says_what_differs(run_suite, archive, fake_operator):
    _, report = run_suite(archive(ik.upstream_like(fake_operator)))
    assert check(report, "entrypoint")["outcome"] == "failed"
    assert "expected ['/usr/local/bin/cilium-operator-generic']" in check(report, "entrypoint")["message"]
    binary = check(report, "operator-binary")
    assert binary["outcome"] == "failed"
    assert "PATH finds /usr/bin/cilium-operator-generic, profile dhi expects /usr/local/bin/" in binary["message"]


def test_dev_like_image_meets_dev_expectations(run_suite, archive, fake_operator):
    ref = archive(ik.dev_like(fake_operator), tags=["example/dhi-cilium-operator-generic:1.18.3-dev"])
    result, report = run_suite(ref)
    assert report["images"][0]["variant"] == "dev"
    assert outcomes(report) == {c: "passed" for c in ALL_IMAGE_CHECKS}, result.stdout.str()
    shell = check(report, "no-shell")
    assert "dev variant" in shell["expectation"] and "-dev" in shell["expectation"]
    assert any("/bin/sh -> busybox" in e and "busybox provides sh" in e for e in shell["evidence"])


def test_dev_like_image_forced_to_runtime_variant_fails_with_evidence(run_suite, archive, fake_operator):
    result, report = run_suite(archive(ik.dev_like(fake_operator)), args=("--dhi-variant=runtime",))
    got = outcomes(report)
    assert got["no-shell"] == got["no-package-manager"] == got["nonroot-user"] == "failed"
    shell = check(report, "no-shell")["evidence"]
    assert any(e.startswith("/bin/sh -> busybox (= /bin/busybox) (symlink, layer 3 of 3, sha256:") for e in shell), shell
    pm = " ".join(check(report, "no-package-manager")["evidence"])
    assert "/usr/bin/dpkg" in pm and "/usr/bin/apt-get" in pm and "/usr/bin/apt -> apt-get" in pm
    assert "/var/lib/dpkg/status" not in pm  # a database is not a package manager
    result.stdout.fnmatch_lines(["*no-shell: 1 shell provider found: /bin/busybox, reachable as /bin/sh*",
                                 "*busybox provides sh*"])


def test_dev_label_makes_auto_variant_dev(run_suite, archive, fake_operator):
    spec = ik.dev_like(fake_operator, labels={"com.docker.dhi.shell": "busybox"})
    _, report = run_suite(archive(spec, tags=["x/y:1.18.3"]))
    assert report["images"][0]["variant"] == "dev"
    assert "com.docker.dhi.shell" in report["images"][0]["variant_reason"]


VIOLATIONS = {
    "shell": ("no-shell", [[ik.host_file("bin/busybox", ik.BUSYBOX), ik.symlink("bin/sh", "busybox")]], {}),
    "package-manager": ("no-package-manager", [[ik.exe("usr/bin/apt-get")]], {}),
    "root-user": ("nonroot-user", [], {"tag_user": ""}),
    "wrong-entrypoint": ("entrypoint", [], {"entrypoint": ["/usr/bin/cilium-operator-generic"]}),
    "binary-not-executable": ("operator-binary", [[ik.exe("usr/local/bin/cilium-operator-generic", mode=0o700)]], {}),
    "binary-off-path": ("operator-binary", [], {"env": ["PATH=/usr/bin", "GOPS_CONFIG_DIR=/home/gops"]}),
    "gops-not-writable": ("gops-writable", [[ik.directory("home/nonroot", 0o755, 0, 0)]],
                          {"env": ["PATH=/usr/local/bin"]}),
}


@pytest.mark.parametrize("name", VIOLATIONS)
def test_each_violation_fails_its_check_only(name, run_suite, archive, fake_operator):
    failing, layers, overrides = VIOLATIONS[name]
    spec = ik.dhi_like(fake_operator, extra_layers=layers, **overrides)
    result, report = run_suite(archive(spec))
    assert result.ret == 1
    got = outcomes(report)
    assert got[failing] == "failed", check(report, failing)
    others = {c: o for c, o in got.items() if c != failing}
    # Real knock-on effects: the entrypoint is that binary; root without capabilities (as the
    # chart runs it) may not write the 65532-owned gops directory.
    knock_on = {"binary-not-executable": "entrypoint", "root-user": "gops-writable"}
    if name in knock_on:
        assert others.pop(knock_on[name]) == "failed"
    assert set(others.values()) == {"passed"}, others
    assert check(report, failing)["evidence"] or check(report, failing)["message"]


def test_binary_not_executable_evidence_names_mode_owner_and_layer(run_suite, archive, fake_operator):
    spec = ik.dhi_like(fake_operator, extra_layers=[[ik.exe("usr/local/bin/cilium-operator-generic", mode=0o700)]])
    _, report = run_suite(archive(spec))
    evidence = " ".join(check(report, "operator-binary")["evidence"])
    assert "(file 0700 0:0, layer 3 of 3, sha256:" in evidence
    assert "not executable by 65532:65532 (nonroot): other bits" in evidence


def test_gops_failure_explains_where_gops_writes(run_suite, archive, fake_operator):
    spec = ik.dhi_like(fake_operator, env=["PATH=/usr/local/bin"])  # no GOPS_CONFIG_DIR
    _, report = run_suite(archive(spec))
    gops = check(report, "gops-writable")
    assert "HOME=/home/nonroot (its /etc/passwd entry)" in gops["evidence"][0]
    assert gops["message"] == ("65532:65532 (nonroot) can write /home/nonroot/.config/gops "
                               "(to be created under /home/nonroot)")  # 0700, owned by 65532
    # the same home owned by root: gops cannot create its directory
    spec = ik.dhi_like(fake_operator, env=["PATH=/usr/local/bin"],
                       extra_layers=[[ik.directory("home/nonroot", 0o755, 0, 0)]])
    _, report = run_suite(archive(spec, name="rootowned"))
    gops = check(report, "gops-writable")
    assert gops["outcome"] == "failed"
    assert "cannot write /home/nonroot/.config/gops" in gops["message"]
    assert "/home/nonroot (dir 0755 0:0, layer 3 of 3" in " ".join(gops["evidence"])
    assert "not writable by 65532:65532 (nonroot): other bits" in " ".join(gops["evidence"])


def test_shell_deleted_by_later_layer_passes(run_suite, archive, fake_operator):
    spec = ik.dhi_like(fake_operator, extra_layers=[
        [ik.host_file("bin/busybox", ik.BUSYBOX), ik.symlink("bin/sh", "busybox"), ik.exe("usr/bin/dpkg")],
        [ik.whiteout("bin/busybox"), ik.whiteout("bin/sh"), ik.opaque("usr/bin")]])
    _, report = run_suite(archive(spec))
    assert outcomes(report)["no-shell"] == "passed"
    assert outcomes(report)["no-package-manager"] == "passed"


def test_busybox_renamed_and_reached_through_link_fails(run_suite, archive, fake_operator):
    spec = ik.dhi_like(fake_operator, extra_layers=[
        [ik.host_file("opt/tools/tool", ik.BUSYBOX), ik.symlink("usr/bin/sh", "/opt/tools/tool")],
        [ik.host_file("opt/x/busybox", ik.BUSYBOX), ik.symlink("usr/local/bin/helper", "../../../opt/x/busybox")]])
    _, report = run_suite(archive(spec))
    shell = check(report, "no-shell")
    assert shell["outcome"] == "failed"
    text = "\n".join(shell["evidence"])
    assert "/usr/bin/sh -> /opt/tools/tool" in text and "sh is a shell" in text
    assert "/usr/local/bin/helper -> ../../../opt/x/busybox" in text
    assert "helper reaches busybox, a multi-call binary" in text


def test_hard_linked_busybox_under_shell_name_fails(run_suite, archive, fake_operator):
    spec = ik.dhi_like(fake_operator, extra_layers=[
        [ik.host_file("opt/bb", ik.BUSYBOX), ik.hardlink("usr/bin/ash", "opt/bb")]])
    _, report = run_suite(archive(spec))
    assert any("/usr/bin/ash" in e and "hard link to /opt/bb" in e for e in check(report, "no-shell")["evidence"])


def test_user_name_mapping_to_uid_0_fails(run_suite, archive, fake_operator):
    spec = ik.dhi_like(fake_operator, tag_user="operator", extra_layers=[[
        ik.passwd("root:x:0:0:root:/root:/sbin/nologin", "operator:x:0:0:looks harmless:/home/op:/sbin/nologin")]])
    _, report = run_suite(archive(spec))
    user = check(report, "nonroot-user")
    assert user["outcome"] == "failed"
    assert user["message"] == "User 'operator' resolves to UID 0 (root)"
    assert any("/etc/passwd line 2: operator:x:0:0" in e for e in user["evidence"])


def test_numeric_uid_without_passwd_entry_passes_with_note(run_suite, archive, fake_operator):
    spec = ik.dhi_like(fake_operator, tag_user="65532", extra_layers=[[ik.passwd("root:x:0:0:root:/root:/sbin/nologin")]])
    _, report = run_suite(archive(spec), args=("--dhi-expect", "gid=none"))
    user = check(report, "nonroot-user")
    assert user["outcome"] == "passed"
    assert any("no /etc/passwd entry" in n for n in user["notes"])


def test_unknown_user_name_fails(run_suite, archive, fake_operator):
    _, report = run_suite(archive(ik.dhi_like(fake_operator, tag_user="ghost")))
    assert "unable to find user ghost: no matching entries in passwd file" in check(report, "nonroot-user")["message"]


def test_profile_uid_mismatch_fails(run_suite, archive, fake_operator):
    _, report = run_suite(archive(ik.dhi_like(fake_operator)), args=("--dhi-expect", "uid=1000"))
    assert check(report, "nonroot-user")["message"] == "runs as UID 65532; profile dhi expects 1000"


def test_markdown_report_lists_failures_with_evidence(run_suite, archive, fake_operator, pytester):
    md = pytester.path / "out" / "report.md"
    run_suite(archive(ik.dev_like(fake_operator)), args=("--dhi-variant=runtime", f"--dhi-report-md={md}"))
    text = md.read_text()
    assert "| `no-shell` | image | ❌ failed |" in text
    assert "busybox provides sh" in text and "**FAIL**" in text


def test_missing_archive_is_one_error_and_every_check_not_run(run_suite, tmp_path):
    result, report = run_suite(f"docker-archive:{tmp_path}/nope.tar", args=("-rs",))
    assert_one_error(result, report, f"docker-archive:{tmp_path}/nope.tar: no such file")
    result.stdout.fnmatch_lines([f"docker-archive:{tmp_path}/nope.tar: no such file*",  # the error, once
                                 "*    error    docker-archive:*nope.tar: no such file*",  # the summary
                                 "*    not run  no-shell, no-package-manager, nonroot-user, entrypoint, "
                                 "operator-binary, gops-writable",
                                 "SKIPPED [[]5[]] *dhi_image.py: not run: docker-archive:*: no such file*"])


def test_one_error_per_image_also_across_xdist_workers(run_suite, tmp_path):
    result, report = run_suite(f"docker-archive:{tmp_path}/nope.tar", args=("-n", "2"), subprocess=True)
    assert_one_error(result, report, "no such file")


def test_broken_archive_is_a_clear_error(run_suite, tmp_path):
    broken = tmp_path / "broken.tar"
    broken.write_bytes(b"this is not a tar" * 100)
    result, report = run_suite(f"docker-archive:{broken}")
    assert_one_error(result, report, "broken.tar' is not a tar archive (archive/tar: invalid tar header)")


def test_truncated_layer_is_a_clear_error(run_suite, tmp_path, fake_operator):
    path = ik.write_docker_archive(tmp_path / "t.tar", ik.dhi_like(fake_operator), ["x:1"])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # cuts the operator layer
    result, report = run_suite(f"docker-archive:{path}")
    message = report["images"][0]["errors"][0]
    assert_one_error(result, report, "")
    assert "truncated" in message or "no manifest.json" in message, message


def test_docker_down_with_a_daemon_reference_is_one_error_for_both_tiers(run_suite, tmp_path, monkeypatch):
    """Reading a daemon reference and running it both need the engine: one error saying so,
    not one per tier or per check; nothing here needs a real engine."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    result, report = run_suite("acme/dhi-cilium-operator-generic:1.18.3", subprocess=True)
    error = assert_one_error(result, report, f"cannot reach a Docker engine at unix://{tmp_path}/no-docker.sock",
                             not_run=13, skipped=12)
    assert "a Docker daemon reference is read through the engine: start it, or certify the image " \
           "daemonless as an archive" in error
    assert "ensure-docker" not in result.stdout.str()


def test_report_is_written_when_checks_error_and_schema_is_v1(run_suite, tmp_path, archive, fake_operator):
    _, report = run_suite(f"oci:{tmp_path}/missing-dir")
    assert report["schema"] == "pytest-dhi-cilium/report/v1"
    image = report["images"][0]
    assert set(image) >= {"ref", "digest", "platform", "variant", "profile", "checks", "errors", "not_run"}
    _, report = run_suite(archive(ik.dhi_like(fake_operator)))
    assert set(report["images"][0]["checks"][0]) >= {"id", "tier", "outcome", "message", "evidence", "details"}


@pytest.mark.parametrize("argv, message", [
    (("--dhi-image=docker-archive:",), "needs a path"),
    (("--dhi-image=Not A Ref",), "is not a Docker reference"),
    (("--dhi-image=x:1", "--dhi-profile=nope"), "not one of dhi, chainguard, upstream"),
    (("--dhi-image=x:1", "--dhi-tier=image,nope"), "tiers are image, runtime, cluster"),
    (("--dhi-image=x:1", "--dhi-pull=sometimes"), "expected missing, always or never"),
    (("--dhi-image=x:1", "--dhi-expect", "colour=blue"), "unknown profile key 'colour'"),
    (("--dhi-image=x:1", "--dhi-platform=amd64"), "is not os/arch"),
    (("--dhi-image=x:1", "--dhi-settle=55"), "--dhi-settle=55: at most 50 s; the operator gives up waiting for an "
                                             "API server after 60 s and exits"),
])
def test_bad_options_are_usage_errors(pytester, argv, message):
    result = pytester.runpytest(*argv)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_profile_file_toml_and_yaml(run_suite, archive, fake_operator, pytester):
    spec = ik.dhi_like(fake_operator, entrypoint=["/opt/op/cilium-operator-generic"],
                       extra_layers=[[ik.exe("opt/op/cilium-operator-generic")]],
                       env=["PATH=/opt/op:/usr/bin", "GOPS_CONFIG_DIR=/home/gops"])
    ref = archive(spec)
    toml = pytester.path / "vendor.toml"
    toml.write_text('extends = "dhi"\nentrypoint = ["/opt/op/cilium-operator-generic"]\n'
                    'binary = "/opt/op/cilium-operator-generic"\n')
    _, report = run_suite(ref, args=(f"--dhi-profile={toml}",))
    assert set(outcomes(report).values()) == {"passed"}, report
    assert report["images"][0]["profile"] == "vendor.toml"
    yaml_profile = pytester.path / "vendor.yaml"
    yaml_profile.write_text("binary: /opt/op/cilium-operator-generic\nuid: 1000\n")
    _, report = run_suite(ref, args=(f"--dhi-profile={yaml_profile}",
                                     "--dhi-expect", 'entrypoint=["/opt/op/cilium-operator-generic"]'))
    assert outcomes(report)["entrypoint"] == "passed"
    assert check(report, "nonroot-user")["message"] == "runs as UID 65532; profile vendor.yaml expects 1000"


def test_env_and_ini_options(pytester, archive, fake_operator, monkeypatch):
    ref = archive(ik.dhi_like(fake_operator))
    pytester.makeini(f"[pytest]\ndhi_images = {ref}\ndhi_report = from-ini.json\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)
    assert json.loads((pytester.path / "from-ini.json").read_text())["images"][0]["ref"] == ref
    monkeypatch.setenv("DHI_PROFILE", "upstream")  # environment beats ini
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, failed=2)  # entrypoint and binary path are upstream's


def test_no_image_means_the_plugin_stays_idle(pytester):
    pytester.makepyfile("def test_user():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_user_tests_can_use_the_fixtures_alongside_the_suite(pytester, archive, fake_operator):
    pytester.makepyfile(test_mine="""
        def test_label(dhi_image):
            assert dhi_image.config.user == "65532:65532"
    """)
    result = pytester.runpytest(f"--dhi-image={archive(ik.dhi_like(fake_operator))}", "test_mine.py",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=7)


def test_junitxml_and_xdist(pytester, archive, fake_operator):
    ref = archive(ik.dev_like(fake_operator))
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(f"--dhi-image={ref}", "--dhi-variant=runtime", "-n", "2",
                                           f"--junitxml={junit}", "--dhi-report=r.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=3)
    xml = junit.read_text()
    assert 'name="test_no_shell[docker-archive:img.tar]"' in xml and "busybox provides sh" in xml
    report = json.loads((pytester.path / "r.json").read_text())
    assert len(report["images"][0]["checks"]) == 6  # workers' reports reach the controller


def test_x_stops_at_first_failure(run_suite, archive, fake_operator):
    result, report = run_suite(archive(ik.dev_like(fake_operator)), args=("--dhi-variant=runtime", "-x"))
    result.assert_outcomes(failed=1)
    assert outcomes(report) == {"no-shell": "failed"} and report["images"][0]["result"] == "fail"


def test_shell_written_with_absolute_or_inner_dotdot_name_is_found(run_suite, archive, fake_operator):
    """Docker extracts `/bin/sh` and `usr/../bin/ash` inside the image: they are shells."""
    spec = ik.dhi_like(fake_operator, extra_layers=[[
        ik.Member("/bin/sh", data=open(ik.BUSYBOX, "rb").read(), mode=0o755),
        ik.Member("usr/../bin/ash", data=b"\x7fELF", mode=0o755)]])
    _, report = run_suite(archive(spec))
    shell = " ".join(check(report, "no-shell")["evidence"])
    assert "/bin/sh (file 0755 0:0, layer 3 of 3" in shell and "/bin/ash (file" in shell
    assert report["images"][0]["warnings"] == []


def test_backslash_name_is_not_a_whiteout(run_suite, archive, fake_operator):
    spec = ik.dhi_like(fake_operator, extra_layers=[[ik.exe("bin/sh")], [ik.Member("bin\\.wh.sh")]])
    _, report = run_suite(archive(spec))
    assert check(report, "no-shell")["outcome"] == "failed"


def test_user_with_explicit_group_gets_no_supplementary_groups(run_suite, archive, fake_operator):
    """runc: `USER nonroot:nonroot` runs with that group only; the `ops` membership in
    /etc/group does not apply, so a 0770 root:ops gops directory is not writable."""
    spec = ik.dhi_like(fake_operator, tag_user="nonroot:nonroot", extra_layers=[[
        ik.group("root:x:0:", "nonroot:x:65532:", "ops:x:2000:nonroot"),
        ik.directory("home/gops", 0o770, 0, 2000)]])
    _, report = run_suite(archive(spec))
    assert check(report, "gops-writable")["outcome"] == "failed"
    spec.user = "nonroot"  # no group part: /etc/group memberships apply, ops included
    _, report = run_suite(archive(spec, name="nogroup"), args=("--dhi-expect", "gid=none"))
    assert check(report, "gops-writable")["message"] == "65532:65532 (nonroot) can write /home/gops"


@pytest.mark.parametrize("args", [("--dhi-operator-arg=--enable-gops=false",),
                                  ("--dhi-operator-arg=--enable-gops", "--dhi-operator-arg=False")])
def test_gops_disabled_is_not_applicable_but_still_judged(run_suite, archive, fake_operator, args):
    spec = ik.dhi_like(fake_operator, env=["PATH=/usr/local/bin"],
                       extra_layers=[[ik.directory("home/nonroot", 0o755, 0, 0)]])
    _, report = run_suite(archive(spec), args=args)
    gops = check(report, "gops-writable")
    assert gops["outcome"] == "passed" and gops["message"].startswith("not applicable: gops is disabled")
    assert "cannot write /home/nonroot/.config/gops" in gops["evidence"][0]
    assert gops["notes"] == ["with gops enabled (the chart's default) this image would fail here"]


def test_busybox_is_one_shell_provider_every_link_in_the_json(run_suite, archive, fake_operator, pytester):
    """A busybox reached by ~270 links is one program: one provider in the message and the
    terminal (a few links named), every link in the JSON details, a short Markdown report."""
    applets = [a for a in ik.busybox_applets() if a != "busybox"]
    md = pytester.path / "report.md"
    result, report = run_suite(archive(ik.busybox_like(fake_operator)), args=(f"--dhi-report-md={md}",))
    shell = check(report, "no-shell")
    assert shell["message"] == (f"1 shell provider found: /bin/busybox, reachable as /bin/sh, /bin/ash and "
                                f"{len(applets) - 2} other links")
    assert len(shell["evidence"]) == 5, shell["evidence"]  # the file, 3 links, "... and N more"
    assert shell["evidence"][0].startswith("/bin/busybox (file 0755 0:0, layer 1 of 3, sha256:")
    assert shell["evidence"][1].startswith("/bin/sh (file 0755 0:0, layer 1 of 3, sha256:")
    assert shell["evidence"][1].endswith("(hard link to /bin/busybox): busybox provides sh")
    assert f"... and {len(applets) - 3} more links to /bin/busybox" in shell["evidence"][-1]
    provider, = shell["details"]["providers"]
    assert provider["path"] == "/bin/busybox" and provider["layer"] == 1 and provider["diff_id"].startswith("sha256:")
    reached = {r["path"]: r for r in provider["reachable_as"]}
    assert set(reached) == {"/bin/busybox", *(f"/bin/{a}" for a in applets)}
    assert reached["/bin/yes"] == {"path": "/bin/yes", "via": "hard link", "link": "/bin/busybox", "layer": 1}
    assert reached["/bin/sh"]["reason"] == "busybox provides sh"
    out = result.stdout.str()
    assert "/bin/yes" not in out and "/bin/sh" in out  # short in the terminal
    assert len(md.read_text()) < 8000 and "/bin/yes" not in md.read_text()
    # busybox's dpkg and rpm applets make it a package manager too: one, reachable as both
    pm = check(report, "no-package-manager")
    assert pm["message"] == "1 package manager found: /bin/busybox, reachable as /bin/dpkg and /bin/rpm"


def test_long_link_chain_is_one_provider(run_suite, archive, fake_operator):
    """101 symlinks in a row to one shell: the 40 that resolve (Linux's limit) are paths to
    one provider, not 41 shells."""
    chain = [ik.symlink(f"c/{i}", f"/c/{i + 1}") for i in range(100)] + [ik.symlink("c/100", "/usr/bin/dash")]
    spec = ik.dhi_like(fake_operator, extra_layers=[[ik.directory("c"), ik.exe("usr/bin/dash"), *chain]])
    _, report = run_suite(archive(spec))
    shell = check(report, "no-shell")
    assert shell["message"].startswith("1 shell provider found: /usr/bin/dash, reachable as "), shell["message"]
    assert shell["message"].endswith(" and 38 other links")
    provider, = shell["details"]["providers"]
    links = {r["path"] for r in provider["reachable_as"]} - {"/usr/bin/dash"}
    assert links == {f"/c/{i}" for i in range(61, 101)}  # /c/60 needs 41 follows: ELOOP, as in Linux
    assert all(r["resolves"].count(" -> ") == 101 - int(r["path"][3:])
               for r in provider["reachable_as"] if r["path"].startswith("/c/") and r["path"] != "/c/100")


PACKAGE_MANAGER_PLACES = {
    # where it lives, and whether the image could run it as a package manager
    "usr/bin/dpkg": True, "usr/sbin/dpkg": True, "usr/local/bin/apt-get": True,
    "etc/cron.daily/dpkg": False,  # a cron job (a shell script) that calls dpkg
    "usr/share/bug/dpkg": False,  # reportbug's hook script for the dpkg package
    "usr/lib/apt/apt-get": False,  # off the command directories, and nothing links to it
    "opt/tools/rpm": False,
}


@pytest.mark.parametrize("place", PACKAGE_MANAGER_PLACES)
def test_a_package_manager_is_an_executable_in_a_command_directory(place, run_suite, archive, fake_operator):
    spec = ik.dhi_like(fake_operator, extra_layers=[[ik.exe(place, b"#!/bin/sh\n")]])
    _, report = run_suite(archive(spec), args=("-k", "no-package-manager"))
    pm = check(report, "no-package-manager")
    if PACKAGE_MANAGER_PLACES[place]:
        assert pm["outcome"] == "failed" and pm["message"] == f"1 package manager found: /{place}"
    else:
        assert pm["outcome"] == "passed", pm
        assert "not counted: 1 executable(s) named like a package manager outside the command directories" \
               in pm["notes"][0] and f"/{place} (file 0755 0:0, layer 3 of 3" in pm["notes"][0]
        assert pm["details"]["not_counted"][0]["path"] == f"/{place}"


def test_a_package_manager_reached_from_a_command_directory_counts(run_suite, archive, fake_operator):
    """Off PATH itself, but run by a link in one (or through a merged /bin -> usr/bin)."""
    spec = ik.dhi_like(fake_operator, env=["PATH=/usr/local/bin:/bin", "GOPS_CONFIG_DIR=/home/gops"],
                       extra_layers=[[ik.exe("usr/lib/apt/apt-get"), ik.symlink("usr/local/bin/get", "/usr/lib/apt/apt-get"),
                                      ik.symlink("bin", "usr/bin"), ik.exe("usr/bin/rpm")]])
    _, report = run_suite(archive(spec), args=("-k", "no-package-manager"))
    pm = check(report, "no-package-manager")
    assert pm["message"] == ("2 package managers found: /usr/bin/rpm; /usr/lib/apt/apt-get, reachable as "
                             "/usr/local/bin/get")
    assert "/usr/bin" in pm["details"]["command_dirs"]


def _linked_accounts(kind: str) -> tuple[list, list]:
    """/etc/passwd and /etc/group as links to files of other names: the files in the base layer,
    the links beside them (hard links must be) or in a layer of their own (symlinks)."""
    pw, gr = ik.NONROOT_PASSWD.data, ik.NONROOT_GROUP.data
    if kind == "symlink":
        return ([ik.directory("usr/share/base"), ik.file("usr/share/base/passwd.master", pw),
                 ik.file("usr/share/base/group.master", gr)],
                [ik.symlink("etc/passwd", "/usr/share/base/passwd.master"),
                 ik.symlink("etc/group", "../usr/share/base/group.master")])
    return ([ik.file("etc/passwd-", pw), ik.hardlink("etc/passwd", "etc/passwd-", 0o644),
             ik.file("etc/group-", gr), ik.hardlink("etc/group", "etc/group-", 0o644)], [])


@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_user_resolves_through_linked_passwd_and_group(run_suite, archive, fake_operator, kind):
    """Regression: /etc/passwd -> passwd.master (or a hard link to /etc/passwd-) was not read, and
    the image was said to have a passwd "larger than the reader keeps"."""
    files, links = _linked_accounts(kind)
    spec = ik.dhi_like(fake_operator, tag_user="nonroot:nonroot", extra_layers=[links] if links else [])
    spec.layers[0] = [m for m in spec.layers[0] if m.name not in ("etc/passwd", "etc/group")] + files
    _, report = run_suite(archive(spec))
    user = check(report, "nonroot-user")
    assert user["outcome"] == "passed", user
    assert user["message"] == "User 'nonroot:nonroot' resolves to 65532:65532 (nonroot)"
    assert report["images"][0]["warnings"] == []


def test_passwd_is_read_after_other_files_named_passwd_filled_the_capture_budget(run_suite, archive,
                                                                                  fake_operator):
    """Every small file named passwd is kept in the single pass (16 MiB in all); /etc/passwd
    after seventeen 1 MiB /opt/*/passwd is read again from its layer, not lost."""
    filler = [ik.file(f"opt/{i}/passwd", b"#" * (1 << 20)) for i in range(17)]
    spec = ik.dhi_like(fake_operator, tag_user="nonroot:nonroot")
    spec.layers = [filler] + spec.layers
    _, report = run_suite(archive(spec))
    assert check(report, "nonroot-user")["message"] == "User 'nonroot:nonroot' resolves to 65532:65532 (nonroot)"
    assert report["images"][0]["warnings"] == []


def test_a_passwd_larger_than_the_reader_keeps_is_a_warning_naming_its_size(run_suite, archive,
                                                                             fake_operator):
    spec = ik.dhi_like(fake_operator, extra_layers=[[ik.file("usr/share/base/passwd.master", b"#" * (2 << 20)),
                                                     ik.symlink("etc/passwd", "../usr/share/base/passwd.master")]])
    _, report = run_suite(archive(spec))
    assert report["images"][0]["warnings"] == [
        "/etc/passwd (/usr/share/base/passwd.master, 2097152 bytes) was not read: larger than the 1 MiB "
        "the reader keeps of a file"]
