"""The kind cluster: its config, its life (created through pytest-kind's ``KindCluster``,
always given the kind/kubectl paths so it never downloads), and getting the image into it."""

from __future__ import annotations

import os
import subprocess
import tarfile
from contextlib import contextmanager
from pathlib import Path

from ..image.reference import DAEMON, REGISTRY, Reference, ReferenceError, parse_reference
from ..signals import sigterm_as_interrupt
from .options import ClusterSettings
from .waiting import Progress

# Cilium's own CI: no default CNI (Cilium is the CNI), and its pod/service subnets.
POD_SUBNET = "10.244.0.0/16"
SERVICE_SUBNET = "10.245.0.0/16"


class ClusterError(Exception):
    """The kind cluster could not be created or reused; one sentence why."""


class LoadError(Exception):
    """The image could not be put into the cluster in a way the chart can reference."""


def kind_config() -> dict:
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "networking": {"disableDefaultCNI": True, "podSubnet": POD_SUBNET, "serviceSubnet": SERVICE_SUBNET},
        "nodes": [{"role": "control-plane"}],
    }


def _is_name_tag(name: str) -> bool:
    """``repo/op:1.18.3`` yes; ``1.18.3`` (an OCI ref.name that is only a tag) or a digest, no."""
    try:
        ref = parse_reference(name)
    except ReferenceError:
        return False
    return ref.transport == DAEMON and "@" not in name and bool(ref.tag)


def in_cluster_name(ref: Reference, names: list[str], loaded: bool, digest: str = "") -> str:
    """The reference the chart gets as ``operator.image.override``.

    Without loading (a BYO cluster pulls from a registry) the reference is used as given; a
    ``docker://`` image by ``digest``, the manifest the image tier judged. A loaded image must
    be found by the name it carries: containerd names an imported archive after its RepoTags /
    ``io.containerd.image.name``, and a digest-only or untagged image cannot be referenced."""
    if ref.transport == REGISTRY:
        if not loaded:
            from ..image.sources.registry import daemon_name

            return daemon_name(ref, digest)
        raise LoadError(f"{ref.raw}: a docker:// image is certified on a cluster that pulls it by digest "
                        "itself: pass --dhi-kubeconfig (for kind, certify the daemon reference instead: "
                        "docker pull it and pass NAME:TAG)")
    if ref.transport == DAEMON and (not loaded or _is_name_tag(ref.location)):
        return ref.location
    if not loaded:
        raise LoadError(f"{ref.raw}: an archive cannot be pulled by a cluster; push it to a registry "
                        "and pass that reference, or use the kind cluster (no --dhi-kubeconfig)")
    for name in names:
        if _is_name_tag(name):
            return name
    carried = ", ".join(names) or "none"
    raise LoadError(f"{ref.raw}: the image carries no name:tag the node can be asked for (names: {carried}); "
                    "tag it (docker tag / docker save NAME:TAG, or an OCI archive with the "
                    "io.containerd.image.name annotation)")


def image_archive_args(kind_bin: str, cluster: str, archive: str) -> list[str]:
    """pytest-kind loads daemon images (``load_docker_image``) but not archives."""
    return [kind_bin, "load", "image-archive", "--name", cluster, archive]


def tar_oci_layout(directory: str, dest: str) -> str:
    """``kind load image-archive`` wants a tar; an ``oci:DIR`` layout is packed as-is."""
    with tarfile.open(dest, "w") as tar:
        for entry in sorted(os.listdir(directory)):
            tar.add(os.path.join(directory, entry), arcname=entry)
    return dest


def load_image(settings: ClusterSettings, cluster, ref: Reference, name: str, workdir: str,
               progress: Progress) -> None:
    """Daemon images are loaded by ``name`` (the tag the chart will reference, so the node's
    containerd knows it by that name); archives by path, named by what they carry."""
    with progress.step(f"loading {name if ref.transport == DAEMON else ref.raw} into kind cluster {cluster.name}"):
        if ref.transport == DAEMON:
            try:
                cluster.load_docker_image(name)
            except subprocess.CalledProcessError as exc:
                raise LoadError(f"`kind load docker-image {name}` failed (exit {exc.returncode}); "
                                "kind's message is in the captured output") from None
            return
        archive = ref.location
        if ref.transport == "oci":
            archive = tar_oci_layout(ref.location, os.path.join(workdir, "oci-layout.tar"))
        args = image_archive_args(str(cluster.kind_path), cluster.name, archive)
        done = subprocess.run(args, capture_output=True, text=True, timeout=settings.timeout)
        if done.returncode != 0:
            raise LoadError(f"`kind load image-archive {archive}` failed (exit {done.returncode}): "
                            + (done.stderr or done.stdout).strip()[-500:])


def _kind_clusters(kind_bin: str) -> list[str]:
    done = subprocess.run([kind_bin, "get", "clusters"], capture_output=True, text=True, timeout=60)
    return done.stdout.split() if done.returncode == 0 else []


@contextmanager
def _file_lock(path: Path):
    """Serializes `kind create` for one cluster name across processes (xdist workers,
    concurrent runs): the second finds the cluster and reuses it."""
    try:
        import fcntl
    except ImportError:  # Windows: kind runs there, locking does not
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _create(cluster, config_file: Path) -> None:
    try:
        cluster.create(config_file=config_file)
    except subprocess.CalledProcessError as exc:
        raise ClusterError(f"`kind create cluster --name {cluster.name}` failed (exit {exc.returncode}); "
                           "kind's own output is in the captured output") from None
    except Exception as exc:  # pytest-kind reading the kubeconfig kind wrote
        raise ClusterError(f"kind cluster {cluster.name}: no usable kubeconfig at {cluster.kubeconfig_path} "
                           f"({type(exc).__name__}: {exc})") from None


@contextmanager
def kind_cluster(settings: ClusterSettings, progress: Progress):
    """Yields ``(KindCluster, created)``. A cluster this run created is deleted on the way out
    — after failures and Ctrl-C too — unless --keep-cluster; one that existed is reused and left."""
    import yaml
    from pytest_kind import KindCluster

    name = settings.cluster_name
    cluster = KindCluster(name, Path(settings.kind_kubeconfig) if settings.kind_kubeconfig else None,
                          image=settings.kind_image, kind_path=Path(settings.kind_bin),
                          kubectl_path=Path(settings.kubectl_bin))
    config_file = cluster.path / "dhi-cilium-kind.yaml"
    config_file.write_text(yaml.safe_dump(kind_config(), sort_keys=False))
    created = False
    with sigterm_as_interrupt():
        try:
            with _file_lock(cluster.path / "dhi-cilium.lock"):
                existed = name in _kind_clusters(settings.kind_bin)
                created = not existed  # before create(): an interrupted create is deleted too
                if existed:  # KindCluster.create() reuses it but needs its kubeconfig
                    subprocess.run([settings.kind_bin, "export", "kubeconfig", "--name", name,
                                    "--kubeconfig", str(cluster.kubeconfig_path)],
                                   check=True, capture_output=True, timeout=60)
                verb = "reusing existing" if existed else "creating"
                with progress.step(f"{verb} kind cluster {name} (config {config_file})"):
                    _create(cluster, config_file)
            yield cluster, created
        finally:
            if created and not settings.keep_cluster:
                with progress.step(f"deleting kind cluster {name}"):
                    cluster.delete()
            elif created:
                progress.line(f"kept kind cluster {name} (--keep-cluster); delete it with "
                              f"`kind delete cluster --name {name}`")
