#!/usr/bin/env python3
"""Benchmark: a busybox-based operator image through the runtime tier (issue 11's 6 min 37 s).

    python bench/busybox.py --repeats 3

Builds the static fake operator on the official busybox image's layout (tests/imagekit.py
`busybox_like`: /bin/busybox and a hard link per applet, ~270, running as root) as a runtime
variant (tag 1.18.3: its shells must not start, so `no-shell-runtime` fails) and a -dev variant
(1.18.3-dev: a shell is expected), loads both into the engine and times, with the defaults a
user gets (--dhi-timeout 60, --dhi-settle 15):

- the whole runtime tier (`--dhi-tier=runtime`), goal < 30 s;
- `no-shell-runtime` alone (every shell probe; the rest of the tier is the operator's own runs);
- a runaway writer (`/bin/yes`) run through the engine with a 10 s timeout: killed at the limit,
  its logs read within a bound (goal: timeout + a few seconds, not minutes).

Writes bench/results/busybox.md (copied to bench/BUSYBOX.md). Timing lives here, never in a
test assertion. The images and containers are removed at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))

import imagekit as ik  # noqa: E402
from fake_operator.build import build_fake_operator  # noqa: E402

REPO = "bench/busybox-operator"
GOAL_SECONDS = 30.0


def pytest_run(args: list[str], cwd: Path, env: dict) -> tuple[float, int, str]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=1800)
    return time.perf_counter() - start, proc.returncode, proc.stdout[-2000:]


def runaway(ref: str, timeout: float) -> tuple[float, str]:
    from pytest_dhi_cilium.runtime.engine import Engine, RunSpec

    engine = Engine()
    try:
        start = time.perf_counter()
        run = engine.run(ref, RunSpec(entrypoint=("/bin/yes",)), timeout=timeout)
        return time.perf_counter() - start, run.describe()
    finally:
        engine.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case (default 3)")
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="results directory")
    args = parser.parse_args()

    import docker

    client = docker.from_env(timeout=600)
    client.ping()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DHI_") and k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    work = Path(tempfile.mkdtemp(prefix="bench-busybox-"))
    refs = {"runtime": f"{REPO}:1.18.3", "dev": f"{REPO}:1.18.3-dev"}
    samples: dict[str, list[float]] = {}
    notes: dict[str, str] = {}
    try:
        operator = build_fake_operator(out / "build")
        for variant, ref in refs.items():  # two images (a label apart): one tag each
            spec = ik.busybox_like(operator, labels={"bench": variant})
            archive = ik.write_docker_archive(work / f"busybox-{variant}.tar", spec, [ref])
            with open(archive, "rb") as data:
                client.images.load(data)
        links = len(ik.busybox_applets())
        cases = [
            ("runtime tier, runtime variant (no-shell-runtime fails as it must)", [f"--dhi-image={refs['runtime']}",
                                                                                    "--dhi-tier=runtime"]),
            ("runtime tier, -dev variant (passes)", [f"--dhi-image={refs['dev']}", "--dhi-tier=runtime"]),
            ("no-shell-runtime alone, runtime variant", [f"--dhi-image={refs['runtime']}", "--dhi-tier=runtime",
                                                         "-k", "no-shell-runtime"]),
            ("image + runtime tiers, runtime variant (the issue's command)", [f"--dhi-image={refs['runtime']}"]),
        ]
        for repeat in range(args.repeats):
            for label, argv in cases:
                wall, rc, tail = pytest_run(argv, work, env)
                samples.setdefault(label, []).append(wall)
                notes[label] = tail.strip().splitlines()[-1] if tail.strip() else f"exit {rc}"
                print(f"[{repeat + 1}/{args.repeats}] {label}: {wall:.1f} s ({notes[label]})", flush=True)
            wall, described = runaway(refs["runtime"], 10.0)
            samples.setdefault("runaway `/bin/yes`, --dhi-timeout 10", []).append(wall)
            notes["runaway `/bin/yes`, --dhi-timeout 10"] = described
            print(f"[{repeat + 1}/{args.repeats}] runaway: {wall:.1f} s ({described})", flush=True)
        info = docker_info(client)
        lines = [
            "# Benchmark: a busybox-based image through the runtime tier",
            "",
            f"Command: `python bench/busybox.py --repeats {args.repeats}` — {dt.datetime.utcnow():%Y-%m-%d %H:%M} UTC, "
            f"{os.cpu_count()} cores, {platform.platform()}, {info}.",
            "",
            f"Image: the static fake operator on the official busybox layout — /bin/busybox (Debian's "
            f"busybox-static) and {links - 1} hard links, one per applet — as root. Defaults: "
            "`--dhi-timeout` 60, `--dhi-settle` 15 (operator-starts watches the boot that long).",
            "",
            "| case | wall min (s) | wall median (s) | wall max (s) | last run |",
            "|---|---:|---:|---:|---|",
        ]
        for label, walls in samples.items():
            lines.append(f"| {label} | {min(walls):.1f} | {statistics.median(walls):.1f} | {max(walls):.1f} | "
                         f"{notes[label].replace('|', '/')} |")
        worst = max(max(samples[label]) for label, _ in cases[:2])
        lines += ["", f"Goal: the whole runtime tier of a busybox image under {GOAL_SECONDS:.0f} s — "
                  f"{'met' if worst < GOAL_SECONDS else 'NOT met'} (slowest run {worst:.1f} s; issue 11 "
                  "measured 6 min 37 s before: one container per applet link, /bin/init and friends "
                  "each running into the timeout)."]
        report = "\n".join(lines) + "\n"
        (out / "busybox.md").write_text(report)
        if out == (BENCH / "results").resolve():
            shutil.copy(out / "busybox.md", BENCH / "BUSYBOX.md")
        print("\n" + report)
        return 0
    finally:
        for ref in refs.values():
            for container in client.containers.list(all=True, filters={"ancestor": ref}):
                container.remove(force=True)
            try:
                client.images.remove(ref, force=True)
            except docker.errors.APIError:
                pass
        shutil.rmtree(work, ignore_errors=True)
        client.close()


def docker_info(client) -> str:
    version = client.version()
    return f"Engine {version.get('Version', '?')}"


if __name__ == "__main__":
    sys.exit(main())
