"""Compile ``fake_operator.c`` into a static stand-in for ``cilium-operator-generic``.

The binary is linked with ``gcc -static`` so it runs inside ``FROM scratch`` images.
Misbehaving variants are chosen with C macros (see the header of fake_operator.c)::

    build_fake_operator(tmp, defines={"FAKE_VERSION": '"1.17.5"'})
    build_fake_operator(tmp, defines={"FAKE_MISSING_FLAG": "--k8s-namespace"})  # quotes added
    build_fake_operator(tmp, name="cilium-operator-aws", defines={"FAKE_HELP_EXIT_1": None})
    build_fake_operator(tmp, defines={"FAKE_V117": None, "FAKE_API_WAIT_SECONDS": 4})

Results are cached: the output directory name contains a hash of the C source, the
compiler flags and the defines, so repeated calls (also from parallel workers) reuse
the binary instead of recompiling.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).resolve().with_name("fake_operator.c")

CC = "gcc"
CFLAGS = ("-static", "-O2", "-Wall", "-Wextra")

# Macros understood by fake_operator.c. String macros take a C string literal; a bare
# value is quoted automatically. Switch macros take None (plain -DNAME); integer macros an int.
STRING_DEFINES = frozenset({"FAKE_VERSION", "FAKE_MISSING_FLAG"})
SWITCH_DEFINES = frozenset(
    {"FAKE_V117", "FAKE_HANG_ON_HELP", "FAKE_HELP_EXIT_1", "FAKE_HELP_TO_STDERR", "FAKE_CRASH_ON_START"}
)
INT_DEFINES = frozenset({"FAKE_API_WAIT_SECONDS"})
KNOWN_DEFINES = STRING_DEFINES | SWITCH_DEFINES | INT_DEFINES


def _c_string(value: str) -> str:
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _normalise(defines: dict[str, str | None] | None) -> dict[str, str | None]:
    result: dict[str, str | None] = {}
    for key, value in (defines or {}).items():
        if key not in KNOWN_DEFINES:
            raise ValueError(
                f"unknown fake operator macro {key!r}; expected one of {sorted(KNOWN_DEFINES)}"
            )
        if key in STRING_DEFINES:
            if value is None:
                raise ValueError(f"macro {key} needs a string value")
            result[key] = _c_string(value)
        elif key in INT_DEFINES:
            result[key] = str(int(value))
        else:
            result[key] = value
    return dict(sorted(result.items()))


def _slug(defines: dict[str, str | None]) -> str:
    if not defines:
        return "default"
    parts = []
    for key, value in defines.items():
        part = key.lower().removeprefix("fake_")
        if value is not None:
            part += "_" + value.strip('"')
        parts.append(part)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts)).strip("_")[:60]


def _cache_key(defines: dict[str, str | None]) -> str:
    digest = hashlib.sha256()
    digest.update(SOURCE.read_bytes())
    digest.update(json.dumps([CC, list(CFLAGS), defines]).encode())
    return digest.hexdigest()[:16]


def build_fake_operator(
    out_dir: Path,
    name: str = "cilium-operator-generic",
    defines: dict[str, str | None] | None = None,
) -> Path:
    """Compile the fake operator as ``out_dir/<variant>-<hash>/<name>`` and return its path.

    ``defines`` maps macro names to values (``None`` for a bare ``-DNAME``). An already
    built binary for the same source, flags and defines is returned without recompiling.
    Raises RuntimeError (with gcc's stderr) when compilation fails.
    """
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"invalid binary name {name!r}")
    norm = _normalise(defines)
    target_dir = Path(out_dir) / f"{_slug(norm)}-{_cache_key(norm)}"
    target = target_dir / name
    if target.is_file() and os.access(target, os.X_OK):
        return target

    if shutil.which(CC) is None:
        raise RuntimeError(f"cannot build the fake operator: {CC!r} is not on PATH")
    target_dir.mkdir(parents=True, exist_ok=True)
    # Compile to a temporary name and rename, so concurrent builders never see a
    # half-written binary.
    fd, tmp_name = tempfile.mkstemp(dir=target_dir, prefix=f".{name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    cmd = [CC, *CFLAGS, "-o", str(tmp), str(SOURCE)]
    cmd += [f"-D{k}" if v is None else f"-D{k}={v}" for k, v in norm.items()]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(
                f"building the fake operator failed (gcc exit {proc.returncode}).\n"
                f"command: {' '.join(cmd)}\n{proc.stderr}"
            )
        tmp.chmod(0o755)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--name", default="cilium-operator-generic")
    parser.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME[=VALUE]")
    args = parser.parse_args()
    macros = {d.partition("=")[0]: (d.partition("=")[2] if "=" in d else None) for d in args.defines}
    print(build_fake_operator(args.out_dir, args.name, macros))
