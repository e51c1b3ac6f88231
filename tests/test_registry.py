"""docker://: images read straight from a real registry (Debian's docker-registry on loopback,
started by the session, images pushed with skopeo) — every platform, pinned to one digest,
credentials from a Docker config, each failure one sentence; and daemon references pulled from
the same registry through the engine under each --dhi-pull."""

import gzip
import hashlib
import json
import struct
import uuid
import zlib

import pytest

import imagekit as ik
import registrykit as rk
from conftest import assert_one_error, check, outcomes, remove_images

REPO = "dhi-cilium-operator-generic"
INDEX = "application/vnd.oci.image.index.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def specs(fake_operator):
    amd = ik.dhi_like(fake_operator)
    arm = ik.dhi_like(fake_operator, architecture="arm64", variant="v8", tag_user="",  # arm64 runs as root
                      env=["PATH=/usr/local/bin", "GOPS_CONFIG_DIR=/tmp/gops"])
    shell = ik.dhi_like(fake_operator, extra_layers=[[ik.directory("bin"), ik.host_file("bin/busybox", ik.BUSYBOX),
                                                      ik.symlink("bin/sh", "busybox")]])
    return {"amd": amd, "arm": arm, "shell": shell}


@pytest.fixture(scope="module")
def images(registry, auth_registry, specs, tmp_path_factory):
    """What the registries serve: a two-platform index with an attestation manifest (behind
    authentication), a conforming and a failing Docker schema 2 image, a legacy schema 1 one."""
    tmp = tmp_path_factory.mktemp("registry-images")
    layout = ik.write_oci_layout(tmp / "multi", [specs["amd"], specs["arm"]], attestation=True)
    good = ik.write_docker_archive(tmp / "good.tar", specs["amd"], ["acme/op:1.18.3"])
    bad = ik.write_docker_archive(tmp / "bad.tar", specs["shell"], ["acme/op:1.18.3"])
    return {
        "multi": auth_registry.push(f"oci:{layout}", f"{REPO}:1.18.3", True),
        "good": registry.push(f"docker-archive:{good}", "op:good"),
        "bad": registry.push(f"docker-archive:{bad}", "op:bad"),
        "schema1": registry.push(f"docker-archive:{good}", "op:schema1", False, "--format", "v2s1"),
        "good_archive": good,
        "bad_archive": bad,
    }


@pytest.fixture
def logged_in(auth_registry, tmp_path, monkeypatch):
    """A Docker config holding the authenticated registry's credentials, as `docker login` writes
    them — and no Docker engine reachable at all."""
    config = rk.docker_config(tmp_path / "docker-config", {auth_registry.host: auth_registry.credentials})
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    return config


def test_two_platform_index_certified_from_the_registry_without_a_daemon(images, auth_registry, specs,
                                                                          logged_in, run_suite, pytester):
    md = pytester.path / "report.md"
    result, report = run_suite(images["multi"], args=("--dhi-platform=all", "-v", f"--dhi-report-md={md}"))
    result.stdout.fnmatch_lines([f"*test_nonroot_user[[]{images['multi']}@linux/amd64[]] PASSED*",
                                 f"*test_nonroot_user[[]{images['multi']}@linux/arm64/v8[]] FAILED*"])
    result.assert_outcomes(passed=11, failed=1)  # the attestation manifest is not a platform
    amd, arm = report["images"]
    assert (amd["platform"], amd["result"], arm["platform"], arm["result"]) == \
        ("linux/amd64", "pass", "linux/arm64/v8", "fail")
    assert outcomes(report, 1)["nonroot-user"] == "failed"
    # The digests are the registry's, as skopeo reads them: the index, each platform's manifest.
    index_bytes = auth_registry.raw_manifest(f"{REPO}:1.18.3")
    index = json.loads(index_bytes)
    assert index["mediaType"] == INDEX and len(index["manifests"]) == 3
    assert amd["index_digest"] == arm["index_digest"] == sha256(index_bytes)
    assert [amd["digest"], arm["digest"]] == [m["digest"] for m in index["manifests"][:2]]
    assert (amd["config_digest"], arm["config_digest"]) == (ik.image_id(specs["amd"]), ik.image_id(specs["arm"]))
    assert f"Index `{sha256(index_bytes)}`, this platform's manifest `{amd['digest']}`" in md.read_text()


