"""Who the container process runs as, resolved the way runc resolves ``Config.User`` — through
the image's own /etc/passwd and /etc/group — and what that user may do to a file."""

from __future__ import annotations

from dataclasses import dataclass

from ..image.layers import Entry


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str
    shell: str
    line: int


@dataclass(frozen=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]
    line: int


def parse_passwd(text: str) -> list[PasswdEntry]:
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split(":")
        if len(parts) < 7 or line.startswith("#"):
            continue
        try:
            entries.append(PasswdEntry(parts[0], int(parts[2]), int(parts[3]), parts[5], parts[6], number))
        except ValueError:
            continue
    return entries


def parse_group(text: str) -> list[GroupEntry]:
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split(":")
        if len(parts) < 4 or line.startswith("#"):
            continue
        try:
            members = tuple(m for m in parts[3].split(",") if m)
            entries.append(GroupEntry(parts[0], int(parts[2]), members, number))
        except ValueError:
            continue
    return entries


@dataclass(frozen=True, repr=False)
class RuntimeUser:
    spec: str  # Config.User as written
    uid: int | None  # None when the spec cannot be resolved (the container would not start)
    gid: int | None
    name: str = ""
    home: str = "/"
    groups: tuple[int, ...] = ()  # supplementary groups from /etc/group membership
    evidence: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    error: str = ""

    @property
    def resolved(self) -> bool:
        return self.uid is not None and self.gid is not None and not self.error

    def __repr__(self) -> str:
        return f"<RuntimeUser {self.spec!r} -> {self.label() if self.resolved else self.error}>"

    def label(self) -> str:
        who = f"{self.uid}:{self.gid}"
        return f"{who} ({self.name})" if self.name else who


def resolve_user(spec: str, passwd_text: str | None, group_text: str | None) -> RuntimeUser:
    """Resolve ``user[:group]`` like runc: names must exist in the image's files; numeric ids
    need not (the gid then defaults to 0, as Docker does)."""
    user_part, _, group_part = spec.partition(":")
    passwd = parse_passwd(passwd_text or "")
    groups = parse_group(group_text or "")
    evidence: list[str] = []
    notes: list[str] = []
    if not spec:
        notes.append("Config.User is empty: the runtime default is root (0:0)")
    if passwd_text is None:
        notes.append("the image has no /etc/passwd")

    uid: int | None = 0
    gid: int | None = 0
    name, home = "", "/"
    if user_part:
        match = next((p for p in passwd if p.name == user_part), None)
        if match is None and user_part.isdigit():
            match = next((p for p in passwd if p.uid == int(user_part)), None)
        if match is not None:
            uid, gid, name, home = match.uid, match.gid, match.name, match.home
            evidence.append(f"/etc/passwd line {match.line}: {match.name}:x:{match.uid}:{match.gid}:…:{match.home}:{match.shell}")
        elif user_part.isdigit():
            uid = int(user_part)
            notes.append(f"UID {uid} has no /etc/passwd entry: primary GID defaults to 0, HOME to /")
        else:
            return RuntimeUser(spec, None, None, evidence=tuple(evidence), notes=tuple(notes),
                               error=f"user {user_part!r} is not in the image's /etc/passwd "
                                     "(the container would not start)")
    if group_part:
        gmatch = next((g for g in groups if g.name == group_part), None)
        if gmatch is None and group_part.isdigit():
            gmatch = next((g for g in groups if g.gid == int(group_part)), None)
        if gmatch is not None:
            gid = gmatch.gid
            evidence.append(f"/etc/group line {gmatch.line}: {gmatch.name}:x:{gmatch.gid}")
        elif group_part.isdigit():
            gid = int(group_part)
            notes.append(f"GID {gid} has no /etc/group entry")
        else:
            return RuntimeUser(spec, uid, None, name, home, evidence=tuple(evidence),
                               notes=tuple(notes),
                               error=f"group {group_part!r} is not in the image's /etc/group "
                                     "(the container would not start)")
    # runc adds /etc/group memberships only when USER names no group: `nonroot:nonroot` runs
    # with that one group, `nonroot` with every group that lists it.
    supplementary = () if group_part else tuple(
        sorted({g.gid for g in groups if name and name in g.members} - {gid}))
    return RuntimeUser(spec, uid, gid, name, home, supplementary, tuple(evidence), tuple(notes))


_BITS = {"r": 4, "w": 2, "x": 1}


def permits(user: RuntimeUser, entry: Entry, want: str) -> bool:
    """May ``user`` read/write/execute ``entry``, judged from mode bits and ownership alone.

    Root gets no DAC override here: the chart (1.18+) and Pod Security "restricted" drop ALL
    capabilities, and without CAP_DAC_OVERRIDE root is judged by the same owner/group/other
    bits as anyone — a root-run image whose gops directory belongs to 65532 fails to start."""
    bit = _BITS[want]
    if entry.uid == user.uid:
        shift = 6
    elif entry.gid == user.gid or entry.gid in user.groups:
        shift = 3
    else:
        shift = 0
    return bool((entry.mode >> shift) & bit)


def mode_reason(user: RuntimeUser, entry: Entry) -> str:
    """Which permission class applied: the detail a failure message needs."""
    if entry.uid == user.uid:
        return f"owner bits (file owner {entry.uid} = runtime UID)"
    if entry.gid == user.gid or entry.gid in user.groups:
        return f"group bits (file group {entry.gid} is one of the user's groups)"
    return f"other bits (owner {entry.uid}:{entry.gid} is neither the user nor its groups)"
