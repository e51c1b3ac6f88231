"""Image sources: the daemon, docker-archive, oci-archive and oci directories give the same
verdicts; multi-platform indexes; hostile and broken inputs."""

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import uuid

import pytest

import imagekit as ik
from conftest import TEST_REPO, outcomes

DOCKERFILE_DHI = """
FROM scratch
COPY etc /etc
COPY --chown=65532:65532 home /home
COPY cilium-operator-generic /usr/local/bin/cilium-operator-generic
ENV PATH=/usr/local/bin:/usr/bin GOPS_CONFIG_DIR=/home/gops
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/cilium-operator-generic"]
"""
DOCKERFILE_BAD = DOCKERFILE_DHI.replace("USER 65532:65532", "COPY busybox /bin/busybox\nUSER root")


def docker_build(client, tag, dockerfile, files):
    """`docker build` from an in-memory context (the legacy builder of Engine 20.10)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, (data, mode) in {**files, "Dockerfile": (dockerfile.encode(), 0o644)}.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, mode
                tar.addfile(info)
                continue
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    client.images.build(fileobj=buf, custom_context=True, tag=tag, rm=True)
    return tag


@pytest.fixture(scope="module")
def built_images(docker_client, fake_operator, tmp_path_factory):
    files = {
        "etc/passwd": (b"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532::/home/nonroot:/sbin/nologin\n", 0o644),
        "etc/group": (b"root:x:0:\nnonroot:x:65532:\n", 0o644),
        "home/gops": (None, 0o700),
        "home/nonroot": (None, 0o700),
        "cilium-operator-generic": (fake_operator.read_bytes(), 0o755),
        "busybox": (open(ik.BUSYBOX, "rb").read(), 0o755),
    }
    tags = [docker_build(docker_client, f"{TEST_REPO}/built-{name}:1.18.3", dockerfile, files)
            for name, dockerfile in (("dhi", DOCKERFILE_DHI), ("bad", DOCKERFILE_BAD))]
    yield tags
    for tag in tags:
        docker_client.images.remove(tag, force=True)


def _transports(tag, docker_client, tmp_path):
    """The same daemon image as docker-archive (docker save), oci-archive and oci (skopeo)."""
    name = tag.split("/")[-1].replace(":", "_")
    archive = tmp_path / f"{name}.docker.tar"
    with open(archive, "wb") as out:
        for chunk in docker_client.images.get(tag).save(named=True):
            out.write(chunk)
    oci_archive, oci_dir = tmp_path / f"{name}.oci.tar", tmp_path / f"{name}.oci"
    for dest in (f"oci-archive:{oci_archive}:{tag}", f"oci:{oci_dir}:{tag}"):
        subprocess.run(["skopeo", "copy", "--quiet", f"docker-daemon:{tag}", dest], check=True)
    return [tag, f"docker-archive:{archive}", f"oci-archive:{oci_archive}", f"oci:{oci_dir}"]


@pytest.mark.docker
def test_daemon_and_archives_give_identical_verdicts(built_images, docker_client, run_suite, tmp_path):
    if not shutil.which("skopeo"):
        pytest.fail("skopeo is required (apt-get install skopeo)", pytrace=False)
    for tag in built_images:
        refs = _transports(tag, docker_client, tmp_path)
        result, report = run_suite(*refs, args=("--dhi-tier=image",))
        verdicts = [[{k: c[k] for k in ("id", "outcome", "message", "evidence", "notes")}
                     for c in image["checks"]] for image in report["images"]]
        assert len(verdicts) == 4
        assert all(v == verdicts[0] for v in verdicts), json.dumps(verdicts, indent=1)[:3000]
        platforms = {image["platform"] for image in report["images"]}
        assert platforms == {"linux/amd64"}
    dhi, bad = outcomes(report_of(run_suite, built_images[0])), outcomes(report_of(run_suite, built_images[1]))
    assert set(dhi.values()) == {"passed"}
    assert bad["no-shell"] == bad["nonroot-user"] == "failed"


def report_of(run_suite, ref):
    return run_suite(ref, args=("--dhi-tier=image",))[1]


@pytest.mark.docker
def test_daemon_source_leaves_no_temporary_files(built_images, run_suite):
    before = set(os.listdir(tempfile.gettempdir()))
    run_suite(built_images[0], args=("--dhi-tier=image",))
    leftovers = {n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("dhi-cilium-")}
    assert not leftovers


@pytest.mark.docker
def test_daemon_image_missing_with_pull_never(docker_client, run_suite):
    result, report = run_suite(f"{TEST_REPO}/does-not-exist:1.0", args=("--dhi-tier=image", "--dhi-pull=never"))
    result.assert_outcomes(errors=1, skipped=5)  # one error per image
    assert "not in the local Docker engine and --dhi-pull=never" in report["images"][0]["errors"][0]


def _open_fds() -> set[str]:
    return {n for n in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{n}")}


@pytest.mark.docker
def test_sources_that_fail_to_open_close_what_they_opened(docker_client, fake_operator, tmp_path):
    """An OCI archive without the named image, a daemon image missing under --dhi-pull=never:
    one sentence each, and no file or engine connection left open, even while the error (and
    with it the half-made source) is still referenced."""
    from pytest_dhi_cilium.image.reference import parse_reference
    from pytest_dhi_cilium.image.sources import SourceError, open_source

    archive = ik.write_oci_layout(tmp_path / "l.tar", [ik.dhi_like(fake_operator)], ref_name="1.18.3",
                                  as_archive=True)
    for raw, pull, sentence in [(f"oci-archive:{archive}:other", "missing", "holds no image manifest named"),
                                (f"{TEST_REPO}/does-not-exist:1.0", "never", "--dhi-pull=never")]:
        before = _open_fds()
        with pytest.raises(SourceError, match=sentence) as error:
            open_source(parse_reference(raw), pull=pull)
        assert error.value and _open_fds() - before == set(), raw


@pytest.mark.docker
def test_daemon_loaded_spec_with_whiteouts(loaded_images, run_suite, fake_operator, tmp_path):
    spec = ik.dhi_like(fake_operator, extra_layers=[
        [ik.host_file("bin/busybox", ik.BUSYBOX), ik.symlink("bin/sh", "busybox")],
        [ik.whiteout("bin/busybox"), ik.whiteout("bin/sh")]])
    ref = loaded_images(spec, "whiteouts:1.18.3", tmp_path)
    _, report = run_suite(ref, args=("--dhi-tier=image",))
    assert set(outcomes(report).values()) == {"passed"}


# -- multi-platform ---------------------------------------------------------------------------


def two_platforms(fake_operator, tmp_path, **kw):
    amd = ik.dhi_like(fake_operator)
    arm = ik.dhi_like(fake_operator, architecture="arm64", variant="v8", tag_user="",  # arm64 runs as root
                      env=["PATH=/usr/local/bin", "GOPS_CONFIG_DIR=/tmp/gops"])
    return ik.write_oci_layout(kw.pop("target", tmp_path / "layout"), [amd, arm], attestation=True, **kw)


def test_two_platform_index_runs_checks_per_platform(run_suite, fake_operator, tmp_path):
    (tmp_path / "layout").mkdir()
    layout = two_platforms(fake_operator, tmp_path)
    result, report = run_suite(f"oci:{layout}", args=("-v",))
    result.stdout.fnmatch_lines(["*test_nonroot_user[[]oci:layout@linux/amd64[]] PASSED*",
                                 "*test_nonroot_user[[]oci:layout@linux/arm64/v8[]] FAILED*"])
    result.assert_outcomes(passed=11, failed=1)  # the attestation manifest is not a platform
    assert [i["platform"] for i in report["images"]] == ["linux/amd64", "linux/arm64/v8"]
    assert report["images"][0]["digest"] != report["images"][1]["digest"]


VANISH = """
import os
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    if not hasattr(session.config, "workerinput"):  # the xdist controller, before its report
        os.remove({path!r})