def test_one_platform_and_a_pinned_digest(images, auth_registry, logged_in, run_suite):
    result, report = run_suite(images["multi"], args=("--dhi-platform=linux/arm64",))
    result.assert_outcomes(passed=5, failed=1)
    assert report["images"][0]["platform"] == "linux/arm64/v8"
    index_digest = report["images"][0]["index_digest"]
    # By digest (and name:tag@digest, where the digest wins as with docker pull): the same image.
    for ref in (f"docker://{auth_registry.host}/{REPO}@{index_digest}",
                f"docker://{auth_registry.host}/{REPO}:no-such-tag@{index_digest}"):
        result, report = run_suite(ref, args=("--dhi-platform=linux/amd64",))
        result.assert_outcomes(passed=6)
        assert report["images"][0]["index_digest"] == index_digest


def test_docker_schema2_images_conforming_and_failing(images, registry, run_suite):
    result, report = run_suite(images["good"], images["bad"])
    good, bad = report["images"]
    assert (good["result"], bad["result"]) == ("pass", "fail")
    assert check(report, "no-shell", 1)["outcome"] == "failed"
    assert "busybox" in " ".join(check(report, "no-shell", 1)["evidence"])
    manifest = registry.raw_manifest("op:good")
    assert json.loads(manifest)["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert good["digest"] == sha256(manifest) and good["index_digest"] == ""
    assert good["tiers"] == ["image"]  # daemonless: the runtime tier only when asked for


@pytest.mark.parametrize("store", ["credHelpers", "credsStore"])
def test_credentials_from_a_credential_helper(images, auth_registry, tmp_path, monkeypatch, run_suite, store):
    """The Docker credential-helper protocol, spoken by a small docker-credential-* on PATH."""
    rk.credential_helper(tmp_path / "bin", "dhitest", {auth_registry.host: auth_registry.credentials})
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{__import__('os').environ['PATH']}")
    entry = {"credHelpers": {auth_registry.host: "dhitest"}} if store == "credHelpers" else {"credsStore": "dhitest"}
    monkeypatch.setenv("DOCKER_CONFIG", str(rk.docker_config(tmp_path / "cfg", **entry)))
    result, report = run_suite(images["multi"], args=("--dhi-platform=linux/amd64",))
    result.assert_outcomes(passed=6)


@pytest.mark.parametrize("case", ["unknown-repository", "unknown-tag", "no-credentials", "wrong-password",
                                  "unreachable", "tls", "schema1"])
def test_registry_errors_are_one_sentence(case, images, registry, auth_registry, tmp_path, monkeypatch, run_suite):
    login = {auth_registry.host: ("dhi-user", "wrong")} if case == "wrong-password" else {}
    monkeypatch.setenv("DOCKER_CONFIG", str(rk.docker_config(tmp_path / "cfg", login)))
    port = registry.port
    ref, message = {
        "unknown-repository": (f"docker://{registry.host}/no-such-repo:1.18.3",
                               f"the registry {registry.host} has no no-such-repo:1.18.3 (unknown repository or tag)"),
        "unknown-tag": (f"docker://{registry.host}/op:9.9.9", "has no op:9.9.9 (unknown repository or tag)"),
        "no-credentials": (images["multi"], f"the registry {auth_registry.host} requires credentials to pull "
                                            f"{REPO} (HTTP 401 unauthorized) and the Docker config has none for "
                                            f"it; run `docker login {auth_registry.host}`"),
        "wrong-password": (images["multi"], f"refused the credentials of dhi-user (from the Docker config) for "
                                            f"{REPO} (HTTP 401 unauthorized); run `docker login {auth_registry.host}` again"),
        "unreachable": (f"docker://127.0.0.1:{rk.free_port()}/op:1",
                        "cannot reach the registry 127.0.0.1:"),
        # 127.1 is loopback to the resolver but not by name: TLS is required, and this one has none.
        "tls": (f"docker://127.1:{port}/op:good", f"TLS failure talking to the registry 127.1:{port} ([SSL: "
                                                  f"WRONG_VERSION_NUMBER] wrong version number); if it serves plain "
                                                  f"HTTP, or a certificate you trust but cannot verify, pass "
                                                  f"--dhi-insecure-registry=127.1:{port}"),
        "schema1": (images["schema1"], "serves op:schema1 as application/vnd.docker.distribution.manifest.v1+prettyjws, "
                                       "which this plugin does not read"),
    }[case]
    result, report = run_suite(ref)
    first = assert_one_error(result, report, message)
    assert first.count("\n") == 0
    assert "Traceback" not in result.stdout.str()


def _regzip(original: bytes, old: bytes, new: bytes) -> bytes:
    """The gzip blob with ``old`` replaced by ``new`` in its tar, recompressed to exactly the
    original size (padded with a gzip FEXTRA field): a well-formed layer with other content."""
    tar = gzip.decompress(original).replace(old, new)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = deflate.compress(tar) + deflate.flush()
    pad = len(original) - (10 + 2 + len(body) + 8)
    assert pad >= 4
    extra = b"DH" + struct.pack("<H", pad - 4) + b"\0" * (pad - 4)
    header = b"\x1f\x8b\x08\x04\0\0\0\0\x02\xff" + struct.pack("<H", len(extra))
    return header + extra + body + struct.pack("<II", zlib.crc32(tar), len(tar) & 0xFFFFFFFF)


def test_a_blob_the_registry_serves_altered_is_refused(registry, fake_operator, tmp_path, run_suite):
    """End to end: a layer whose stored bytes were altered behind the registry's back (still a
    well-formed gzip'd tar of the same size) fails the image, naming the layer and the blob, and
    is not judged."""
    marker = f"dhi-marker-{uuid.uuid4().hex}".encode()
    spec = ik.dhi_like(fake_operator, extra_layers=[[ik.file("etc/marker", marker)]])
    archive = ik.write_docker_archive(tmp_path / "altered.tar", spec, ["acme/op:1"])
    ref = registry.push(f"docker-archive:{archive}", "op:altered")

    def holds_marker(path) -> bool:
        try:
            return marker in gzip.decompress(path.read_bytes())
        except (OSError, EOFError, zlib.error):
            return False

    blobs = [p for p in (registry.root / "storage").rglob("data") if holds_marker(p)]
    assert len(blobs) == 1
    blobs[0].write_bytes(_regzip(blobs[0].read_bytes(), marker, b"0" * len(marker)))
    result, report = run_suite(ref)
    message = assert_one_error(result, report, "does not match its digest")
    assert f"sha256:{blobs[0].parent.name}" in message and "does not match its digest" in message, message
    # Reported where every transport's layers are verified (model.build_image), as for an archive.
    assert f": layer 3 of 3 (sha256:{blobs[0].parent.name[:12]}): blob does not match its digest: " \
           f"expected sha256:{blobs[0].parent.name} " in message, message


class _HostileRegistry:
    """A registry on loopback that answers one manifest with ``size`` bytes (what no real one
    serves), counting what it managed to send before the client hung up."""

    def __init__(self, size: int):
        import http.server
        import threading

        outer = self
        self.sent = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path == "/v2/":
                    self._answer(b"{}", "application/json")
                    return
                self.send_response(200)
                self.send_header("Content-Type", INDEX)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                chunk = b" " * (1 << 20)
                try:
                    while outer.sent < size:
                        self.wfile.write(chunk)
                        outer.sent += len(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _answer(self, body: bytes, content_type: str):
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_giant_manifest_is_refused_after_16_mib_not_downloaded(run_suite):
    hostile = _HostileRegistry(128 << 20)
    try:
        result, report = run_suite(f"docker://{hostile.host}/op:huge")
    finally:
        hostile.close()
    assert_one_error(result, report, f"manifest huge from {hostile.host} is larger than 16 MiB: not an image document")
    assert hostile.sent < 64 << 20, f"{hostile.sent} bytes were sent before the plugin hung up"


def _put_manifest(registry, name: str, reference: str, media_type: str, body: bytes) -> None:
    import urllib.request

    request = urllib.request.Request(f"http://{registry.host}/v2/{name}/manifests/{reference}", data=body,
                                     method="PUT", headers={"Content-Type": media_type})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201


def test_a_registry_index_of_more_than_256_manifests_is_refused(images, registry, run_suite):
    """The cap an OCI layout has holds for a registry too: 257 distinct image manifests (no
    platform stated, so each would be read to learn it) in one index, pushed to the real
    registry, are one sentence — refused before any of them is fetched."""
    good = json.loads(registry.raw_manifest("op:good"))
    manifest_type = "application/vnd.oci.image.manifest.v1+json"
    descriptors = []
    for i in range(257):
        body = json.dumps({"schemaVersion": 2, "mediaType": manifest_type, "config": good["config"],
                           "layers": good["layers"], "annotations": {"copy": str(i)}}).encode()
        _put_manifest(registry, "op", sha256(body), manifest_type, body)
        descriptors.append({"mediaType": manifest_type, "digest": sha256(body), "size": len(body)})
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": descriptors}).encode()
    _put_manifest(registry, "op", "many", INDEX, index)
    result, report = run_suite(f"docker://{registry.host}/op:many")
    assert_one_error(result, report, f"docker://{registry.host}/op:many: the index {sha256(index)} lists more "
                                     "than 256 image manifests")


def test_insecure_registry_option(images, registry, run_suite):
    """A registry the user declares insecure is spoken to over plain HTTP, as Docker does."""
    result, report = run_suite(f"docker://127.1:{registry.port}/op:good",
                               args=(f"--dhi-insecure-registry=127.1:{registry.port}",))
    result.assert_outcomes(passed=6)
    result, _ = run_suite(images["good"], args=("--dhi-insecure-registry=http://x/y",))
    result.stderr.fnmatch_lines(["*--dhi-insecure-registry='http://x/y': expected a registry HOST or HOST:PORT*"])


MOVER = """
import subprocess
moved = []

def pytest_runtest_logfinish(nodeid, location):
    if not moved:  # after the first check: someone pushes another image to the tag
        moved.append(nodeid)
        subprocess.run({argv!r}, check=True, capture_output=True)
"""


def test_a_tag_that_moves_during_the_run_is_noticed(images, registry, run_suite, pytester):
    ref = registry.push(f"docker-archive:{images['good_archive']}", "op:moving")
    judged = sha256(registry.raw_manifest("op:moving"))
    pytester.makepyfile(dhi_mover=MOVER.format(argv=[
        "skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"docker-archive:{images['bad_archive']}",
        ref]))
    pytester.syspathinsert()
    result, report = run_suite(ref, args=("-p", "dhi_mover"))
    now = sha256(registry.raw_manifest("op:moving"))
    assert now != judged
    image = report["images"][0]
    assert image["result"] == "pass" and image["digest"] == judged  # every check read the judged digest
    note = f"the tag moved during the run: it now resolves to {now}; every check judged {judged}"
    assert note in image["warnings"]
    result.stdout.fnmatch_lines([f"*warning  {note}*"])


def test_xdist_workers_read_the_digest_the_controller_pinned(images, logged_in, run_suite):
    result, report = run_suite(images["multi"], args=("-n", "2", "-p", "xdist"), subprocess=True)
    result.assert_outcomes(passed=11, failed=1)
    assert len({i["index_digest"] for i in report["images"]}) == 1


DISK_PROBE = """
import os

def pytest_unconfigure(config):
    with open("/proc/self/io") as io:
        counters = dict(line.split(": ") for line in io.read().splitlines())
    with open(os.environ["DHI_IO_OUT"], "w") as out:
        out.write(counters["wchar"])
"""


def test_layers_stream_without_being_written_anywhere(registry, fake_operator, tmp_path, run_suite, pytester,
                                                      monkeypatch):
    """A 24 MB incompressible layer goes through the image tier while the process writes (to
    files, pipes and sockets together) far less than that."""
    blob = ik.file("opt/data.bin", __import__("os").urandom(24 << 20))
    spec = ik.dhi_like(fake_operator, extra_layers=[[ik.directory("opt"), blob]])
    archive = ik.write_docker_archive(tmp_path / "big.tar", spec, ["acme/op:1"])
    ref = registry.push(f"docker-archive:{archive}", "op:big")
    pytester.makepyfile(dhi_io_probe=DISK_PROBE)
    monkeypatch.setenv("DHI_IO_OUT", str(tmp_path / "wchar"))
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))
    result, report = run_suite(ref, args=("-p", "dhi_io_probe"), subprocess=True)
    result.assert_outcomes(passed=6)
    written = int((tmp_path / "wchar").read_text())
    assert written < 4 << 20, f"the image tier wrote {written} bytes"


