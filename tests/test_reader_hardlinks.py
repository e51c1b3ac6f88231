"""Class 2 of issue 10: a hard link is the target's inode, with the link header's mode and owner.

Docker creates a hard link with ``os.Link`` then ``lchown`` and ``chmod`` on the new name, so
the link header's owner and mode become the inode's — every name of it shows them (a link with
mode 0000 leaves the operator binary ``----------``). The target must be in the same layer (each
layer is unpacked into an empty directory) and not a directory, or docker load fails; chmod is
skipped when ``Lstat(linkname)`` fails or finds a symlink, and chown drops setuid/setgid.
"""

from __future__ import annotations

import pytest

import imagekit as ik
from conftest import check
from pytest_dhi_cilium.image.layerstream import LayerError

OPERATOR = "usr/local/bin/cilium-operator-generic"


def test_a_mode_0000_link_makes_the_operator_unexecutable(run_suite, archive, fake_operator):
    """The issue's second finding: the reader kept 0755, Docker shows ``----------``."""
    spec = ik.dhi_like(fake_operator)
    spec.layers[1].append(ik.hardlink("opt/op-link", OPERATOR, mode=0o000))
    _, report = run_suite(archive(spec))
    for check_id in ("entrypoint", "operator-binary"):
        assert check(report, check_id)["outcome"] == "failed", check(report, check_id)
    fs = ik.merged_view(*spec.layers)
    assert fs.entry("/" + OPERATOR).mode == 0o000 and fs.entry("/opt/op-link").mode == 0o000


def test_the_link_header_owner_and_mode_apply_to_every_name():
    fs = ik.merged_view([ik.exe("bin/tool", mode=0o755, uid=0),
                         ik.hardlink("opt/alias", "bin/tool", mode=0o700, uid=65532, gid=65532)])
    for path in ("/bin/tool", "/opt/alias"):
        entry = fs.entry(path)
        assert (entry.mode, entry.uid, entry.gid) == (0o700, 65532, 65532), entry


def test_the_last_link_of_a_chain_wins():
    fs = ik.merged_view([ik.exe("a", mode=0o755, uid=1), ik.hardlink("b", "a", mode=0o711, uid=2),
                         ik.hardlink("c", "b", mode=0o700, uid=3)])
    assert {(fs.entry(p).mode, fs.entry(p).uid) for p in ("/a", "/b", "/c")} == {(0o700, 3)}


def test_chown_drops_setuid_when_chmod_is_skipped():
    """A linkname Lstat cannot resolve (``c/../a`` through a file) skips the chmod; the chown
    still happens and the kernel drops setuid."""
    fs = ik.merged_view([ik.exe("a", mode=0o4755), ik.file("c"),
                         ik.Member("d", "hardlink", mode=0o700, uid=7, link="c/../a")])
    assert (fs.entry("/a").mode, fs.entry("/a").uid) == (0o755, 7)


@pytest.mark.parametrize("layers, reason", [
    ([[ik.exe("a")], [ik.hardlink("b", "a")]], "link /a /b: no such file or directory"),
    ([[ik.directory("d"), ik.hardlink("b", "d")]], "link /d /b: operation not permitted"),
    ([[ik.hardlink("b", "nope")]], "link /nope /b: no such file or directory"),
    ([[ik.exe("a"), ik.hardlink("a", "a")]], "link /a /a: no such file or directory"),
], ids=["lower-layer", "directory", "missing", "itself"])
def test_links_docker_refuses(layers, reason):
    with pytest.raises(LayerError, match=reason):
        ik.merged_view(*layers)


@pytest.mark.docker
@pytest.mark.parametrize("layers", [
    [[ik.exe("a")], [ik.hardlink("b", "a")]],
    [[ik.directory("d"), ik.hardlink("b", "d")]],
], ids=["lower-layer", "directory"])
def test_engine_refuses_those_links_for_the_same_reason(docker_client, tmp_path, layers):
    spec = ik.ImageSpec(layers=layers, cmd=["/x"])
    with pytest.raises(LayerError) as ours:
        ik.merged_view(*spec.layer_blobs())
    import docker.errors

    with pytest.raises((docker.errors.APIError, docker.errors.ImageLoadError)) as theirs:
        docker_client.images.load(ik.write_docker_archive(tmp_path / "l.tar", spec).read_bytes())
    reason = str(theirs.value).split("): ", 1)[-1].strip()
    assert reason and reason in str(ours.value), (str(theirs.value), str(ours.value))


def test_a_link_to_a_whited_out_name_is_a_whiteout_too():
    """``.wh.a`` makes a 0/0 device at a; a link to it is one more whiteout: both names gone."""
    fs = ik.merged_view([ik.exe("a")], [ik.whiteout("a"), ik.hardlink("h", "a")])
    assert fs.entry("/a") is None and fs.entry("/h") is None


def test_a_link_through_a_symlinked_directory_of_the_same_layer():
    fs = ik.merged_view([ik.directory("real"), ik.exe("real/f"), ik.symlink("s", "real"),
                         ik.hardlink("h", "s/f", mode=0o700)])
    assert fs.entry("/h").hardlink and fs.entry("/real/f").mode == 0o700
