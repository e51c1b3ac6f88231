"""Runtime-tier verdicts over observed container runs. Pure: the runs happen in runtime/."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from .. import cilium
from ..runtime.boot import BootRun
from ..runtime.engine import RunResult
from ..settings import OPERATOR_NAME, Expectations, Profile
from ..verdict import Verdict, failed, passed
from .image import MULTICALL_PREFIXES, SHELLS
from .users import RuntimeUser
from .versions import printed_version, version_from_tag, version_matches

SHELL_MARKER = "dhi-shell-42"  # printed by `sh -c 'echo dhi-shell-$((6*7))'`: only a shell computes it
SHELL_SCRIPT = "echo dhi-shell-$((6*7))"
RUNTIME_SHELL_CANDIDATES = ("sh", "bash", "/bin/sh", "/bin/bash", "/busybox/sh", "ash")
_FLAG = re.compile(r"^\s+(?:-\w,\s+)?(--[A-Za-z0-9][\w-]*)", re.M)
_IPAM_DEFAULT = re.compile(r"--ipam\b.*\(default \"cluster-pool\"\)")


def help_flags(text: str) -> set[str]:
    return set(_FLAG.findall(text))


def _did_not_finish(check: str, run: RunResult, expectation: str) -> Verdict | None:
    if run.start_error:
        return failed(check, run.describe(), evidence=run.head(), expectation=expectation)
    if run.timed_out:
        return failed(check, f"{run.describe()} (timeout)", evidence=run.head(), expectation=expectation)
    return None


def help_output(check: str, run: RunResult, profile: Profile, how: str) -> Verdict:
    """``help`` and ``restricted-run``: --help exits 0 with cobra usage on stdout, every stable
    flag listed, and the ipam default that only the binary's real name keeps."""
    expectation = (f"{how}: exit 0, `Usage:` and `{OPERATOR_NAME}` on stdout, flags "
                   + ", ".join(profile.help_flags))
    early = _did_not_finish(check, run, expectation)
    if early:
        return early
    evidence = [run.describe(), *run.head()]
    if run.exit_code != 0:
        return failed(check, f"--help exited {run.exit_code}", evidence=evidence, expectation=expectation)
    if "Usage:" not in run.stdout:
        where = " (it went to stderr)" if "Usage:" in run.stderr else ""
        return failed(check, f"no `Usage:` on stdout{where}", evidence=evidence, expectation=expectation)
    if OPERATOR_NAME not in run.stdout:
        return failed(check, f"stdout never names {OPERATOR_NAME}: the binary runs under another name",
                      evidence=evidence, expectation=expectation)
    flags = help_flags(run.stdout)
    missing = [f for f in profile.help_flags if f not in flags]
    if missing:
        return failed(check, f"--help lacks {', '.join(missing)}", evidence=evidence + [
            f"listed {len(flags)} flags: {' '.join(sorted(flags))[:600]}"], expectation=expectation)
    if "--ipam" in flags and not _IPAM_DEFAULT.search(run.stdout):
        return failed(check, '--ipam has no (default "cluster-pool"): the operator picks it from its '
                      f"own name, so the binary is not running as {OPERATOR_NAME}",
                      evidence=evidence, expectation=expectation)
    return passed(check, f"--help exits 0, lists {len(flags)} flags including all "
                  f"{len(profile.help_flags)} stable ones", evidence=[run.describe()],
                  expectation=expectation)


def version(run: RunResult, tags: list[str]) -> Verdict:
    expectation = "`--version` exits 0 and prints `Cilium-Operator <version> ...` matching the tag's version"
    early = _did_not_finish("version", run, expectation)
    if early:
        return early
    evidence = [run.describe(), *run.head(3)]
    if run.exit_code != 0:
        return failed("version", f"--version exited {run.exit_code}", evidence=evidence, expectation=expectation)
    printed = printed_version(run.stdout)
    if printed is None:
        return failed("version", "no `Cilium-Operator <version>` line on stdout", evidence=evidence,
                      expectation=expectation)
    tagged = [(t, version_from_tag(t)) for t in tags if version_from_tag(t)]
    if not tagged:
        return passed("version", f"prints Cilium-Operator {printed}", evidence=evidence, expectation=expectation,
                      notes=[f"no tag carries a version ({', '.join(tags) or 'untagged'}): nothing to compare"])
    wrong = [f"tag {t!r} says {v}" for t, v in tagged if not version_matches(v, printed)]
    if wrong:
        return failed("version", f"prints {printed} but {'; '.join(wrong)}", evidence=evidence,
                      expectation=expectation)
    return passed("version", f"prints {printed}, as tag {tagged[0][0]!r} says", evidence=evidence,
                  expectation=expectation)


