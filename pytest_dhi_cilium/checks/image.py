"""Image-tier checks: pure functions of the image model and the expectations. No I/O here."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from ..image.layers import Entry, Resolution
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


def command_dirs(image: Image) -> set[str]:
    """The directories commands are run from by name — the image's PATH and the usual bin
    directories — as the real directories they resolve to (``/bin -> usr/bin`` on merged /usr)."""
    dirs = set()
    for d in _search_dirs(image):
        res = image.fs.resolve(d)
        if res.found and res.entry.kind == "dir":
            dirs.add(res.path)
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


@dataclass(frozen=True)
class Reach:
    """One path that runs a provider: the file itself, a hard link, or a symlink (chain)."""

    path: str
    via: str  # "file", "hard link" or "symlink"
    chain: str  # "/bin/sh -> busybox (= /bin/busybox)" for a symlink, else the path
    entry: Entry  # the path's own entry: its layer, its mode
    reason: str  # why this name runs a shell / package manager


@dataclass
class Provider:
    """One program — one file, one inode — and every path that runs it: a busybox reached by
    270 links is one shell provider, not 270 shells."""

    path: str
    entry: Entry
    names: frozenset[str]  # what it is searched as: SHELLS or PACKAGE_MANAGERS
    reaches: list[Reach] = field(default_factory=list)

    def links(self) -> list[Reach]:
        """The other paths that run it, the ones that matter first (``sh``, other shell or
        package-manager names, multi-call names, then the rest)."""
        def rank(r: Reach) -> tuple:
            name = posixpath.basename(r.path)
            return (0 if name == "sh" else 1 if name in self.names else 2 if _relevant(name, self.names)
                    else 3, r.path)
        return sorted((r for r in self.reaches if r.path != self.path), key=rank)

    def reachable_as(self, shown: int = 2) -> str:
        names = [r.path for r in self.links()]
        if len(names) <= shown + 1:
            return _and(names)
        rest = len(names) - shown
        return f"{', '.join(names[:shown])} and {rest} other link{'s' if rest != 1 else ''}"


def _and(items: list[str]) -> str:
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _findings(image: Image, names: frozenset[str],
              where: set[str] | None = None) -> tuple[list[Provider], list[Reach]]:
    """Every program in the image that is (or is reached as) one of ``names`` — by its own
    name, a symlink's or hard link's target, or a multi-call binary — grouped by the file that
    runs, with every path that reaches it. ``where``: only paths in these directories count;
    the others are returned apart. ``None`` searches the whole merged view (a shell off PATH
    still runs with --entrypoint)."""
    providers: dict[str, Provider] = {}
    outside: list[tuple[str, Reach]] = []
    for entry in image.fs.walk():
        name = posixpath.basename(entry.path)
        if entry.kind == "symlink":
            res = image.fs.resolve(entry.path)
            if not (res.found and res.entry.kind == "file" and res.entry.mode & 0o111):
                continue
            target, inode = res.entry, res.entry.link if res.entry.hardlink else res.path
            target_name = posixpath.basename(res.path)
            if res.entry.hardlink and not _relevant(target_name, names):
                target_name = posixpath.basename(res.entry.link)
            reach = Reach(entry.path, "symlink", res.describe(), entry, _reason(name, target_name, names))
        elif entry.kind == "file" and entry.mode & 0o111:
            target, inode = entry, entry.link if entry.hardlink else entry.path
            target_name = posixpath.basename(inode)
            reach = Reach(entry.path, "hard link" if entry.hardlink else "file", entry.path, entry,
                          _reason(name, target_name, names))
        else:
            continue
        if not reach.reason:
            continue
        if where is not None and posixpath.dirname(entry.path) not in where:
            outside.append((inode, reach))
            continue
        provider = providers.get(inode)
        if provider is None:
            provider = providers[inode] = Provider(inode, image.fs.entry(inode) or target, names)
        provider.reaches.append(reach)
    for provider in providers.values():
        provider.reaches.sort(key=lambda r: r.path)
    # Outside paths to a program that is counted anyway (/etc/alternatives/dpkg) add nothing.
    apart = [reach for inode, reach in outside if inode not in providers]
    return sorted(providers.values(), key=lambda p: p.path), sorted(apart, key=lambda r: r.path)


def shell_providers(image: Image) -> list[Provider]:
    """Every shell program of the image with its paths (what the runtime tier then probes)."""
    return _findings(image, SHELLS)[0]


def _reach_line(image: Image, reach: Reach) -> str:
    if reach.via == "symlink":
        return f"{reach.chain} (symlink, {image.where(reach.entry)}): {reach.reason}"
    link = f" (hard link to {reach.entry.link})" if reach.via == "hard link" else ""
    return f"{image.describe(reach.entry)}{link}: {reach.reason}"


SHOWN_LINKS = 3  # per provider in the evidence; the JSON details list every one


def _provider_evidence(image: Image, provider: Provider, thing: str) -> list[str]:
    """Short: the provider, the few paths that matter, a count of the rest."""
    own = next((r for r in provider.reaches if r.path == provider.path), None)
    links = provider.links()
    also = f"{len(links)} link{'s' if len(links) != 1 else ''}"
    if own is not None:
        head = f"{_reach_line(image, own)}" + (f"; also run by {also}" if links else "")
    else:
        head = f"{image.describe(provider.entry)}, run as a {thing} by {also}"
    lines = [head] + [_reach_line(image, r) for r in links[:SHOWN_LINKS]]
    rest = [r.path for r in links[SHOWN_LINKS:]]
    if rest:
        lines.append(f"... and {len(rest)} more link{'s' if len(rest) != 1 else ''} to {provider.path} "
                     f"({', '.join(rest[:3])}{', ...' if len(rest) > 3 else ''}); the JSON report lists every one")
    return lines


def _provider_details(image: Image, provider: Provider, names: frozenset[str]) -> dict:
    """Complete and structured, for the JSON report: every path that runs the provider."""
    entry = provider.entry

    def reach(r: Reach) -> dict:
        item = {"path": r.path, "via": r.via}
        if r.entry.link:
            item["link"] = r.entry.link  # the symlink's target as stored, or the hard link's
        if r.chain.count(" -> ") > 1:
            item["resolves"] = r.chain  # a chain of links
        item["layer"] = r.entry.layer + 1
        if _relevant(posixpath.basename(r.path), names):
            item["reason"] = r.reason  # the names that matter; the rest are other applets
        return item

    return {"path": provider.path, "kind": entry.kind, "mode": f"{entry.mode:04o}", "uid": entry.uid,
            "gid": entry.gid, **_layer(image, entry), "reachable_as": [reach(r) for r in provider.reaches]}


def _layer(image: Image, entry: Entry) -> dict:
    if entry.layer < 0:
        return {"layer": None, "diff_id": None}
    return {"layer": entry.layer + 1, "diff_id": image.layers[entry.layer].diff_id}


def _summary(providers: list[Provider], shown: int = 3) -> str:
    parts = []
    for p in providers[:shown]:
        links = p.reachable_as()
        parts.append(p.path + (f", reachable as {links}" if links else ""))
    if len(providers) > shown:
        parts.append(f"and {len(providers) - shown} more")
    return "; ".join(parts)


def _absent(check: str, exp: Expectations, image: Image, providers: list[Provider], names: frozenset[str],
            expectation: str, searched: list[str], details: dict | None = None,
            notes: list[str] = ()) -> Verdict:
    """Runtime variant: ``thing`` must be absent. Dev variant: it is expected, and the
    verdict says which expectation applied and why."""
    thing = _kind_word(names)
    evidence = [line for p in providers for line in _provider_evidence(image, p, thing)]
    details = {"providers": [_provider_details(image, p, names) for p in providers], **(details or {})}
    n = len(providers)
    noun = "shell provider" if names is SHELLS else thing  # one busybox is one provider of many names
    counted = f"{n} {noun}{'s' if n != 1 else ''}"
    common = dict(details=details, notes=list(notes))
    if exp.dev:
        expectation = f"dev variant ({exp.variant_reason}): a {thing} is expected"
        if providers:
            return passed(check, f"dev variant: {counted} present as expected: {_summary(providers)}",
                          evidence=evidence, expectation=expectation, **common)
        return failed(check, f"dev variant but no {thing} found in the image", evidence=searched,
                      expectation=expectation, **common)
    if providers:
        return failed(check, f"{counted} found: {_summary(providers)}", evidence=evidence,
                      expectation=expectation, **common)
    return passed(check, f"no {thing} in the image", evidence=searched, expectation=expectation, **common)


def no_shell(image: Image, exp: Expectations, providers: list[Provider] | None = None) -> Verdict:
    """``providers``: the image's shell_providers when already found (the suite finds them once
    per image, for this check and no-shell-runtime)."""
    searched = ("searched every executable in the image, PATH and "
                + ", ".join(_search_dirs(image)) + " included")
    providers = shell_providers(image) if providers is None else providers
    return _absent("no-shell", exp, image, providers, SHELLS,
                   "no shell executable anywhere in the image", [searched])


def no_package_manager(image: Image, exp: Expectations) -> Verdict:
    """A package manager is a program the image can run *as a command*: an executable named
    apt, dpkg, rpm, ... (or a link reaching one) in a directory commands are run from by name
    (PATH, /bin, /usr/bin, ...). Same-named files elsewhere — /etc/cron.daily/dpkg (a cron
    job), /usr/share/bug/dpkg (a reportbug hook) — are scripts other programs run; they stay
    listed as notes, not counted."""
    dirs = command_dirs(image)
    providers, outside = _findings(image, PACKAGE_MANAGERS, where=dirs)
    where = ", ".join(sorted(dirs)) or "none in the image"
    notes = []
    if outside:
        listed = [image.describe(r.entry) for r in outside[:5]]
        more = f" and {len(outside) - 5} more" if len(outside) > 5 else ""
        notes.append(f"not counted: {len(outside)} executable(s) named like a package manager outside the "
                     f"command directories (nothing runs them by name; e.g. cron jobs or reportbug "
                     f"scripts): {', '.join(listed)}{more}")
    return _absent("no-package-manager", exp, image, providers, PACKAGE_MANAGERS,
                   "no " + ", ".join(sorted(PACKAGE_MANAGERS)) + " executable in a command directory",
                   [f"searched the command directories {where}"],
                   details={"command_dirs": sorted(dirs),
                            "not_counted": [{"path": r.path, "via": r.via, "layer": r.entry.layer + 1,
                                             "reason": r.reason} for r in outside]},
                   notes=notes)


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

