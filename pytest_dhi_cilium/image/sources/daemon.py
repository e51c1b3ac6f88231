"""The local Docker daemon: an image pulled per --dhi-pull and read through ``docker save``."""

from __future__ import annotations

import os
import shutil
import tempfile

from ..reference import Reference
from .base import ImageSource, Platform, RawImage, SourceError, short_error
from .docker_archive import DockerArchiveSource


class EngineUnreachable(SourceError):
    """No Docker engine answers. The caller says what applies (it knows the tier and input)."""


def docker_client():
    """A docker SDK client, or EngineUnreachable saying where it looked and why it failed."""
    import docker  # imported here: archive inputs never pay for the SDK

    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except Exception as exc:  # DockerException, requests errors, socket errors
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise EngineUnreachable(f"cannot reach a Docker engine at {host} ({short_error(exc)})") from None


class DaemonSource(ImageSource):
    """An image in the local Docker engine, pulled per --dhi-pull, read via ``docker save``."""

    def __init__(self, ref: Reference, pull: str = "missing"):
        import docker.errors

        self.ref = ref
        self.client = docker_client()
        name = ref.location
        try:
            if pull == "always":
                self._pull(name)
            try:
                self.image = self.client.images.get(name)
            except docker.errors.ImageNotFound:
                if pull == "never":
                    raise SourceError(
                        f"{ref.raw}: not in the local Docker engine and --dhi-pull=never "
                        "(docker pull it, or --dhi-pull=missing)"
                    ) from None
                self.image = self._pull(name)
        except docker.errors.APIError as exc:
            self.client.close()
            raise SourceError(f"{ref.raw}: Docker engine error: {short_error(exc)}") from None
        except BaseException:
            self.client.close()
            raise
        self._tmp: str | None = None
        self._archive: DockerArchiveSource | None = None

    def _pull(self, name: str):
        import docker.errors

        try:
            return self.client.images.pull(name)
        except docker.errors.APIError as exc:
            raise SourceError(f"{self.ref.raw}: pull failed: {short_error(exc)}") from None

    def platforms(self) -> list[Platform]:
        a = self.image.attrs
        return [Platform(a.get("Os", ""), a.get("Architecture", ""), a.get("Variant", "") or "")]


    def read(self, platform: Platform | None = None) -> RawImage:
        if self._archive is None:
            self._archive = self._spool()
        raw = self._archive.read(platform)
        repo_digests = self.image.attrs.get("RepoDigests") or []
        if repo_digests:
            # A pulled image's registry manifest digest: the engine checked it when it pulled,
            # but `docker save` has no manifest, so it is not verified here and is not `digest`.
            raw.repo_digest = repo_digests[0].split("@", 1)[1]
        raw.names = list(self.image.tags) or [self.ref.location]
        return raw

    def _spool(self) -> DockerArchiveSource:
        # `docker save` streams manifest.json last, so the stream is written to a private
        # temporary file (mkdtemp: mode 0700) and then read like any docker-archive.
        self._tmp = tempfile.mkdtemp(prefix="dhi-cilium-")
        path = os.path.join(self._tmp, "image.tar")
        try:
            with open(path, "wb") as out:
                for chunk in self.image.save(chunk_size=1 << 20, named=False):
                    out.write(chunk)
        except Exception as exc:
            self.close()
            raise SourceError(f"{self.ref.raw}: docker save failed: {short_error(exc)}") from None
        archive_ref = Reference(f"docker-archive:{path}", "docker-archive", path)
        return DockerArchiveSource(archive_ref)

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()
            self._archive = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self.client.close()
