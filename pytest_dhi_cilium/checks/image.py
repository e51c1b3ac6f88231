"""Image-tier checks: pure functions of the image model and the expectations. No I/O here."""

from __future__ import annotations

import posixpath

from ..image.layers import Resolution
from ..image.model import Image
from ..settings import OPERATOR_NAME, Expectations
from ..verdict import Verdict, failed, passed
from .users import RuntimeUser, mode_reason, permits, resolve_user

SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish",
                    "rbash", "pdksh", "yash", "hush"})
MULTICALL_PREFIXES = ("busybox", "toybox")  # busybox runs busybox_main for any busybox* argv[0]
PACKAGE_MANAGERS = frozenset({"apt", "apt-get", "aptitude", "dpkg", "apk", "rpm", "yum", "dnf",
                              "microdnf", "zypper", "tdnf", "pacman"})
USUAL_BIN_DIRS = ("/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin",
                  "/busybox")


def image_user(image: Image) -> RuntimeUser:
    return resolve_user(image.config.user, _text(image, "/etc/passwd"), _text(image, "/etc/group"))


def _text(image: Image, path: str) -> str | None:
    data = image.files.get(path)
    return data.decode("utf-8", "replace") if data is not None else None


# -- finding executables ----------------------------------------------------------------------


def _is_multicall(name: str) -> bool:
    return name.startswith(MULTICALL_PREFIXES)


def _search_dirs(image: Image) -> list[str]:
    dirs = []
    for d in list(image.config.path_dirs) + list(USUAL_BIN_DIRS):
        d = posixpath.normpath("/" + d.lstrip("/"))
        if d not in dirs:
            dirs.append(d)
    return dirs


def _kind_word(names: frozenset[str]) -> str:
    return "shell" if names is SHELLS else "package manager"


def _reason(name: str, target_name: str, names: frozenset[str]) -> str:
    """Why an executable called ``name`` whose file is ``target_name`` is one of ``names``."""
    if names is SHELLS and _is_multicall(target_name):
        if name == target_name:
            return f"{name} is a multi-call binary that provides sh"
        return f"{target_name} provides {name}" if name in SHELLS else \
            f"{name} reaches {target_name}, a multi-call binary that provides sh"
    if names is SHELLS and _is_multicall(name):
        return f"{name} is a multi-call binary that provides sh (file {target_name})"
    if name in names:
        return f"{name} is a {_kind_word(names)}"
    if target_name in names:
        return f"{name} reaches {target_name}, a {_kind_word(names)}"
    return ""


def _relevant(name: str, names: frozenset[str]) -> bool:
    return name in names or (names is SHELLS and _is_multicall(name))


def _findings(image: Image, names: frozenset[str]) -> list[tuple[str, str]]:
    """``(path, evidence)`` for every executable in the image that is (or reaches) one of
    ``names``, by its own name, a symlink's or hard link's target, or a multi-call binary. The
    whole merged view is searched: a shell off PATH still runs with --entrypoint."""
    evidence = []
    for entry in image.fs.walk():
        name = posixpath.basename(entry.path)
        if entry.kind == "symlink":
            res = image.fs.resolve(entry.path)
            if not (res.found and res.entry.kind == "file" and res.entry.mode & 0o111):
                continue
            target_name = posixpath.basename(res.path)
            if res.entry.hardlink:
                target_name = posixpath.basename(res.entry.link) if not _relevant(target_name, names) else target_name
            reason = _reason(name, target_name, names)
            if reason:
                evidence.append((entry.path, f"{res.describe()} (symlink, {image.where(entry)}): "
                                             f"{reason}; target {image.describe(res.entry)}"))
        elif entry.kind == "file" and entry.mode & 0o111:
            target_name = posixpath.basename(entry.link) if entry.hardlink else name
            reason = _reason(name, target_name, names)
            if reason:
                link = f" (hard link to {entry.link})" if entry.hardlink else ""
                evidence.append((entry.path, f"{image.describe(entry)}{link}: {reason}"))
    return sorted(evidence)


def shell_paths(image: Image) -> list[str]:
    """Paths of every shell the image holds (what the runtime tier then tries to start)."""
    return [path for path, _ in _findings(image, SHELLS)]


