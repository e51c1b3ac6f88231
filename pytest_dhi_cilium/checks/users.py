"""Who the container process runs as, resolved the way runc resolves ``Config.User`` — through
the image's own /etc/passwd and /etc/group — and what that user may do to a file."""

from __future__ import annotations

from dataclasses import dataclass

from ..image.layers import Entry
from ..image.tarstream import go_int


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


MAX_ID = (1 << 31) - 1  # runc: "uids and gids must be in range 0-2147483647"


def _field_int(text: str) -> int:
    """A number field of /etc/passwd or /etc/group as runc parses it: Atoi with its error
    ignored — garbage is 0, an overflow is clamped to the int64 limit."""
    return go_int(text, clamp=True) or 0


def _fields(line: str, count: int) -> list[str]:
    parts = line.split(":")
    return parts[:count] + [""] * (count - len(parts))


def parse_passwd(text: str) -> list[PasswdEntry]:
    """Every non-blank line, as runc's ParsePasswd reads it (missing fields are empty)."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        name, _, uid, gid, _, home, shell = _fields(line, 7)
        entries.append(PasswdEntry(name, _field_int(uid), _field_int(gid), home, shell, number))
    return entries


def parse_group(text: str) -> list[GroupEntry]:
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, gid, members = _fields(line, 4)
        entries.append(GroupEntry(name, _field_int(gid), tuple(m for m in members.split(",") if m), number))
    return entries


def _kernel_id(value: int, what: str) -> tuple[int | None, str, str]:
    """(the id the kernel gets, a note, an error): setuid/setgid take 32 bits, so a passwd
    UID of 4294967296 runs as 0 (root); -1 (4294967295) is refused, negatives too."""
    if value < 0:
        return None, "", f"{what} {value}: uids and gids must be in range 0-{MAX_ID} (runc refuses to start it)"
    kernel = value & 0xFFFFFFFF
    if kernel == 0xFFFFFFFF:
        return None, "", f"{what} {value}: setuid/setgid fail with invalid argument (the container would not start)"
    note = f"{what} {value} is truncated to 32 bits by the kernel: {kernel}" if kernel != value else ""
    return kernel, note, ""


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
    """Resolve ``user[:group]`` like runc (user.GetExecUser): a numeric user is looked up by
    UID, anything else by name, and must exist; a numeric user without an entry must be in
    0..2147483647 (its GID then defaults to 0, as Docker does); an empty user is UID 0's
    entry. The kernel takes ids modulo 2^32."""
    parts = spec.split(":")
    user_part, group_part = parts[0], parts[1] if len(parts) > 1 else ""
    passwd = parse_passwd(passwd_text or "")
    groups = parse_group(group_text or "")
    evidence: list[str] = []
    notes: list[str] = []
    if not spec:
        notes.append("Config.User is empty: the runtime default is root (0:0)")
    if passwd_text is None:
        notes.append("the image has no /etc/passwd")

    def failed(error: str, uid=None) -> RuntimeUser:
        return RuntimeUser(spec, uid, None, evidence=tuple(evidence), notes=tuple(notes), error=error)

    uid_arg = go_int(user_part)
    if not user_part:
        match = next((p for p in passwd if p.uid == 0), None)
    elif uid_arg is not None:
        match = next((p for p in passwd if p.uid == uid_arg), None)
    else:
        match = next((p for p in passwd if p.name == user_part), None)
    uid, gid, name, home = 0, 0, "", "/"
    if match is not None:
        uid, gid, name, home = match.uid, match.gid, match.name, match.home
        evidence.append(f"/etc/passwd line {match.line}: {match.name}:x:{match.uid}:{match.gid}:…:{match.home}:{match.shell}")
    elif user_part:
        if uid_arg is None:
            return failed(f"unable to find user {user_part}: no matching entries in passwd file "
                          "(the container would not start)")
        if not 0 <= uid_arg <= MAX_ID:
            return failed(f"user {user_part}: uids and gids must be in range 0-{MAX_ID} "
                          "(runc refuses to start it)")
        uid = uid_arg
        notes.append(f"UID {uid} has no /etc/passwd entry: primary GID defaults to 0, HOME to /")
    if group_part:
        gid_arg = go_int(group_part)
        gmatch = next((g for g in groups if (g.gid == gid_arg if gid_arg is not None else g.name == group_part)), None)
        if gmatch is not None:
            gid = gmatch.gid
            evidence.append(f"/etc/group line {gmatch.line}: {gmatch.name}:x:{gmatch.gid}")
        elif gid_arg is None:
            return failed(f"unable to find group {group_part}: no matching entries in group file "
                          "(the container would not start)", uid)
        elif not 0 <= gid_arg <= MAX_ID:
            return failed(f"group {group_part}: uids and gids must be in range 0-{MAX_ID} "
                          "(runc refuses to start it)", uid)
        else:
            gid = gid_arg
            notes.append(f"GID {gid} has no /etc/group entry")
    kernel_uid, note, error = _kernel_id(uid, "UID")
    if error:
        return failed(error)
    notes += [note] if note else []
    kernel_gid, note, error = _kernel_id(gid, "GID")
    if error:
        return failed(error, kernel_uid)
    notes += [note] if note else []
    # runc adds /etc/group memberships only when USER names no group: `nonroot:nonroot` runs
    # with that one group, `nonroot` with every group that lists it.
    supplementary = () if group_part else tuple(sorted(
        {g.gid & 0xFFFFFFFF for g in groups if name and name in g.members and g.gid >= 0} - {kernel_gid}))
    return RuntimeUser(spec, kernel_uid, kernel_gid, name, home, supplementary, tuple(evidence), tuple(notes))


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
