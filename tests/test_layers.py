"""The merged filesystem view: whiteouts, opaque directories, links — straight from layer tars."""

import pytest

from imagekit import (Member, directory, exe, file, hardlink, merged_view, opaque, symlink,
                      whiteout)
from pytest_dhi_cilium.image.layerstream import LayerError


def view(*layers):
    fs = merged_view(*layers)
    return fs, {path: fs.read(path) for path in ("/etc/passwd", "/etc/group") if fs.read(path) is not None}


def test_whiteout_hides_lower_entry_and_its_subtree():
    fs, _ = view([exe("bin/sh"), directory("opt/x"), file("opt/x/y")],
                 [whiteout("bin/sh"), whiteout("opt/x")])
    assert fs.entry("/bin/sh") is None
    assert fs.entry("/opt/x") is None and fs.entry("/opt/x/y") is None
    assert fs.entry("/opt").kind == "dir"


def test_whiteout_does_not_hide_same_layer_entry():
    fs, _ = view([exe("bin/a")], [whiteout("bin/a"), exe("bin/a", mode=0o700)])
    assert fs.entry("/bin/a").mode == 0o700 and fs.entry("/bin/a").layer == 1


def test_opaque_directory_hides_lower_children_keeps_own():
    fs, _ = view([file("etc/a"), file("etc/b")], [opaque("etc"), file("etc/c")])
    assert [e.path for e in fs.listdir("/etc")] == ["/etc/c"]


def test_upper_file_replaces_lower_directory():
    fs, _ = view([directory("x"), file("x/inner")], [file("x", b"now a file")])
    assert fs.entry("/x").kind == "file" and fs.entry("/x/inner") is None


def test_upper_directory_merges_with_lower_directory():
    fs, _ = view([directory("d", 0o755), file("d/a")], [directory("d", 0o700, 5, 5), file("d/b")])
    assert fs.entry("/d").mode == 0o700 and fs.entry("/d").uid == 5
    assert {e.path for e in fs.listdir("/d")} == {"/d/a", "/d/b"}


def test_layer_attribution():
    fs, _ = view([exe("bin/a")], [exe("bin/b")])
    assert fs.entry("/bin/a").layer == 0 and fs.entry("/bin/b").layer == 1


def test_relative_and_absolute_symlinks_resolve_inside_root():
    fs, _ = view([exe("usr/bin/busybox"), symlink("bin", "usr/bin"), symlink("usr/bin/sh", "busybox"),
                  symlink("sbin/abs", "/usr/bin/busybox")])
    res = fs.resolve("/bin/sh")
    assert res.found and res.path == "/usr/bin/busybox"
    assert res.hops == ["/bin -> usr/bin", "/usr/bin/sh -> busybox"]
    assert fs.resolve("/sbin/abs").path == "/usr/bin/busybox"


def test_dotdot_never_climbs_above_root():
    fs, _ = view([file("etc/passwd", b"image"), symlink("lib/evil", "../../../../etc/passwd")])
    res = fs.resolve("/lib/evil")
    assert res.found and res.path == "/etc/passwd"


def test_symlink_loop_is_detected():
    fs, _ = view([symlink("a", "b"), symlink("b", "a")])
    res = fs.resolve("/a")
    assert not res.found and res.error == "symlink loop"


def test_missing_and_not_a_directory():
    fs, _ = view([file("f")])
    assert fs.resolve("/nope").error == "not found"
    assert fs.resolve("/f/x").error == "not a directory"


def test_hard_link_shares_the_target_inode():
    fs, _ = view([exe("bin/busybox", mode=0o755, uid=0), hardlink("bin/tool", "bin/busybox")])
    entry = fs.entry("/bin/tool")
    assert entry.hardlink and entry.kind == "file" and entry.mode == 0o755 and entry.link == "/bin/busybox"


def test_dangling_hard_link_is_refused_like_docker():
    with pytest.raises(LayerError, match="link /bin/missing /bin/tool: no such file or directory"):
        view([hardlink("bin/tool", "bin/missing")])


@pytest.mark.parametrize("name, path", [("/bin/sh", "/bin/sh"), ("usr/../bin/ash", "/bin/ash"),
                                        ("/../bin/dash", "/bin/dash"), ("./bin//zsh", "/bin/zsh"),
                                        ("../../bin/ksh", "/bin/ksh")])
def test_names_land_where_dockers_chrooted_unpack_puts_them(name, path):
    fs, _ = view([Member(name, data=b"x", mode=0o755)])
    assert fs.entry(path) is not None and not fs.warnings


def test_backslash_is_an_ordinary_character_not_a_whiteout():
    fs, _ = view([exe("bin/sh")], [Member("bin\\.wh.sh", data=b"")])
    assert fs.entry("/bin/sh") is not None
    assert fs.entry("/bin\\.wh.sh") is not None


def test_captured_file_is_the_merged_one():
    fs, captured = view([file("etc/passwd", b"old")], [file("etc/passwd", b"new")])
    assert captured["/etc/passwd"] == b"new"