def _absent(check: str, exp: Expectations, found: list[str], thing: str, expectation: str,
            searched: list[str]) -> Verdict:
    """Runtime variant: ``thing`` must be absent. Dev variant: it is expected, and the
    verdict says which expectation applied and why."""
    if exp.dev:
        expectation = f"dev variant ({exp.variant_reason}): a {thing} is expected"
        if found:
            return passed(check, f"dev variant: {len(found)} {thing}(s) present as expected",
                          evidence=found, expectation=expectation)
        return failed(check, f"dev variant but no {thing} found in the image", evidence=searched,
                      expectation=expectation)
    if found:
        return failed(check, f"{len(found)} {thing}(s) found", evidence=found, expectation=expectation)
    return passed(check, f"no {thing} in the image", evidence=searched, expectation=expectation)


def no_shell(image: Image, exp: Expectations) -> Verdict:
    searched = ("searched every executable in the image, PATH and "
                + ", ".join(_search_dirs(image)) + " included")
    return _absent("no-shell", exp, [text for _, text in _findings(image, SHELLS)], "shell",
                   "no shell executable anywhere in the image", [searched])


def no_package_manager(image: Image, exp: Expectations) -> Verdict:
    return _absent("no-package-manager", exp, [text for _, text in _findings(image, PACKAGE_MANAGERS)],
                   "package manager", "no " + ", ".join(sorted(PACKAGE_MANAGERS)) + " executable", [])


def nonroot_user(image: Image, exp: Expectations, user: RuntimeUser) -> Verdict:
    spec = image.config.user
    evidence = [f"Config.User = {spec!r}", *user.evidence]
    if exp.dev:
        expectation = f"dev variant ({exp.variant_reason}): runs as root"
        if user.resolved and user.uid == 0:
            return passed("nonroot-user", "dev variant runs as root as expected",
                          evidence=evidence, expectation=expectation, notes=user.notes)
        return failed("nonroot-user", f"dev variant expected root, resolves to {user.label() if user.resolved else user.error}",
                      evidence=evidence, expectation=expectation, notes=user.notes)
    want = exp.profile.uid
    expectation = "non-root UID" + (f" {want}" if want is not None else "") + (
        f", GID {exp.profile.gid}" if exp.profile.gid is not None else "") + \
        " resolved through the image's /etc/passwd"
    common = dict(evidence=evidence, expectation=expectation, notes=user.notes)
    if not spec:
        return failed("nonroot-user", "Config.User is not set: the container runs as root (UID 0)", **common)
    if not user.resolved:
        return failed("nonroot-user", user.error, **common)
    if user.uid == 0:
        return failed("nonroot-user", f"User {spec!r} resolves to UID 0 (root)", **common)
    if want is not None and user.uid != want:
        return failed("nonroot-user", f"runs as UID {user.uid}; profile {exp.profile.name} expects {want}", **common)
    if exp.profile.gid is not None and user.gid != exp.profile.gid:
        return failed("nonroot-user", f"runs as GID {user.gid}; profile {exp.profile.name} expects {exp.profile.gid}", **common)
    return passed("nonroot-user", f"User {spec!r} resolves to {user.label()}", **common)


# -- the operator binary ----------------------------------------------------------------------


def lookup_command(image: Image, command: str) -> tuple[Resolution | None, list[str]]:
    """Resolve a container command like runc does: absolute paths as given, bare names through
    the image's PATH, taking the first regular file with an x bit (Go's exec.LookPath)."""
    tried = []
    if "/" in command:
        res = image.fs.resolve(posixpath.join(image.config.working_dir or "/", command))
        tried.append(res.describe())
        ok = res.found and res.entry.kind == "file" and res.entry.mode & 0o111
        return (res if ok else None), tried
    for directory in image.config.path_dirs:
        res = image.fs.resolve(posixpath.join(directory, command))
        tried.append(res.describe())
        if res.found and res.entry.kind == "file" and res.entry.mode & 0o111:
            return res, tried
    return None, tried


_WORDS = {"r": "readable", "w": "writable", "x": "executable"}


