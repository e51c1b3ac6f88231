#!/usr/bin/env python3
"""Demo: build two sample operator images locally — one that conforms, one that does not —
and certify both with pytest-dhi-cilium. Nothing is pulled: the operator is the static fake
from tests/fake_operator, compiled with gcc -static.

    python scripts/demo.py            # image tier daemonless; + runtime tier when Docker answers
    python scripts/demo.py --no-docker

Exits 0 when the verdicts are the expected ones (the conforming image passes, the other
fails with evidence), 1 otherwise. Reports land in demo-out/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import imagekit as ik  # noqa: E402
from fake_operator.build import build_fake_operator  # noqa: E402

OUT = ROOT / "demo-out"
GOOD, BAD = "demo/dhi-cilium-operator-generic:1.18.3", "demo/unhardened-operator:1.18.3"


def docker_reachable() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-docker", action="store_true", help="image tier only, daemonless")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    operator = build_fake_operator(OUT / "build")
    good = ik.dhi_like(operator)
    # Not hardened: a busybox shell and apt-get, and it runs as root.
    bad = ik.dhi_like(operator, tag_user="", env=["PATH=/usr/local/bin:/usr/bin:/bin"],
                      extra_layers=[[ik.directory("bin"), ik.host_file("bin/busybox", ik.BUSYBOX),
                                     ik.symlink("bin/sh", "busybox"), ik.directory("usr/bin"),
                                     ik.exe("usr/bin/apt-get")]])
    refs = [f"docker-archive:{ik.write_docker_archive(OUT / 'good.tar', good, [GOOD])}",
            f"docker-archive:{ik.write_docker_archive(OUT / 'bad.tar', bad, [BAD])}"]
    tiers = "image"
    if not args.no_docker and docker_reachable():
        tiers = "image,runtime"
    else:
        print("demo: no Docker engine answers: image tier only (daemonless)")
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *[f"--dhi-image={r}" for r in refs],
           f"--dhi-tier={tiers}", "--dhi-settle=3", f"--dhi-report={OUT / 'report.json'}",
           f"--dhi-report-md={OUT / 'report.md'}", "-rfEs"]
    print("demo:", " ".join(cmd), flush=True)
    code = subprocess.call(cmd, cwd=OUT)
    report = json.loads((OUT / "report.json").read_text())
    results = {image["ref"]: image["result"] for image in report["images"]}
    expected = {refs[0]: "pass", refs[1]: "fail"}
    print(f"\ndemo: pytest exited {code}; verdicts {results}; Markdown report: {OUT / 'report.md'}")
    if results == expected and code == 1:
        print("demo: as expected — the conforming image passes, the other fails with evidence")
        return 0
    print("demo: UNEXPECTED verdicts", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