@dataclass(frozen=True)
class ShellProbe:
    """One container that tries to start a shell: ``entrypoint + args`` prints the marker
    only if a shell runs. ``label`` names it in the evidence (``/bin/busybox sh``)."""

    label: str
    entrypoint: tuple[str, ...]
    args: tuple[str, ...]

    @property
    def path(self) -> str:
        """The file it starts (``/bin/busybox``; a bare name such as ``sh`` goes through PATH)."""
        return self.entrypoint[0]


def shell_probes(providers: list) -> list[ShellProbe]:
    """The fixed candidates (which prove absence on a hardened image: the OCI runtime refuses
    them), then each shell provider the image tier found, once per name that selects a shell:
    its shell-named paths (``/bin/sh -c``, ``/bin/ash -c``: a multi-call binary picks the
    applet from argv[0]) and its multi-call names (``/bin/busybox sh -c``). Its other links
    (``/bin/ls``, ``/bin/yes``, ``/sbin/init``, ...) run other programs and are never started."""
    probes = {c: ShellProbe(c, (c,), ("-c", SHELL_SCRIPT)) for c in RUNTIME_SHELL_CANDIDATES}
    for provider in providers:
        by_name: dict[str, str] = {}
        for path in [provider.path] + [r.path for r in provider.links()]:
            by_name.setdefault(posixpath.basename(path), path)
        for name, path in sorted(by_name.items(), key=lambda item: item[1]):
            if name in SHELLS:
                probes.setdefault(path, ShellProbe(path, (path,), ("-c", SHELL_SCRIPT)))
            elif name.startswith(MULTICALL_PREFIXES):
                label = f"{path} sh"
                probes.setdefault(label, ShellProbe(label, (path,), ("sh", "-c", SHELL_SCRIPT)))
    return list(probes.values())


def _unprobed(providers: list, probes: list[ShellProbe]) -> list[str]:
    """Say, per provider, which of its paths were deliberately not started."""
    notes = []
    for p in providers:
        paths = [p.path] + [r.path for r in p.links()]
        tried = [probe for probe in probes if probe.path in paths]
        other = [path for path in paths if path not in {probe.path for probe in tried}]
        if other:
            notes.append(f"shell provider {p.path}: probed as {', '.join(t.label for t in tried)}; its {len(other)} other "
                         f"path(s) ({', '.join(other[:3])}{', ...' if len(other) > 3 else ''}) run other "
                         "programs and were not started")
    return notes