def access_problems(image: Image, user: RuntimeUser, res: Resolution, want: str = "x") -> list[str]:
    """Why ``user`` may not use the resolved entry: each directory on the way needs search (x)
    permission, and the entry itself every bit in ``want``."""
    problems = []
    for directory in res.traversed:
        if not permits(user, directory, "x"):
            problems.append(f"directory {image.describe(directory)} is not searchable by {user.label()}: {mode_reason(user, directory)}")
    missing = [_WORDS[bit] for bit in want if not permits(user, res.entry, bit)]
    if missing:
        problems.append(f"{image.describe(res.entry)} is not {' and '.join(missing)} by {user.label()}: {mode_reason(user, res.entry)}")
    return problems


def _same_file(image: Image, a: str, b: str) -> bool:
    ra, rb = image.fs.resolve(a), image.fs.resolve(b)
    return ra.found and rb.found and ra.path == rb.path


def operator_binary(image: Image, exp: Expectations, user: RuntimeUser) -> Verdict:
    expectation = (f"`{OPERATOR_NAME}` resolves through PATH (the chart's command) to "
                   f"{exp.profile.binary}, executable by the runtime user")
    path_env = image.config.env.get("PATH")
    evidence = [f"PATH={path_env}" if path_env is not None else "PATH unset: runtime default "
                + ":".join(image.config.path_dirs)]
    res, tried = lookup_command(image, OPERATOR_NAME)
    if res is None:
        return failed("operator-binary", f"`{OPERATOR_NAME}` does not resolve through PATH",
                      evidence=evidence + [f"tried {t}" for t in tried], expectation=expectation)
    evidence.append(f"{res.describe()}: {image.describe(res.entry)}")
    if not _same_file(image, res.requested, exp.profile.binary):
        return failed("operator-binary",
                      f"PATH finds {res.path}, profile {exp.profile.name} expects {exp.profile.binary}",
                      evidence=evidence, expectation=expectation)
    if not user.resolved:
        return failed("operator-binary", f"cannot judge execute permission: {user.error}",
                      evidence=evidence, expectation=expectation)
    problems = access_problems(image, user, res)
    if problems:
        return failed("operator-binary", f"{res.path} is not executable by {user.label()}",
                      evidence=evidence + problems, expectation=expectation)
    return passed("operator-binary", f"{OPERATOR_NAME} -> {res.path}, executable by {user.label()} ({mode_reason(user, res.entry)})",
                  evidence=evidence, expectation=expectation)


def entrypoint(image: Image, exp: Expectations, user: RuntimeUser) -> Verdict:
    actual = image.config.entrypoint
    cmd = image.config.cmd
    evidence = [f"Config.Entrypoint = {list(actual) if actual is not None else None}",
                f"Config.Cmd = {list(cmd) if cmd is not None else None}"]
    if exp.profile.uses_cmd_only:
        expectation = f"no ENTRYPOINT (profile {exp.profile.name}: the chart's command runs the binary)"
        if actual:
            return failed("entrypoint", f"ENTRYPOINT {list(actual)} is set; profile {exp.profile.name} expects none",
                          evidence=evidence, expectation=expectation)
        notes = []
        if cmd:
            target, tried = lookup_command(image, cmd[0])
            notes.append(f"default CMD {cmd[0]!r} " + ("resolves to " + target.path if target
                         else "does not resolve (" + "; ".join(tried) + ")"))
        return passed("entrypoint", "no ENTRYPOINT, as the upstream layout has", evidence=evidence,
                      expectation=expectation, notes=notes)
    want = list(exp.profile.entrypoint)
    expectation = f"ENTRYPOINT {want} (profile {exp.profile.name}), a regular executable file"
    if actual is None or list(actual) != want:
        return failed("entrypoint", f"ENTRYPOINT is {list(actual) if actual is not None else 'unset'}, expected {want}",
                      evidence=evidence, expectation=expectation)
    target, tried = lookup_command(image, actual[0])
    if target is None:
        return failed("entrypoint", f"ENTRYPOINT {actual[0]} is not a regular executable file",
                      evidence=evidence + [f"tried {t}" for t in tried], expectation=expectation)
    evidence.append(f"{target.describe()}: {image.describe(target.entry)}")
    if user.resolved:
        problems = access_problems(image, user, target)
        if problems:
            return failed("entrypoint", f"ENTRYPOINT {actual[0]} is not executable by {user.label()}",
                          evidence=evidence + problems, expectation=expectation)
    return passed("entrypoint", f"ENTRYPOINT {want} -> {target.path}", evidence=evidence,
                  expectation=expectation)