# -- daemon references pulled from the same registry ---------------------------------------------


@pytest.fixture
def daemon_refs(docker_client):
    """Names the engine pulled during a test; removed afterwards."""
    names: list[str] = []
    yield names
    remove_images(docker_client, names)


@pytest.mark.docker
def test_daemon_pull_policies_against_the_registry(images, registry, docker_client, daemon_refs, run_suite):
    name = f"{registry.host}/op:good"
    daemon_refs.append(name)
    result, report = run_suite(name, args=("--dhi-tier=image", "--dhi-pull=never"))
    assert_one_error(result, report, "not in the local Docker engine and --dhi-pull=never")
    for policy in ("missing", "always", "never"):  # pulled by the first, re-pulled, then found
        result, report = run_suite(name, args=("--dhi-tier=image", f"--dhi-pull={policy}"))
        result.assert_outcomes(passed=6)
        # `docker save` has no manifest: the registry digest is the engine's record, not verified
        # on the bytes judged, so the report's digest is the config digest (the image ID) that was
        image = report["images"][0]
        assert image["digest"] == image["verified"]["config"] == image["config_digest"]


@pytest.mark.docker
def test_daemon_pull_with_credentials_from_the_docker_config(images, auth_registry, docker_client, daemon_refs,
                                                             tmp_path, monkeypatch, run_suite):
    monkeypatch.setenv("DOCKER_CONFIG", str(rk.docker_config(tmp_path / "cfg", {auth_registry.host:
                                                                                 auth_registry.credentials})))
    name = f"{auth_registry.host}/{REPO}:1.18.3"
    daemon_refs.append(name)
    result, report = run_suite(name, args=("--dhi-tier=image", "--dhi-pull=always"))
    result.assert_outcomes(passed=6)
    assert report["images"][0]["platform"] == "linux/amd64"  # the engine's platform of the index