def no_shell_runtime(probe_runs: list[tuple[ShellProbe, RunResult]], exp: Expectations,
                     providers: list = ()) -> Verdict:
    """Each probe ran `-c 'echo dhi-shell-$((6*7))'` as a container's entrypoint. Only a
    shell prints the marker; the OCI runtime's "no such file" / 127 proves absence."""
    runs = [(probe.label, run) for probe, run in probe_runs]
    started = [(c, r) for c, r in runs if SHELL_MARKER in r.stdout]
    refused = [(c, r) for c, r in runs if r.not_executable and SHELL_MARKER not in r.stdout]
    unclear = [(c, r) for c, r in runs if (c, r) not in started and (c, r) not in refused]
    lines = ([f"{c}: STARTED A SHELL ({r.describe()}, printed {SHELL_MARKER})" for c, r in started]
             + [f"{c}: something ran ({r.describe()}): {' | '.join(r.head(2))}" for c, r in unclear]
             + [f"{c}: refused: {r.start_error or f'exit {r.exit_code}'}" for c, r in refused])
    notes = _unprobed(providers, [probe for probe, _ in probe_runs])
    if exp.dev:
        expectation = f"dev variant ({exp.variant_reason}): a shell starts"
        if started:
            return passed("no-shell-runtime", f"dev variant: {started[0][0]} starts a shell as expected",
                          evidence=lines, expectation=expectation, notes=notes)
        return failed("no-shell-runtime", "dev variant but no candidate started a shell",
                      evidence=lines, expectation=expectation, notes=notes)
    expectation = f"none of {len(runs)} candidates starts: " + ", ".join(c for c, _ in runs)
    if started:
        return failed("no-shell-runtime", f"a shell started: {', '.join(c for c, _ in started)}",
                      evidence=lines, expectation=expectation, notes=notes)
    if unclear:
        return failed("no-shell-runtime", f"a process started as {', '.join(c for c, _ in unclear)}; "
                      "not proven to be a non-shell", evidence=lines, expectation=expectation, notes=notes)
    return passed("no-shell-runtime", f"all {len(runs)} shell candidates refused by the OCI runtime",
                  evidence=lines, expectation=expectation, notes=notes)


def runtime_user(boot: BootRun, user: RuntimeUser, exp: Expectations) -> Verdict:
    """The uid/gid `docker top` showed for the operator process while it waited for the API
    server during the `operator-starts` boot (so it is the operator, past its start hooks)."""
    run = boot.run
    want = user.label() if user.resolved else "unresolvable"
    expectation = (f"the process's UID/GID, seen with docker top while the operator waits for the API "
                   f"server, equal the image's resolved user {want}" + ("" if exp.dev else ", and the UID is not 0"))
    observed = {(s.get("uid"), s.get("gid")) for s in boot.samples}
    if not observed:
        why = ("it never reached its API-server wait" if boot.api_wait_at is None
               else "it exited right after it began waiting for the API server")
        return failed("runtime-user", f"the operator process was not observed running: {why} "
                      "(operator-starts says why)", evidence=[run.describe(), *_reasons(boot)[:4]],
                      expectation=expectation)
    evidence = [run.describe(), f"{len(boot.samples)} observation(s) with docker top while it waited for "
                "the API server: " + ", ".join(f"uid={u} gid={g}" for u, g in sorted(observed))]
    if len(observed) > 1:
        return failed("runtime-user", f"the process changed identity while running: {sorted(observed)}",
                      evidence=evidence, expectation=expectation)
    uid, gid = (int(v) for v in next(iter(observed)))
    if uid == 0 and not exp.dev:
        return failed("runtime-user", "the operator process runs as UID 0 (root)", evidence=evidence,
                      expectation=expectation)
    if not user.resolved or (uid, gid) != (user.uid, user.gid):
        return failed("runtime-user", f"runs as {uid}:{gid}, the image resolves to {want}",
                      evidence=evidence, expectation=expectation)
    return passed("runtime-user", f"observed {uid}:{gid}, as resolved from the image", evidence=evidence,
                  expectation=expectation)


def reference_flags(ours: RunResult, theirs: RunResult, our_version: RunResult,
                    their_version: RunResult, our_entry: str, their_entry: str) -> Verdict:
    expectation = "every flag of the upstream operator's --help is still offered"
    for side, run in (("image under test", ours), ("reference image", theirs)):
        if run.start_error or run.timed_out or run.exit_code != 0:
            return failed("reference-flags", f"{side}: {run.describe()}", evidence=run.head(),
                          expectation=expectation)
    mine, upstream = help_flags(ours.stdout), help_flags(theirs.stdout)
    removed, added = sorted(upstream - mine), sorted(mine - upstream)
    notes = [f"versions: ours {printed_version(our_version.stdout) or '?'}, "
             f"reference {printed_version(their_version.stdout) or '?'}"]
    if our_entry != their_entry:
        notes.append(f"entrypoint differs: ours {our_entry}, reference {their_entry}")
    evidence = [f"ours: {len(mine)} flags; reference: {len(upstream)} flags"]
    evidence += [f"removed: {f}" for f in removed] + [f"added: {f}" for f in added]
    if removed:
        return failed("reference-flags", f"{len(removed)} upstream flag(s) removed: {', '.join(removed)}",
                      evidence=evidence, expectation=expectation, notes=notes)
    return passed("reference-flags", f"all {len(upstream)} upstream flags present"
                  + (f", {len(added)} added" if added else ""), evidence=evidence,
                  expectation=expectation, notes=notes)


