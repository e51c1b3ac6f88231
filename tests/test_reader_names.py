"""Class 1 of issue 10: what name an entry ends up with is what Docker's chrooted unpack gives it.

Docker 20.10 unpacks a layer chrooted into its own directory, so a name is cleaned and joined
under ``/`` (``../../bin/sh`` is ``/bin/sh``), and a path is walked by the kernel (a symlink of
the same layer in a parent position is followed). The tar itself is read as Go reads it: a PAX
global header renames nothing, GNU long names and PAX paths name the entry, ``'7'`` and unknown
type flags are refused. Verdicts asserted here are the ones Docker's behaviour implies; the
engine confirms the headline case, and the differential test covers the rest at random.
"""

from __future__ import annotations

import io
import tarfile

import pytest

import imagekit as ik
from conftest import check
from pytest_dhi_cilium.image.layers import docker_path, go_clean
from pytest_dhi_cilium.image.layerstream import LayerError


@pytest.mark.parametrize("name, path", [
    ("../../bin/sh", "/bin/sh"), ("/bin/sh", "/bin/sh"), ("a/../../../bin/sh", "/bin/sh"),
    ("./bin//sh", "/bin/sh"), ("/../bin/./sh", "/bin/sh"), ("bin/sh/", "/bin/sh"), ("", "/"),
    ("..", "/"), ("//", "/"), ("a/b/..", "/a"),
])
def test_names_are_cleaned_and_joined_under_the_root(name, path):
    assert docker_path(name) == path


@pytest.mark.parametrize("path, clean", [("", "."), ("//a//b/", "/a/b"), ("../a", "../a"),
                                         ("a/../../b", "../b"), ("/../a", "/a"), ("./.", ".")])
def test_go_clean(path, clean):
    assert go_clean(path) == clean


def test_dotdot_shell_lands_in_the_root_and_fails_no_shell(run_suite, archive, fake_operator):
    """The issue's first finding: ``../../bin/sh`` was ignored, Docker puts it at /bin/sh."""
    spec = ik.dhi_like(fake_operator, extra_layers=[[
        ik.Member("../../bin/busybox", data=open(ik.BUSYBOX, "rb").read(), mode=0o755),
        ik.Member("../../bin/sh", "symlink", link="busybox")]])
    _, report = run_suite(archive(spec))
    result = check(report, "no-shell")
    assert result["outcome"] == "failed"
    assert any(e.startswith("/bin/sh -> busybox") for e in result["evidence"]), result["evidence"]


@pytest.mark.docker
def test_engine_puts_dotdot_names_in_the_root(docker_client, tmp_path, fake_operator):
    """The oracle for the case above: load it, export a container, find /bin/busybox there."""
    spec = ik.ImageSpec(layers=[[ik.Member("../../bin/busybox", data=b"\x7fELF", mode=0o755),
                                 ik.Member("a/../../../opt/x", data=b"x")]], cmd=["/x"])
    blobs = spec.layer_blobs()
    config = spec.config(blobs)
    image_id = ik.sha256(config)
    docker_client.images.load(ik.write_docker_archive(tmp_path / "d.tar", spec).read_bytes())
    container = docker_client.api.create_container(image_id, command=["/x"])
    try:
        exported = b"".join(docker_client.api.export(container["Id"]))
    finally:
        docker_client.api.remove_container(container["Id"], force=True)
        docker_client.images.remove(image_id, force=True)
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        names = set(tar.getnames())
    assert {"bin/busybox", "opt/x"} <= names
    fs = ik.merged_view(*blobs)
    assert fs.entry("/bin/busybox").kind == "file" and fs.entry("/opt/x").kind == "file"


def test_hard_link_target_with_dotdot_lands_in_the_root(run_suite, archive, fake_operator):
    """``../../opt/x/runme`` as a hard link target is /opt/x/runme, like Docker's Join."""
    spec = ik.dhi_like(fake_operator, extra_layers=[[
        ik.exe("opt/x/runme", open(ik.BUSYBOX, "rb").read()),
        ik.hardlink("bin/sh", "../../opt/x/runme")]])
    _, report = run_suite(archive(spec))
    assert check(report, "no-shell")["outcome"] == "failed"


def test_a_symlinked_parent_of_the_same_layer_is_followed():
    """``bin -> usr/bin`` then ``bin/sh``: Docker creates /usr/bin/sh."""
    fs = ik.merged_view([ik.directory("usr/bin"), ik.symlink("bin", "usr/bin"), ik.exe("bin/sh")])
    assert fs.entry("/usr/bin/sh").kind == "file"
    assert fs.entry("/bin").kind == "symlink"


