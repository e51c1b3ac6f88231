"""``docker://REGISTRY/REPO:TAG`` (or ``@sha256:…``): an image read straight from a registry over
the OCI distribution API, every platform of it, with no daemon and nothing written to disk.

The protocol (the WWW-Authenticate challenge, the Bearer token flow with a ``pull`` scope, Basic,
redirects) is python-dxf's, through its authenticated request; the credentials are the Docker config's, looked up by
the docker SDK (``auths``, ``credsStore``, ``credHelpers``, ``DOCKER_CONFIG``) exactly as
``docker pull`` would. This module only decides what to ask for and checks what comes back:
every JSON document (index, manifest, config) is hashed against the digest it was asked by
(base.verify_document) and decoded as the Go type that reads it, and the layers are handed up as
streams of the bytes as stored, with their descriptor's digest and size, for the model to verify
while it reads them (model.build_image, the one place every transport's layers are verified).

One source is pinned to one digest: the tag is resolved once (``digest``) and everything else
is read by digest; the plugin resolves a tag once per run and reads every tier by that digest
(``pinned``), then asks again at the end so a tag that moved is noticed.
"""

from __future__ import annotations

import functools
import io
import ipaddress
import os
import re
import warnings
from typing import IO, Iterable

from ..config import OCI_INDEX_SCHEMA, OCI_MANIFEST_SCHEMA
from ..reference import DOCKER_HUB, Reference, split_registry_name
from .base import (DIGEST, INDEX_TYPES, MAX_JSON_BYTES, IndexedSource, LayerBlob, RawImage, SourceError,
                   decode_config, decode_document, diff_ids_of, index_targets, platform_of, read_limited,
                   sha256_digest, short_error, verify_document)

# What a manifest or index says it is, read before knowing which of the two it is.
_VERSIONED = ("struct", "Versioned", "specs.Versioned", {"schemaVersion": "int", "mediaType": "string"})
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
# What a manifest GET accepts (python-dxf's list: schema 1 too, so that it is named when refused).
MANIFEST_ACCEPT = ", ".join(("application/vnd.docker.distribution.manifest.v1+json",) + MANIFEST_TYPES
                            + INDEX_TYPES)
DOCKER_HUB_API = "registry-1.docker.io"
TIMEOUT = 60  # seconds per request (a blob's read timeout is per chunk, not for the whole blob)
CHUNK = 1 << 20