@pytest.mark.docker
def test_runtime_tier_runs_the_digest_the_image_tier_judged(images, auth_registry, docker_client, tmp_path,
                                                            monkeypatch, run_suite):
    monkeypatch.setenv("DOCKER_CONFIG", str(rk.docker_config(tmp_path / "cfg", {auth_registry.host:
                                                                                 auth_registry.credentials})))
    result, report = run_suite(images["multi"], args=("--dhi-tier=image,runtime", "--dhi-settle=1"))
    amd, arm = report["images"]
    runtime = {c["id"]: c["outcome"] for c in amd["checks"] if c["tier"] == "runtime"}
    assert set(runtime.values()) == {"passed", "skipped"} and runtime["help"] == "passed", amd
    assert all(c["outcome"] == "skipped" for c in arm["checks"] if c["tier"] == "runtime")
    # Pulled as HOST/REPO@<the amd64 manifest digest>, and gone after the run.
    # One listing call (images.list() inspects each image, and fails when another run on the
    # shared engine removes one meanwhile).
    leftovers = [t for i in docker_client.api.images() for t in (i.get("RepoTags") or []) + (i.get("RepoDigests") or [])
                 if t.startswith(auth_registry.host)]
    assert not leftovers
    result, report = run_suite(images["multi"], args=("--dhi-tier=runtime", "--dhi-pull=never",
                                                      "--dhi-platform=linux/amd64"))
    result.assert_outcomes(errors=1, skipped=6)  # reference-flags skips for want of its option
    (error,) = report["images"][0]["errors"]
    assert f"{auth_registry.host}/{REPO}@{amd['digest']}: not in the local Docker engine and --dhi-pull=never" in error