def test_a_symlinked_parent_from_a_lower_layer_is_not_there():
    """Each layer is unpacked into an empty directory: a lower layer's symlink does not exist
    while the upper one is unpacked, so Docker fails to create the file."""
    with pytest.raises(LayerError, match='open /bin/sh: no such file or directory'):
        ik.merged_view([ik.directory("usr/bin")], [ik.symlink("bin", "/usr/bin"), ik.exe("bin/sh")])


def test_symlink_targets_are_kept_as_stored_and_resolved_inside_the_root():
    fs = ik.merged_view([ik.exe("usr/bin/busybox"), ik.symlink("sbin/x", "../../../../usr/bin/busybox")])
    assert fs.entry("/sbin/x").link == "../../../../usr/bin/busybox"
    assert fs.resolve("/sbin/x").path == "/usr/bin/busybox"


def test_a_trailing_slash_target_names_a_directory_only():
    fs = ik.merged_view([ik.exe("bin/busybox"), ik.symlink("bin/sh", "busybox/")])
    assert not fs.resolve("/bin/sh").found


# -- the tar format, as Go reads it -----------------------------------------------------------


def _raw_tar(entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def _info(name, type_=tarfile.REGTYPE, size=0, pax=None, mode=0o755):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode = type_, size, mode
    info.pax_headers = pax or {}
    return info


def test_a_pax_global_header_renames_nothing():
    """Python's tarfile applies a global header's ``path`` to every later member; Go (and so
    Docker) does not."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"path": "bin/sh"}) as tar:
        tar.addfile(_info("opt/tool", size=4), io.BytesIO(b"\x7fELF"))
    fs = ik.merged_view(buf.getvalue())
    assert fs.entry("/opt/tool") is not None and fs.entry("/bin/sh") is None


def test_pax_path_and_gnu_long_names_name_the_entry():
    long = "usr/" + "d" * 150 + "/sh"
    pax = _raw_tar([(_info("short", size=1, pax={"path": "bin/sh"}), b"x")])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(_info(long, size=1), io.BytesIO(b"x"))
    fs = ik.merged_view(pax, buf.getvalue())
    assert fs.entry("/bin/sh") is not None and fs.entry("/short") is None
    assert fs.entry("/" + long) is not None


@pytest.mark.parametrize("flag, code", [(tarfile.CONTTYPE, 55), (b"Z", 90), (tarfile.GNUTYPE_SPARSE, 83)])
def test_type_flags_docker_does_not_handle_are_refused(flag, code):
    blob = _raw_tar([(_info("x", flag, size=0), b"")])
    with pytest.raises(LayerError, match=f"unhandled tar header type {code}"):
        ik.merged_view(blob)


def test_old_style_regular_type_with_a_slash_is_a_directory():
    fs = ik.merged_view(_raw_tar([(_info("d/", tarfile.AREGTYPE), b""), (_info("f", tarfile.AREGTYPE, 1), b"x")]))
    assert fs.entry("/d").kind == "dir" and fs.entry("/f").kind == "file"


def test_an_oversized_pax_header_is_refused_not_read_into_memory():
    blob = _raw_tar([(_info("x", size=1, pax={"comment": "c" * (1 << 20)}), b"x")])
    with pytest.raises(LayerError, match="header field too long"):
        ik.merged_view(blob)


def test_a_header_with_a_bad_checksum_is_refused_like_go():
    blob = bytearray(_raw_tar([(_info("x", size=1), b"x")]))
    blob[148:156] = b"0000000\0"
    with pytest.raises(LayerError, match="archive/tar: invalid tar header"):
        ik.merged_view(bytes(blob))


def test_the_same_name_twice_in_one_layer_is_refused_like_tar_split():
    with pytest.raises(LayerError, match="duplicates of file paths not supported"):
        ik.merged_view([ik.file("a"), ik.Member("./a", data=b"again")])


def test_the_same_path_under_two_spellings_is_replaced_not_refused():
    """tar-split compares cleaned names (``a`` and ``/a`` differ), the unpack then replaces."""
    fs = ik.merged_view([ik.file("a", b"1", mode=0o755), ik.Member("/a", data=b"22", mode=0o700)])
    assert fs.entry("/a").mode == 0o700 and fs.entry("/a").size == 2