# -- gops -------------------------------------------------------------------------------------


def gops_directory(image: Image, user: RuntimeUser) -> tuple[str, str]:
    """``(directory, how it was chosen)`` the way gops v0.3 picks its config dir."""
    env = image.config.env
    if env.get("GOPS_CONFIG_DIR"):
        return env["GOPS_CONFIG_DIR"], f"GOPS_CONFIG_DIR={env['GOPS_CONFIG_DIR']}"
    if env.get("XDG_CONFIG_HOME"):
        return posixpath.join(env["XDG_CONFIG_HOME"], "gops"), f"XDG_CONFIG_HOME={env['XDG_CONFIG_HOME']}"
    if env.get("HOME"):
        return posixpath.join(env["HOME"], ".config", "gops"), f"GOPS_CONFIG_DIR unset, HOME={env['HOME']} (image env)"
    source = "its /etc/passwd entry" if user.name else "the runtime default for a user with no passwd entry"
    return posixpath.join(user.home or "/", ".config", "gops"), f"GOPS_CONFIG_DIR unset, HOME={user.home or '/'} ({source})"


def _gops_disabled(args: tuple[str, ...]) -> bool:
    """``--enable-gops=false`` / ``--enable-gops false`` (1.18+) among the operator args."""
    for i, arg in enumerate(args):
        value = arg.partition("=")[2] if arg.startswith("--enable-gops=") else (
            args[i + 1] if arg == "--enable-gops" and i + 1 < len(args) else None)
        if value is not None and value.strip().lower() in ("false", "0", "f"):
            return True
    return False


def gops_writable(image: Image, exp: Expectations, user: RuntimeUser) -> Verdict:
    expectation = ("the gops config directory is writable by the runtime user with all capabilities "
                   "dropped, as the chart runs it (else the operator exits at start, cilium#40435)")
    verdict = _gops_verdict(image, user, expectation)
    if not verdict.ok and _gops_disabled(exp.profile.operator_args):
        # Still judged and shown: a default chart install (gops on) would die at start.
        return passed("gops-writable", "not applicable: gops is disabled by the operator args "
                      "(--enable-gops=false)", evidence=[verdict.message, *verdict.evidence],
                      expectation=expectation,
                      notes=["with gops enabled (the chart's default) this image would fail here"])
    return verdict


def _gops_verdict(image: Image, user: RuntimeUser, expectation: str) -> Verdict:
    if not user.resolved:
        return failed("gops-writable", f"cannot judge: {user.error}", expectation=expectation)
    directory, how = gops_directory(image, user)
    directory = posixpath.normpath(posixpath.join(image.config.working_dir or "/", directory))
    evidence = [f"{how} -> gops writes {directory}/<pid>"]
    # gops runs MkdirAll then creates a file: the deepest existing directory must be writable.
    probe = directory
    while True:
        res = image.fs.resolve(probe)
        if res.found or probe == "/":
            break
        if res.error != "not found":
            return failed("gops-writable", f"{probe}: {res.error}", evidence=evidence + [res.describe()],
                          expectation=expectation)
        probe = posixpath.dirname(probe)
    if res.entry is None or res.entry.kind != "dir":
        return failed("gops-writable", f"{res.path} is not a directory", evidence=evidence,
                      expectation=expectation)
    what = directory if probe == directory else f"{directory} (to be created under {res.path})"
    evidence.append(f"deepest existing directory: {image.describe(res.entry)}")
    problems = access_problems(image, user, res, "wx")
    if problems:
        return failed("gops-writable", f"{user.label()} cannot write {what}; the operator would exit at start",
                      evidence=evidence + problems, expectation=expectation)
    return passed("gops-writable", f"{user.label()} can write {what}", evidence=evidence,
                  expectation=expectation)

