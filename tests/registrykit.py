"""A real registry on loopback for the tests: Debian's ``docker-registry`` (the CNCF distribution
registry) serving a private storage directory on 127.0.0.1 and a free port, with or without
htpasswd authentication; images pushed to it with skopeo."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

TOOLS = {"docker-registry": "docker-registry", "skopeo": "skopeo", "htpasswd": "apache2-utils"}


def missing_tools() -> list[str]:
    """Debian packages to install for the registry tests (empty when all are there)."""
    return sorted({package for tool, package in TOOLS.items() if not shutil.which(tool)})


def free_port() -> int:
    """A loopback port nothing listens on (as the kernel just handed it out, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """One registry process. ``credentials``: (user, password) turns on htpasswd auth."""

    def __init__(self, credentials: tuple[str, str] | None = None, schema1: bool = False):
        self.credentials = credentials
        self.schema1 = schema1  # accept legacy schema 1 manifests (to test that they are refused)
        self.root = Path(tempfile.mkdtemp(prefix="dhi-test-registry-"))
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> "Registry":
        """Serve, or raise saying why; a start that fails leaves no process and no directory."""
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> "Registry":
        config = {"version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
                  "storage": {"filesystem": {"rootdirectory": str(self.root / "storage")},
                              "delete": {"enabled": True}},
                  "http": {"addr": ""}}
        if self.schema1:
            config["compatibility"] = {"schema1": {"enabled": True}}
        if self.credentials:
            user, password = self.credentials
            entry = subprocess.run(["htpasswd", "-Bbn", user, password], capture_output=True,
                                   text=True, check=True).stdout
            (self.root / "htpasswd").write_text(entry)
            config["auth"] = {"htpasswd": {"realm": "dhi-test", "path": str(self.root / "htpasswd")}}
        last = ""
        for _ in range(3):  # the free port may be taken between asking and binding: retry
            self.port = free_port()
            config["http"]["addr"] = self.host
            (self.root / "config.yml").write_text(json.dumps(config))  # JSON is YAML
            with open(self.root / "registry.log", "wb") as log:  # the process keeps its own copy
                self.process = subprocess.Popen(["docker-registry", "serve", str(self.root / "config.yml")],
                                                stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                if self.status("/v2/") in (200, 401):
                    return self
                time.sleep(0.1)
            last = (self.root / "registry.log").read_text(errors="replace")[-500:]
            self._kill()
        raise RuntimeError(f"docker-registry did not start on 127.0.0.1: {last.strip() or 'no output'}")

    def status(self, path: str) -> int:
        """The HTTP status of an anonymous GET (0: no answer)."""
        try:
            with urllib.request.urlopen(f"http://{self.host}{path}", timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    def _creds(self, flag: str) -> list[str]:
        return [f"{flag}={':'.join(self.credentials)}"] if self.credentials else []

    def push(self, source: str, name: str, all_platforms: bool = False, *options: str) -> str:
        """``skopeo copy SOURCE docker://HOST/NAME``; returns the ``docker://`` reference."""
        dest = f"docker://{self.host}/{name}"
        argv = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", *self._creds("--dest-creds"),
                *(["--all"] if all_platforms else []), *options]
        subprocess.run(argv + [source, dest], check=True, capture_output=True, timeout=300)
        return dest

    def raw_manifest(self, name: str) -> bytes:
        """What the registry serves for NAME, as skopeo (not the plugin) reads it."""
        return subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", *self._creds("--creds"),
                               f"docker://{self.host}/{name}"], check=True, capture_output=True,
                              timeout=60).stdout

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def stop(self) -> None:
        self._kill()
        shutil.rmtree(self.root, ignore_errors=True)


def docker_config(directory: Path, auths: dict | None = None, **extra) -> Path:
    """A DOCKER_CONFIG directory whose config.json holds ``auths`` ({host: (user, password)})
    as ``docker login`` writes them (base64 ``auth``), plus any other keys (credsStore, ...)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {"auths": {host: {"auth": base64.b64encode(f"{u}:{p}".encode()).decode()}
                        for host, (u, p) in (auths or {}).items()}}
    config.update(extra)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def credential_helper(bin_dir: Path, name: str, secrets: dict[str, tuple[str, str]]) -> Path:
    """A ``docker-credential-NAME`` executable speaking the credential-helper protocol (``get``:
    server URL on stdin, JSON ``{ServerURL, Username, Secret}`` on stdout; unknown: exit 1 with
    "credentials not found in native keychain"), serving ``secrets``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    helper = bin_dir / f"docker-credential-{name}"
    table = {host: {"ServerURL": host, "Username": u, "Secret": p} for host, (u, p) in secrets.items()}
    helper.write_text(f"""#!{os.path.realpath(shutil.which('python3') or '/usr/bin/python3')}
import json, sys
table = {json.dumps(table)!r}
if sys.argv[1:] != ["get"]:
    sys.exit("only get is supported")
server = sys.stdin.read().strip()
entry = json.loads(table).get(server)
if entry is None:
    print("credentials not found in native keychain")
    sys.exit(1)
print(json.dumps(entry))
""")
    helper.chmod(0o755)
    return helper