"""


def test_xdist_report_uses_the_targets_listed_once(run_suite, fake_operator, tmp_path, pytester):
    """The xdist controller lists the inputs once, before the workers start; the report is
    built from that list, not from a second one at the end (which here would fail: the archive
    is gone by then, and used to add a platform-less INCOMPLETE entry beside the two real ones)."""
    archive = two_platforms(fake_operator, tmp_path, target=tmp_path / "multi.tar", as_archive=True)
    pytester.makepyfile(dhi_vanish=VANISH.format(path=str(archive)))
    pytester.syspathinsert()
    result, report = run_suite(f"oci-archive:{archive}", args=("-n", "2", "-p", "xdist", "-p", "dhi_vanish"),
                               subprocess=True)
    result.assert_outcomes(passed=11, failed=1)
    assert not archive.exists()
    assert [(i["platform"], i["result"]) for i in report["images"]] == [("linux/amd64", "pass"),
                                                                        ("linux/arm64/v8", "fail")]


def test_platform_selection_and_archive_form(run_suite, fake_operator, tmp_path):
    archive = two_platforms(fake_operator, tmp_path, target=tmp_path / "multi.tar", as_archive=True)
    result, report = run_suite(f"oci-archive:{archive}", args=("--dhi-platform=linux/arm64",))
    result.assert_outcomes(passed=5, failed=1)
    assert report["images"][0]["platform"] == "linux/arm64/v8"
    result, report = run_suite(f"oci-archive:{archive}", args=("--dhi-platform=linux/s390x",))
    result.assert_outcomes(errors=1, skipped=5)  # one error per image
    assert "no platform matches --dhi-platform linux/s390x (has linux/amd64, linux/arm64/v8)" in \
        report["images"][0]["errors"][0]


def test_oci_ref_name_selects_image_and_uncompressed_layers(run_suite, fake_operator, tmp_path):
    layout = ik.write_oci_layout(tmp_path / "l", [ik.dhi_like(fake_operator)], ref_name="1.18.3-dev",
                                 compress=False)
    result, report = run_suite(f"oci:{layout}:1.18.3-dev")
    assert report["images"][0]["variant"] == "dev"  # the selected ref name is a -dev tag
    result, report = run_suite(f"oci:{layout}:other")
    assert "holds no image manifest named 'other'" in report["images"][0]["errors"][0]


def test_skopeo_layout_without_platform_keeps_its_ref_name(run_suite, fake_operator, tmp_path):
    """`skopeo copy … oci:DIR:TAG` states no platform in index.json: the manifest is read to learn
    it, and the image still goes by its ref.name (regression: the name was lost, so no -dev)."""
    archive = ik.write_docker_archive(tmp_path / "a.tar", ik.dhi_like(fake_operator), ["acme/op:1"])
    layout = tmp_path / "layout"
    subprocess.run(["skopeo", "copy", "--quiet", f"docker-archive:{archive}", f"oci:{layout}:1.18.3-dev"],
                   check=True, capture_output=True, timeout=120)
    (desc,) = json.loads((layout / "index.json").read_text())["manifests"]
    assert "platform" not in desc and desc["annotations"]["org.opencontainers.image.ref.name"] == "1.18.3-dev"
    _, report = run_suite(f"oci:{layout}")
    assert (report["images"][0]["platform"], report["images"][0]["variant"]) == ("linux/amd64", "dev")


# -- hostile and broken inputs ----------------------------------------------------------------


def test_hostile_archive_writes_nothing_outside(run_suite, fake_operator, tmp_path, pytester):
    """Names that climb out land inside the image root, as Docker's chrooted unpack puts them
    (tests/test_reader_names.py judges where); nothing is ever written anywhere."""
    token = uuid.uuid4().hex
    spec = ik.dhi_like(fake_operator, extra_layers=[[
        ik.Member(f"../../escape-{token}", data=b"x"),
        ik.Member(f"/tmp/abs-{token}", data=b"x"),
        ik.Member(f"usr/../../../dotdot-{token}", data=b"x"),
        ik.symlink("etc/shadow-link", "../../../../../etc/shadow"),
        ik.hardlink("usr/bin/hl", f"../../../../escape-{token}"),
    ]])
    archive = ik.write_docker_archive(tmp_path / "hostile.tar", spec, ["x:1"], extra_members=[
        ik.Member(f"../outer-{token}", data=b"x"), ik.Member(f"/tmp/outer-abs-{token}", data=b"x")])
    result, report = run_suite(f"docker-archive:{archive}")
    result.assert_outcomes(passed=6)
    assert report["images"][0]["warnings"] == []
    for root in {"/", "/tmp", str(tmp_path), str(tmp_path.parent), str(pytester.path), str(pytester.path.parent), os.getcwd()}:
        for dirpath, _, names in os.walk(root) if root != "/" else [("/", [], os.listdir("/"))]:
            assert not [n for n in names if token in n], dirpath
            if root in ("/", "/tmp"):
                break


def test_manifest_pointing_outside_the_archive_is_an_error(run_suite, tmp_path):
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tar:
        data = json.dumps([{"Config": "../../etc/passwd", "RepoTags": None, "Layers": []}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    result, report = run_suite(f"docker-archive:{path}")
    result.assert_outcomes(errors=1, skipped=5)  # one error per image
    assert "archive has no member '../../etc/passwd'" in report["images"][0]["errors"][0]


def test_oci_layout_with_traversal_digest_is_refused(run_suite, tmp_path):
    (tmp_path / "l").mkdir()
    (tmp_path / "l" / "index.json").write_text(json.dumps({"manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:../../../etc/passwd",
         "platform": {"os": "linux", "architecture": "amd64"}}]}))
    _, report = run_suite(f"oci:{tmp_path / 'l'}")
    assert "refusing malformed digest" in report["images"][0]["errors"][0]


def test_oci_archive_given_as_docker_archive_says_so(run_suite, fake_operator, tmp_path):
    archive = ik.write_oci_layout(tmp_path / "o.tar", [ik.dhi_like(fake_operator)], as_archive=True)
    _, report = run_suite(f"docker-archive:{archive}")
    assert "for an OCI archive use oci-archive:PATH" in report["images"][0]["errors"][0]


def _tar_with(path, members: dict[str, bytes], links: dict[str, str] = ()):
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in dict(links).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


@pytest.mark.parametrize("transport, members, links, message", [
    ("docker-archive", {"manifest.json": b"[]"}, {}, "manifest.json lists no image"),
    ("docker-archive", {"manifest.json": b"[1]"}, {},
     "json: cannot unmarshal number into Go value of type tarexport.manifestItem"),
    ("docker-archive", {"manifest.json": b'{"a": 1}'}, {},
     "json: cannot unmarshal object into Go value of type []tarexport.manifestItem"),
    ("docker-archive", {"manifest.json": b'[{"Config": "c.json", "Layers": []}]', "c.json": b"[]"}, {},
     "c.json: json: cannot unmarshal array into Go value of type image.Image"),
    ("docker-archive", {}, {"manifest.json": "a", "a": "manifest.json"}, "manifest.json: too many links inside the archive"),
    ("oci-archive", {"index.json": b"[]"}, {}, "json: cannot unmarshal array into Go value of type v1.Index"),
    ("oci-archive", {"index.json": b'{"manifests": ["x"]}'}, {},
     "json: cannot unmarshal string into Go struct field Index.manifests of type v1.Descriptor"),
    ("oci-archive", {"index.json": b'{"manifests": [{"mediaType": "m"}]}'}, {}, "a manifest descriptor has no digest"),
])
def test_malformed_inputs_error_that_image_only(run_suite, fake_operator, tmp_path, transport, members, links, message):
    """A broken input is one error, one sentence, for that image; the other is still certified."""
    bad = _tar_with(tmp_path / "bad.tar", members, links)
    good = ik.write_docker_archive(tmp_path / "good.tar", ik.dhi_like(fake_operator), ["x:1"])
    result, report = run_suite(f"{transport}:{bad}", f"docker-archive:{good}")
    result.assert_outcomes(passed=6, errors=1, skipped=5)
    assert message in report["images"][0]["errors"][0], report["images"][0]
    assert "Traceback" not in result.stdout.str()
