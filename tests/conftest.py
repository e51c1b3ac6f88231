"""Shared test fixtures: a real Docker engine (never mocked), the static fake operator, and
the images the tests certify, all built locally."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # imagekit, fake_operator.build

import imagekit  # noqa: E402
import registrykit  # noqa: E402
from fake_operator.build import build_fake_operator  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() == "true"
# Every image the tests load is tagged under this name, then removed. Unique per session, so two
# test runs sharing one engine (two checkouts, xdist workers) never remove each other's images.
TEST_REPO = f"dhi-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def docker_client():
    """The real engine. Unreachable: skip locally, but FAIL under CI=true (a missing engine
    must never turn the Docker tests into silent skips)."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        message = (f"Docker engine not reachable ({exc.__class__.__name__}: {str(exc)[:160]}); "
                   "start one with scripts/ensure-docker.sh")
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    yield client
    client.close()


def _registry(credentials=None, schema1=False):
    """A real registry on loopback for the session; its process and storage go at the end. No
    tools or no start: skip locally, FAIL under CI=true."""
    missing = registrykit.missing_tools()
    try:
        if missing:
            raise RuntimeError(f"apt-get install {' '.join(missing)}")
        registry = registrykit.Registry(credentials, schema1).start()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        message = f"no local registry for the registry tests: {exc}"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def registry():
    """Anonymous pulls and pushes (and legacy schema 1 accepted, to be refused by the plugin)."""
    yield from _registry(schema1=True)


@pytest.fixture(scope="session")
def auth_registry():
    """htpasswd (bcrypt) authentication: 401 without credentials."""
    yield from _registry(credentials=("dhi-user", uuid.uuid4().hex[:12]))


@pytest.fixture
def our_containers(docker_client):
    """Containers the runtime engine created (its label) from one image, existing right now.
    Filtered by image so that another run on the same engine cannot disturb the test; sparse
    (the listing itself, no inspect per container), so one removed meanwhile is no error."""
    from pytest_dhi_cilium.runtime.engine import LABEL

    def listing(image):
        return docker_client.containers.list(all=True, sparse=True, filters={"label": LABEL, "ancestor": image})
    return listing


@pytest.fixture(scope="session")
def loaded_images(docker_client):
    """Load a spec into the engine (`docker load` of a docker-archive written in Python);
    every image loaded this way is removed at the end of the session."""
    loaded: list[str] = []

    def load(spec: imagekit.ImageSpec, tag: str, tmp: Path) -> str:
        ref = f"{TEST_REPO}/{tag}"
        archive = imagekit.write_docker_archive(tmp / f"{tag.replace(':', '_').replace('/', '_')}.tar", spec, [ref])
        with open(archive, "rb") as data:
            docker_client.images.load(data.read())
        loaded.append(ref)
        return ref

    yield load
    remove_images(docker_client, loaded)


def remove_images(client, names: list[str]) -> None:
    """Remove the images this test run put into the engine (already gone is fine)."""
    for name in names:
        try:
            client.images.remove(name, force=True)
        except Exception:
            pass


@pytest.fixture(scope="session")
def fake_operator(tmp_path_factory) -> Path:
    """The well-behaved static fake `cilium-operator-generic`."""
    return build_fake_operator(tmp_path_factory.getbasetemp() / "fake-operator")


@pytest.fixture(scope="session")
def fake_operator_variant(tmp_path_factory):
    def build(**defines) -> Path:
        return build_fake_operator(tmp_path_factory.getbasetemp() / "fake-operator", defines=defines)
    return build


@pytest.fixture(scope="session")
def real_operator(docker_client, tmp_path_factory):
    """The real operator named by DHI_TEST_OPERATOR / DHI_TEST_OPERATOR_IMAGE, else a skip
    saying how to name one (tests/real_operator.py)."""
    import real_operator as ro

    binary, origin = ro.real_binary(docker_client, tmp_path_factory.mktemp("real-operator"))
    return ro.Operator("real", binary, ro.version_of(binary), origin)


@pytest.fixture
def archive(tmp_path):
    """Write a spec as a docker-archive in the test's directory; returns its --dhi-image."""
    def write(spec: imagekit.ImageSpec, name: str = "img",
              tags=("example/dhi-cilium-operator-generic:1.18.3",)) -> str:
        return f"docker-archive:{imagekit.write_docker_archive(tmp_path / f'{name}.tar', spec, list(tags))}"
    return write


@pytest.fixture
def run_suite(pytester):
    """Run the plugin on images in a clean directory; returns (result, report JSON)."""

    def run(*images: str, args: tuple[str, ...] = (), subprocess: bool = False):
        report = pytester.path / "report.json"
        argv = [f"--dhi-image={i}" for i in images] + [f"--dhi-report={report}", "-p", "no:cacheprovider", *args]
        result = pytester.runpytest_subprocess(*argv) if subprocess else pytester.runpytest(*argv)
        data = json.loads(report.read_text()) if report.exists() else None
        return result, data

    return run


def outcomes(report: dict, image_index: int = 0) -> dict[str, str]:
    return {c["id"]: c["outcome"] for c in report["images"][image_index]["checks"]}


def check(report: dict, check_id: str, image_index: int = 0) -> dict:
    return next(c for c in report["images"][image_index]["checks"] if c["id"] == check_id)


def assert_one_error(result, report, sentence: str, not_run: int = 6, skipped: int = 5) -> str:
    """An image that cannot be read: one error, one sentence, once — the checks it stops are
    skipped as not run (never passing), in the terminal and in the report."""
    result.assert_outcomes(errors=1, skipped=skipped)
    assert result.ret == 1
    out = result.stdout.str()
    assert "Traceback" not in out and "During handling" not in out
    assert out.count("ERROR at setup") == 1
    image = report["images"][0]
    assert len(image["errors"]) == 1 and sentence in image["errors"][0], image["errors"]
    assert image["checks"] == [] and image["result"] == "fail"
    assert len(image["not_run"]) == not_run
    return image["errors"][0]
