"""`no-package-manager` on a real Debian rootfs (`debootstrap --variant=minbase`), not on a
hand-made layout: with dpkg's and apt's programs removed, what stays behind — the cron job
/etc/cron.daily/dpkg, reportbug's /usr/share/bug/dpkg, apt's helpers in /usr/lib/apt — is not
a package manager the image could run; and each package manager left in place is still found.

The rootfs is built once per session (it needs root and the distribution mirror apt uses);
under CI=true a missing debootstrap fails instead of skipping."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

import imagekit as ik
from conftest import IN_CI, check

COMMAND_DIRS = ("/bin", "/sbin", "/usr/bin", "/usr/sbin")
PACKAGES = ("dpkg", "apt")  # the packages that ship Debian's package managers


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: .ci/run installs debootstrap and runs as root)", pytrace=False)
    pytest.skip(reason)


def host_mirror() -> tuple[str, str]:
    """(mirror URI, suite) of this machine's own distribution, as apt is configured."""
    release = Path("/etc/os-release").read_text() if os.path.exists("/etc/os-release") else ""
    codename = re.search(r"^VERSION_CODENAME=(\S+)", release, re.M)
    suite = codename.group(1) if codename else "bookworm"
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):  # deb822
        text = Path(path).read_text()
        uris = re.search(r"^URIs:\s*(\S+)", text, re.M)
        if uris and re.search(rf"^Suites:.*\b{re.escape(suite)}\b", text, re.M):
            return uris.group(1), suite
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        if os.path.exists(path):
            for line in Path(path).read_text().splitlines():
                fields = line.split()
                if len(fields) >= 3 and fields[0] == "deb" and fields[2] == suite:
                    return fields[1], suite
    return "http://deb.debian.org/debian", suite


@pytest.fixture(scope="session")
def minbase(tmp_path_factory) -> tuple[Path, Path]:
    """(rootfs directory, the rootfs as one uncompressed layer tar)."""
    debootstrap = shutil.which("debootstrap") or shutil.which("/usr/sbin/debootstrap")
    if debootstrap is None:
        _unavailable("debootstrap is not installed (apt-get install debootstrap)")
    if os.geteuid() != 0:
        _unavailable("debootstrap needs root")
    base = tmp_path_factory.mktemp("minbase")
    root, cache = base / "rootfs", base / "debs"
    cache.mkdir()
    mirror, suite = host_mirror()
    try:
        subprocess.run([debootstrap, "--variant=minbase", f"--cache-dir={cache}", suite, str(root), mirror],
                       check=True, capture_output=True, text=True, timeout=1200)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"debootstrap --variant=minbase {suite} {mirror} failed: {exc.stdout[-1500:]}{exc.stderr[-1500:]}",
                    pytrace=False)
    shutil.rmtree(cache)
    layer = base / "rootfs.tar"
    # What every Debian image build drops (apt-get clean, rm -rf /var/lib/apt/lists/*); the
    # rest is the rootfs as debootstrap left it, device nodes and owners included.
    skip = re.compile(r"^\./var/(lib/apt/lists|cache/apt/archives)/.")
    with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(root, arcname=".", filter=lambda info: None if skip.match(info.name) else info)
    return root, layer


def package_executables(root: Path) -> list[str]:
    """The files dpkg and apt install in the command directories, from their own file lists."""
    found = []
    for package in PACKAGES:
        for line in (root / f"var/lib/dpkg/info/{package}.list").read_text().splitlines():
            if os.path.dirname(line) in COMMAND_DIRS and os.path.isfile(root / line.lstrip("/")):
                found.append(line)
    return sorted(found)


def remove(paths: list[str]) -> list[ik.Member]:
    """A layer that deletes these files, as `RUN rm ...` in a Dockerfile would."""
    return [ik.whiteout(p) for p in paths]


def test_debian_minbase_without_package_managers_passes_and_each_one_left_is_found(minbase, run_suite, tmp_path):
    root, layer = minbase
    executables = package_executables(root)
    managers = [p for p in executables if os.path.basename(p) in ("dpkg", "apt", "apt-get")]
    assert managers == ["/usr/bin/apt", "/usr/bin/apt-get", "/usr/bin/dpkg"], executables
    # the premise: what removing the programs leaves behind is real, named like dpkg, executable
    for leftover in ("etc/cron.daily/dpkg", "usr/share/bug/dpkg"):
        assert os.access(root / leftover, os.X_OK), leftover
    images = [(ik.ImageSpec([layer, remove(executables)]), ["debian/hardened:minbase"])]
    for kept in managers:
        name = os.path.basename(kept)
        images.append((ik.ImageSpec([layer, remove([p for p in executables if p != kept])]),
                       [f"debian/keeps-{name}:minbase"]))
    archive = ik.write_docker_archive_images(tmp_path / "minbase.tar", images)
    refs = [f"docker-archive:{archive}:{tags[0]}" for _, tags in images]
    _, report = run_suite(*refs, args=("-k", "no-package-manager", "--dhi-variant=runtime"))

    hardened = check(report, "no-package-manager", 0)
    assert hardened["outcome"] == "passed", hardened
    assert hardened["message"] == "no package manager in the image"
    not_counted = {item["path"] for item in hardened["details"]["not_counted"]}
    assert {"/etc/cron.daily/dpkg", "/usr/share/bug/dpkg"} <= not_counted, not_counted
    assert "/usr/bin" in hardened["details"]["command_dirs"]  # /bin -> usr/bin on merged /usr

    for index, kept in enumerate(managers, start=1):
        verdict = check(report, "no-package-manager", index)
        assert verdict["outcome"] == "failed", (kept, verdict)
        assert verdict["message"] == f"1 package manager found: {kept}", (kept, verdict["message"])
        assert verdict["evidence"][0].startswith(f"{kept} (file 0755 0:0, layer 1 of 2, sha256:")