def _reasons(boot: BootRun) -> list[str]:
    """The operator's own error and fatal lines, else the last lines it logged."""
    lines = cilium.reason_lines(boot.logs)
    if lines:
        return [f"log: {line}" for line in lines[:10]]
    tail = [line for line in boot.logs.splitlines() if line.strip()][-8:]
    return [f"log: {line}" for line in tail] or ["(it logged nothing)"]


def _stopped(run: RunResult) -> str:
    if run.exit_code == 143:
        return "stopped by SIGTERM (exit 143)"
    if run.exit_code == 137:
        return "ignored SIGTERM: killed (exit 137)"
    return f"stopped: exit {run.exit_code}"


def operator_starts(boot: BootRun) -> Verdict:
    """Booted like the chart runs it, pointed at an API server nobody answers on: it must get
    through its start hooks to the API-server wait (gops, where it started, writing its port
    file) and keep waiting, without a start failure, to the end of the settle window."""
    run, settle = boot.run, boot.settle
    target = boot.api_server or "the API server its operator args name"
    expectation = (f"within {settle:g}s it logs `{cilium.API_WAIT}` (its start hooks before the k8s client, "
                   f"gops included, completed), gops, when it starts, writes its port file, and it is "
                   f"still waiting for {target} after {settle:g}s with no start failure")
    if run.start_error:
        return failed("operator-starts", run.describe(), expectation=expectation)
    if boot.api_wait_at is None:
        if not run.running_at_end:
            return failed("operator-starts", f"the operator exited {run.exit_code} after {run.seconds:.1f}s, before "
                          "it waited for the API server: it did not get through its start",
                          evidence=[run.describe(), *_reasons(boot)], expectation=expectation)
        return failed("operator-starts", f"still running after {settle:g}s but it never logged `{cilium.API_WAIT}`: "
                      "nothing shows that its start hooks completed",
                      evidence=[run.describe(), *_reasons(boot)], expectation=expectation)
    waited = f"reached its API-server wait {boot.api_wait_at:.1f}s after start"
    attempts = boot.logs.count(cilium.API_WAIT)
    evidence = [run.describe(), f"{waited}; {attempts} attempt(s) to reach {target}"]
    gops_started = cilium.GOPS_STARTED in boot.logs
    if gops_started:
        where = f"{boot.gops_dir} ({boot.gops_how})"
        if not boot.gops_files:
            return failed("operator-starts", f"it logged `{cilium.GOPS_STARTED}` but gops wrote no port file "
                          f"(expected in {where})", evidence=evidence + _reasons(boot), expectation=expectation)
        path, data = boot.gops_files[0]
        evidence.append(f"gops wrote its port file {path} (port {data.decode(errors='replace').strip()}); "
                        f"expected in {where}")
    else:
        evidence.append(f"no `{cilium.GOPS_STARTED}`: gops is disabled (e.g. --enable-gops=false, 1.18+)")
    if not run.running_at_end:
        return failed("operator-starts", f"the operator exited {run.exit_code} after {run.seconds:.1f}s, within "
                      f"the {settle:g}s settle window ({waited})", evidence=evidence + _reasons(boot),
                      expectation=expectation)
    failures = cilium.start_failures(boot.logs)
    if failures:
        return failed("operator-starts", "the operator logged a start failure while running",
                      evidence=evidence + [f"log: {line}" for line in failures[:10]], expectation=expectation)
    gops = " (gops wrote its port file)" if gops_started else " (gops disabled)"
    return passed("operator-starts", f"its start hooks ran up to the API-server wait{gops} and it kept waiting "
                  f"for {target} for the whole {settle:g}s window; {_stopped(run)}",
                  evidence=evidence, expectation=expectation)
