"""The real ``cilium-operator-generic`` for the tests that compare the fake with it
(test_operator_contract.py) and wrap it in real image layouts (test_real_layouts.py).

Nothing real is committed or built here; a run names one:

    DHI_TEST_OPERATOR=/path/to/cilium-operator-generic        a real binary (static, linux)
    DHI_TEST_OPERATOR_IMAGE=quay.io/cilium/operator-generic:v1.17.5   a real image: taken from
        the engine (pulled when missing), its binary copied out through the archive API

Without either, those tests skip saying so (they must: CI cannot obtain a real operator)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

HOW = ("needs a real operator: DHI_TEST_OPERATOR=/path/to/cilium-operator-generic (a real binary) or "
       "DHI_TEST_OPERATOR_IMAGE=quay.io/cilium/operator-generic:v1.17.5 (a real image), e.g. "
       "`DHI_TEST_OPERATOR=/path/to/cilium-operator-generic pytest tests/test_operator_contract.py "
       "tests/test_real_layouts.py`")
# Where upstream, DHI and Chainguard images keep the binary (REFERENCE.md).
IMAGE_PATHS = ("/usr/bin/cilium-operator-generic", "/usr/local/bin/cilium-operator-generic")


@dataclass(frozen=True)
class Operator:
    name: str  # test id: fake, fake-1.17, real
    binary: Path
    version: str  # what --version prints, e.g. 1.17.5
    origin: str  # for messages: a path or an image reference

    @property
    def minor(self) -> tuple[int, int]:
        major, minor = self.version.split(".")[:2]
        return int(major), int(minor)


def real_binary(docker_client, workdir: Path) -> tuple[Path, str]:
    """``(binary, origin)`` named by the environment, or skip saying how to name one."""
    path = os.environ.get("DHI_TEST_OPERATOR")
    if path:
        binary = Path(path)
        if not binary.is_file():
            pytest.fail(f"DHI_TEST_OPERATOR={path}: no such file", pytrace=False)
        return binary, path
    ref = os.environ.get("DHI_TEST_OPERATOR_IMAGE")
    if not ref:
        pytest.skip(HOW)
    return _binary_from_image(docker_client, ref, workdir), ref


def _binary_from_image(docker_client, ref: str, workdir: Path) -> Path:
    import docker.errors

    from pytest_dhi_cilium.runtime.engine import read_container_file

    try:
        image = docker_client.images.get(ref)
    except docker.errors.ImageNotFound:
        image = docker_client.images.pull(ref)
    entry = (image.attrs.get("Config") or {}).get("Entrypoint") or []
    candidates = [p for p in entry[:1] if p.startswith("/")] + list(IMAGE_PATHS)
    container = docker_client.containers.create(image.id, command=["--version"])
    try:
        for path in candidates:
            data = read_container_file(container, path)
            if data is not None:
                target = workdir / "cilium-operator-generic"
                target.write_bytes(data)
                target.chmod(0o755)
                return target
    finally:
        container.remove(force=True)
    pytest.fail(f"DHI_TEST_OPERATOR_IMAGE={ref}: no operator binary at {', '.join(candidates)}", pytrace=False)


def version_of(binary: Path) -> str:
    """What ``binary --version`` prints as its version (checks/versions.py reads it the same
    way from an image under test)."""
    import subprocess

    from pytest_dhi_cilium.checks.versions import printed_version

    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60).stdout
    version = printed_version(out)
    if version is None:
        pytest.fail(f"the real operator's --version printed no `Cilium-Operator <version>`: {out[:200]!r}",
                    pytrace=False)
    return version


def fake_defines(operator: Operator) -> dict:
    """Build the fake in the style of a real operator: 1.17 (logrus, exit 1) or 1.18+ (slog, 255)."""
    defines = {"FAKE_VERSION": operator.version}
    if operator.minor < (1, 18):
        defines["FAKE_V117"] = None
    return defines