def is_loopback(host: str) -> bool:
    """Docker talks plain HTTP to 127.0.0.0/8, ::1 and localhost without being told to."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def daemon_name(ref: Reference, digest: str) -> str:
    """``HOST/REPO@sha256:…``: what a Docker engine or a cluster pulls to get exactly ``digest``."""
    host, repo, _, _ = split_registry_name(ref.location)
    return f"{host}/{repo}@{digest}"


def pinned(ref: Reference, digest: str) -> Reference:
    """The same reference, read by ``digest`` from now on (a tag it names stays for the record)."""
    location = ref.location.split("@", 1)[0] + f"@{digest}"
    return Reference(ref.raw, ref.transport, location, ref.selector)


class RegistrySource(IndexedSource):
    def __init__(self, ref: Reference, insecure: Iterable[str] = ()):
        self.ref = ref
        self.host, self.repo, self.tag, self.asked_digest = split_registry_name(ref.location)
        self.api_host = DOCKER_HUB_API if self.host == DOCKER_HUB else self.host
        self.login_name = "" if self.host == DOCKER_HUB else self.host  # `docker login NAME`
        self._credentials = _Credentials(self.host)
        self._client = None
        self._cache: dict[str, RawImage] = {}
        try:
            self._client = self._connect(self.host in set(insecure) or is_loopback(self.host))
            # One GET: the digest the reference resolves to (all a pin or a moved-tag check needs).
            self._top = self._manifest(self.asked_digest or self.tag)  # bytes, media type, digest
            self.digest = self._top[2]
            self.index_digest = self.digest if self._top[1] in INDEX_TYPES else ""
        except BaseException:
            self.close()
            raise

    @functools.cached_property
    def targets(self) -> list[tuple[dict, list[str]]]:
        """The image manifests, listed when first asked for (nested indexes fetched then)."""
        data, media_type, digest = self._top
        if not self.index_digest:
            return [({"digest": digest, "mediaType": media_type, "size": len(data)}, [])]
        return index_targets(self._index(data, digest), self._nested_index, self.ref.raw, f"the index {digest}")

    # -- talking to the registry ----------------------------------------------------------------

    def _connect(self, insecure: bool):
        """HTTPS, verified; for an insecure registry (loopback, --dhi-insecure-registry) HTTPS
        without verification when it answers HTTPS, else plain HTTP — what Docker does."""
        import dxf

        class Client(dxf.DXF):
            def authenticate(self, *args, **kwargs):
                # dxf refuses to send credentials over plain HTTP; Docker sends them to the
                # registries it was told are insecure (and loopback), and so do we.
                plain, self._insecure = self._insecure, False
                try:
                    return super().authenticate(*args, **kwargs)
                finally:
                    self._insecure = plain

        def client(plain: bool, verify, auth=self._credentials.authenticate) -> dxf.DXF:
            c = Client(self.api_host, self.repo, auth, insecure=plain, tlsverify=verify, timeout=TIMEOUT)
            c.__enter__()  # one requests.Session: connections are reused for every blob
            return c

        if not insecure:
            ca = f"/etc/docker/certs.d/{self.host}/ca.crt"  # Docker's per-registry CA
            return client(False, ca if os.path.isfile(ca) else True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                probe = client(False, False, auth=None)
                try:
                    probe.api_version_check()  # GET /v2/: any HTTP answer means HTTPS works
                finally:
                    probe.__exit__(None, None, None)
        except Exception as exc:  # TLS refused or not spoken there: plain HTTP, as Docker falls back
            if not _is_http_status(exc):
                return client(True, False)
        return client(False, False)

    def _talk(self, what: str, call, *args, **kwargs):
        """One registry call; every failure becomes one sentence naming the registry."""
        try:
            return call(*args, **kwargs)
        except SourceError:
            raise
        except Exception as exc:
            raise self._error(what, exc) from None

    def _error(self, what: str, exc: Exception) -> SourceError:
        import dxf.exceptions
        import requests

        host, raw = self.host, self.ref.raw
        if isinstance(exc, dxf.exceptions.DXFUnauthorizedError):
            return SourceError(self._credentials.unauthorized(raw, host, self.repo, self.login_name))
        if isinstance(exc, requests.exceptions.SSLError):
            return SourceError(f"{raw}: TLS failure talking to the registry {host} ({_cause(exc)}); "
                               f"if it serves plain HTTP, or a certificate you trust but cannot verify, "
                               f"pass --dhi-insecure-registry={host}")
        if isinstance(exc, requests.exceptions.Timeout):
            return SourceError(f"{raw}: the registry {host} did not answer within {TIMEOUT}s ({what})")
        if isinstance(exc, requests.exceptions.ConnectionError):
            return SourceError(f"{raw}: cannot reach the registry {host} ({_cause(exc)}); check the "
                               "address, the port and your network")
        if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
            return SourceError(self._http_error(what, exc.response))
        return SourceError(f"{raw}: reading {what} from {host} failed ({short_error(exc)})")

    def _http_error(self, what: str, response) -> str:
        raw, host, status = self.ref.raw, self.host, response.status_code
        codes = _error_codes(response)
        if status == 401:
            return self._credentials.unauthorized(raw, host, self.repo, self.login_name)
        if status == 403 or "DENIED" in codes:
            return (f"{raw}: the registry {host} denies {self._credentials.who()} pulling {self.repo} "
                    "(HTTP 403 forbidden); check the account's permissions")
        if status == 404 and "NAME_UNKNOWN" in codes:
            return f"{raw}: the registry {host} has no repository {self.repo}"
        if status == 404 and what.startswith("manifest"):
            name = f"{self.repo}@{self.asked_digest}" if self.asked_digest else f"{self.repo}:{self.tag}"
            return f"{raw}: the registry {host} has no {name} (unknown repository or tag)"
        return f"{raw}: the registry {host} answered HTTP {status} {response.reason} for {what}"

    # -- manifests -------------------------------------------------------------------------------

    def _manifest(self, alias: str, expect: dict | None = None) -> tuple[bytes, str, str]:
        """A manifest or index by tag or digest: its bytes, media type and verified digest."""
        what = f"manifest {alias}"
        stream, response = self._get(what, "manifests/" + alias, Accept=MANIFEST_ACCEPT)
        data = read_limited(stream, f"{self.ref.raw}: {what} from {self.host}")
        doc = decode_document(data, _VERSIONED, f"{self.ref.raw}: {what}")
        media_type = doc.get("mediaType") or response.headers.get("Content-Type", "").split(";")[0].strip()
        if media_type not in INDEX_TYPES + MANIFEST_TYPES:  # before the digest: schema 1 signs its own
            served = f"{self.repo}@{alias}" if DIGEST.match(alias) else f"{self.repo}:{alias}"
            raise SourceError(
                f"{self.ref.raw}: the registry {self.host} serves {served} as "
                f"{media_type or 'a document without a media type'}, which this plugin does not read "
                "(it reads OCI image indexes and manifests, Docker manifest lists and schema 2 manifests)")
        digest = sha256_digest(data)
        claimed = alias if DIGEST.match(alias) else response.headers.get("Docker-Content-Digest", "")
        if claimed or expect:
            verify_document(data, claimed or digest, (expect or {}).get("size"),
                            f"{self.ref.raw}: {what} from {self.host}")
        return data, media_type, digest

    def _index(self, data: bytes, digest: str) -> dict:
        return decode_document(data, OCI_INDEX_SCHEMA, f"{self.ref.raw}: index {digest}")

    def _nested_index(self, desc: dict) -> dict:
        data, _, _ = self._manifest(desc["digest"], desc)
        return self._index(data, desc["digest"])

    def _read_target(self, desc: dict, names: list[str]) -> RawImage:
        """One image manifest; the names it goes by are the tag (a registry's ref.name
        annotations, if any, are not)."""
        digest = desc["digest"]
        if digest == self.digest:  # the tag's own document (an image manifest, or refused below)
            data, media_type, _ = self._top
        else:
            data, media_type, _ = self._manifest(digest, desc)
        if media_type not in MANIFEST_TYPES:
            raise SourceError(f"{self.ref.raw}: {digest} is a {media_type}, not an image manifest")
        manifest = decode_document(data, OCI_MANIFEST_SCHEMA, f"{self.ref.raw}: manifest {digest}")
        config_desc = manifest.get("config") or {}
        config_digest = str(config_desc.get("digest", ""))
        config_bytes = self._json_blob(config_digest, config_desc.get("size"), "config")
        descriptors = manifest.get("layers") or []
        config = decode_config(config_bytes, len(descriptors), f"{self.ref.raw}: config {config_digest}")
        diff_ids = diff_ids_of(config)
        layers = []
        for layer, diff_id in zip(descriptors, diff_ids):
            blob = str((layer or {}).get("digest", ""))
            if not DIGEST.match(blob) or not isinstance(layer.get("size"), int):
                raise SourceError(f"{self.ref.raw}: manifest {digest} has a layer descriptor without "
                                  "a sha256 digest and a size")
            layers.append(LayerBlob(diff_id, (lambda b=blob: self._open_blob(b)), layer["size"], blob))
        names = [f"{self.host}/{self.repo}:{self.tag}"] if self.tag else []
        return RawImage(config, config_digest, digest, platform_of(config), layers, names, config_bytes,
                        verified={"manifest": digest, "config": config_digest})

    # -- blobs -----------------------------------------------------------------------------------

    def _json_blob(self, digest: str, size, what: str) -> bytes:
        if not DIGEST.match(digest):
            raise SourceError(f"{self.ref.raw}: refusing malformed {what} digest {digest!r}")
        if isinstance(size, int) and size > MAX_JSON_BYTES:
            raise SourceError(f"{self.ref.raw}: {what} {digest} is {size} bytes, too big for JSON")
        what = f"{self.ref.raw}: {what} {digest} from {self.host}"
        return verify_document(read_limited(self._open_blob(digest), what), digest,
                               size if isinstance(size, int) else None, what)

    def _open_blob(self, digest: str) -> IO[bytes]:
        """The blob's bytes as stored, streamed from the registry as they are read and hashed
        once, by whoever reads them: verify_document, or model.build_image for layers (so an
        altered layer is reported like any transport's) — not dxf's pull_blob, which hashes
        again."""
        return self._get(f"blob {digest}", "blobs/" + digest)[0]

    def _get(self, what: str, path: str, **headers: str) -> tuple[IO[bytes], object]:
        """GET a path of the repository through dxf's authenticated request (its 401 challenge
        answered, redirects followed), streamed: the body as a file that reads the response as
        it arrives (nothing is held beyond what is read) and closes it, and the response."""
        response = self._talk(what, self._client._request, "get", path, stream=True, headers=headers)
        return io.BufferedReader(_ChunkStream(response, lambda exc: self._error(what, exc)), CHUNK), response

    def close(self) -> None:
        if self._client is not None:
            self._client.__exit__(None, None, None)
            self._client = None



class _ChunkStream(io.RawIOBase):
    """A file-like view of a streamed HTTP response body, read in place; closing it closes
    the response (its connection goes back to the session's pool, or is dropped mid-body)."""

    def __init__(self, response, error):
        super().__init__()
        self._response = response
        self._chunks = response.iter_content(CHUNK)
        self._error = error
        self._view = memoryview(b"")

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._view:
            try:
                self._view = memoryview(next(self._chunks))
            except StopIteration:
                return 0
            except SourceError:
                raise
            except Exception as exc:  # connection dropped, read timed out
                raise self._error(exc) from None
        n = min(len(buffer), len(self._view))
        buffer[:n] = self._view[:n]
        self._view = self._view[n:]
        return n


class _Credentials:
    """The Docker config's credentials for one registry, used when the registry asks for them."""

    def __init__(self, host: str):
        self.host = host
        self.source = "the Docker config"
        self.used = ""  # whose credentials were sent, once they were

    def lookup(self) -> dict:
        import docker.auth
        import docker.errors

        try:
            config = docker.auth.load_config()
            entry = config.resolve_authconfig(self.host) or {}
        except docker.errors.DockerException as exc:  # a credential helper failed, a broken file
            raise SourceError(f"the Docker config's credentials for {self.host} cannot be read "
                              f"({short_error(exc)})") from None
        self.source = (f"credential helper docker-credential-{config.get_credential_store(self.host)}"
                       if config.get_credential_store(self.host) else "the Docker config")
        return {k.lower(): v for k, v in entry.items()}

    def authenticate(self, client, response) -> None:
        """dxf's hook on a 401: answer the challenge (Bearer or Basic) with what is stored."""
        entry = self.lookup()
        if entry.get("identitytoken") and not entry.get("password"):
            raise SourceError(f"the Docker config holds an identity token for {self.host}, which this "
                              f"plugin cannot use; log in with a username and password or access token")
        if entry.get("username") and entry.get("password") is not None:
            self.used = f"{entry['username']} (from {self.source})"
            client.authenticate(entry["username"], entry["password"], response=response, actions=["pull"])
        else:
            client.authenticate(response=response, actions=["pull"])

    def who(self) -> str:
        return self.used or "anonymous pulls"

    def unauthorized(self, raw: str, host: str, repo: str, login: str) -> str:
        login = f"docker login {login}".strip()
        if self.used:
            return (f"{raw}: the registry {host} refused the credentials of {self.used} for {repo} "
                    f"(HTTP 401 unauthorized); run `{login}` again")
        return (f"{raw}: the registry {host} requires credentials to pull {repo} (HTTP 401 "
                f"unauthorized) and the Docker config has none for it; run `{login}`")


def _is_http_status(exc: Exception) -> bool:
    import dxf.exceptions
    import requests

    return isinstance(exc, (requests.exceptions.HTTPError, dxf.exceptions.DXFUnauthorizedError))


def _error_codes(response) -> set[str]:
    try:
        return {str(e.get("code")) for e in response.json().get("errors") or [] if isinstance(e, dict)}
    except Exception:
        return set()


def _cause(exc: Exception) -> str:
    """The innermost reason of a requests connection error, e.g. ``connection refused`` or
    ``[SSL: WRONG_VERSION_NUMBER] wrong version number``, rather than urllib3's retry story."""
    text = short_error(exc)
    ssl = re.search(r"(\[SSL: [A-Z_]+\] [^'\"(]+|certificate verify failed: [^'\"(]+)", text)
    if ssl:
        return ssl.group(1).strip()
    for marker in ("Connection refused", "Name or service not known", "No route to host",
                   "Temporary failure in name resolution", "Network is unreachable"):
        if marker in text:
            return marker.lower()
    return text
