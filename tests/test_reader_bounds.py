"""Class 4 of issue 10: bounded by construction — nothing hangs, nothing grows without limit.

Only regular files are opened (a FIFO or a character device as the archive, a blob or
index.json is one sentence, at once); compression is told by magic bytes (a zero-filled file is
an empty tar, not a minute of trial decoding); duplicate index descriptors collapse to one
target; index nesting and the number of targets are capped; inflated bytes and entries per
layer (and inflated bytes per image) are capped by overridable limits, each failing with one
sentence. Every test runs under an alarm so a regression fails instead of hanging CI.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import tarfile

import pytest

import imagekit as ik
from conftest import outcomes
from pytest_dhi_cilium.image.layerstream import Limits, parse_size


@pytest.fixture(autouse=True)
def no_hang():
    def expired(*_):
        raise TimeoutError("the reader hung (no answer within 60 s)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def first_message(report) -> str:
    return report["images"][0]["errors"][0]


def test_a_fifo_as_the_archive_is_refused_at_once(run_suite, tmp_path):
    fifo = tmp_path / "image.tar"
    os.mkfifo(fifo)
    result, report = run_suite(f"docker-archive:{fifo}")
    result.assert_outcomes(errors=1, skipped=5)
    assert "is a FIFO, not a regular file" in first_message(report)


def test_a_character_device_as_the_archive_is_refused(run_suite):
    _, report = run_suite("docker-archive:/dev/zero")
    assert "'/dev/zero' is a character device, not a regular file" in first_message(report)


@pytest.mark.parametrize("what", ["index.json", "layer", "config"])
def test_a_fifo_or_directory_inside_an_oci_layout_is_refused(run_suite, fake_operator, tmp_path, what):
    layout = ik.write_oci_layout(tmp_path / "l", [ik.dhi_like(fake_operator)])
    if what == "index.json":
        victim = layout / "index.json"
    else:
        manifest = json.loads((layout / "blobs/sha256" / json.loads((layout / "index.json").read_text())
                               ["manifests"][0]["digest"].split(":")[1]).read_text())
        digest = manifest["layers"][0]["digest"] if what == "layer" else manifest["config"]["digest"]
        victim = layout / "blobs/sha256" / digest.split(":")[1]
    victim.unlink()
    os.mkfifo(victim)
    _, report = run_suite(f"oci:{layout}")
    assert "is a FIFO, not a regular file" in first_message(report)
    victim.unlink()
    victim.mkdir()
    _, report = run_suite(f"oci:{layout}")
    assert "is a directory, not a regular file" in first_message(report) or "no index.json" in first_message(report)


def test_a_zero_filled_file_is_an_empty_tar_not_a_decoding_probe(run_suite, tmp_path):
    zeros = tmp_path / "zeros.tar"
    with open(zeros, "wb") as out:
        out.truncate(256 << 20)  # sparse: 256 MiB of zeros
    _, report = run_suite(f"docker-archive:{zeros}")
    assert "no manifest.json in the archive" in first_message(report)


def test_garbage_is_one_readable_sentence(run_suite, tmp_path):
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(os.urandom(4096))
    result, report = run_suite(f"docker-archive:{garbage}")
    assert first_message(report).endswith("garbage.tar' is not a tar archive (archive/tar: invalid tar header)")
    assert "Traceback" not in result.stdout.str()


def test_a_gzipped_docker_save_is_read_like_docker_load_reads_it(run_suite, fake_operator, tmp_path):
    plain = ik.write_docker_archive(tmp_path / "p.tar", ik.dhi_like(fake_operator), ["x:1"])
    packed = tmp_path / "p.tar.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    _, report = run_suite(f"docker-archive:{packed}")
    assert set(outcomes(report).values()) == {"passed"}


def test_a_compressed_oci_archive_reads_like_the_plain_one(run_suite, fake_operator, tmp_path):
    """Its small members (index, manifests, configs) come from the index scan, its large ones
    (a 2 MiB layer) are inflated again from the start: the verdicts and digests are the plain
    archive's, for each platform."""
    import zstandard

    amd = ik.dhi_like(fake_operator, extra_layers=[[ik.file("opt/big", os.urandom(2 << 20))]])
    arm = ik.dhi_like(fake_operator, architecture="arm64", variant="v8")
    plain = ik.write_oci_layout(tmp_path / "multi.tar", [amd, arm], as_archive=True)
    packed = tmp_path / "multi.tar.zst"
    packed.write_bytes(zstandard.ZstdCompressor().compress(plain.read_bytes()))

    def judged(archive):
        _, report = run_suite(f"oci-archive:{archive}", args=("--dhi-platform=all",))
        return [(i["platform"], i["digest"], i["config_digest"], i["result"], i["verified"]["layers"])
                for i in report["images"]]

    expected = judged(plain)
    assert [e[0] for e in expected] == ["linux/amd64", "linux/arm64/v8"]
    assert judged(packed) == expected


def test_a_compressed_archive_is_not_inflated_again_for_its_manifest(fake_operator, tmp_path):
    """`docker save | gzip` puts manifest.json after the layers: it is kept from the index scan,
    not read by inflating the whole archive once more (bytes read counted, not time)."""
    from pytest_dhi_cilium.image.reference import parse_reference
    from pytest_dhi_cilium.image.sources import TarBlobs

    def bytes_read() -> int:
        with open("/proc/self/io") as io_:
            return int(dict(line.split(": ") for line in io_.read().splitlines())["rchar"])

    spec = ik.dhi_like(fake_operator, extra_layers=[[ik.file("opt/big", os.urandom(4 << 20))]])
    plain = ik.write_docker_archive(tmp_path / "p.tar", spec, ["x:1"])
    packed = tmp_path / "p.tar.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    blobs = TarBlobs(parse_reference(f"docker-archive:{packed}"))
    try:
        before = bytes_read()
        manifest = json.loads(blobs.read("manifest.json"))
        config = blobs.read(manifest[0]["Config"])
        assert bytes_read() - before < 1 << 20
    finally:
        blobs.close()
    assert ik.sha256(config) == ik.image_id(spec)


def _index_layout(tmp_path, fake_operator, descriptors) -> str:
    layout = ik.write_oci_layout(tmp_path / "l", [ik.dhi_like(fake_operator)])
    index = json.loads((layout / "index.json").read_text())
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2,
                                                   "manifests": descriptors(index["manifests"][0], layout)}))
    return f"oci:{layout}"


def test_twenty_thousand_copies_of_one_manifest_are_one_target(run_suite, fake_operator, tmp_path):
    ref = _index_layout(tmp_path, fake_operator, lambda desc, _: [desc] * 20000)
    result, report = run_suite(ref)
    result.assert_outcomes(passed=6)
    assert len(report["images"]) == 1


def test_deeply_nested_indexes_are_refused(run_suite, fake_operator, tmp_path):
    def nest(desc, layout):
        for _ in range(12):
            data = json.dumps({"schemaVersion": 2, "manifests": [desc, desc]}).encode()
            (layout / "blobs/sha256" / ik.sha256(data).split(":")[1]).write_bytes(data)
            desc = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": ik.sha256(data),
                    "size": len(data)}
        return [desc]

    _, report = run_suite(_index_layout(tmp_path, fake_operator, nest))
    assert "image indexes nested more than 4 deep" in first_message(report)


def test_too_many_distinct_manifests_are_refused(run_suite, fake_operator, tmp_path):
    def many(desc, _):
        return [dict(desc, digest=ik.sha256(str(i).encode())) for i in range(300)]

    _, report = run_suite(_index_layout(tmp_path, fake_operator, many))
    assert "the layout lists more than 256 image manifests" in first_message(report)


def _bomb_layer(inflated: int) -> bytes:
    """A layer holding one file of ``inflated`` zero bytes, gzip-compressed (about 1000:1)."""
    info = tarfile.TarInfo("bomb")
    info.size = inflated
    header = info.tobuf(tarfile.USTAR_FORMAT)
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=1) as gz:
        gz.write(header)
        chunk = bytes(1 << 20)
        for _ in range(inflated >> 20):
            gz.write(chunk)
        gz.write(bytes(1024))
    return out.getvalue()


def test_a_compression_bomb_stops_at_the_layer_limit(run_suite, fake_operator, tmp_path, monkeypatch):
    monkeypatch.setenv("DHI_MAX_LAYER_BYTES", "32MiB")
    spec = ik.dhi_like(fake_operator)
    blobs = spec.layer_blobs()
    bomb = _bomb_layer(64 << 20)
    archive = tmp_path / "bomb.tar"
    archive.write_bytes(ik.raw_docker_archive([(spec.config(blobs[:1] + [b"x"]), blobs[:1] + [bomb], ["x:1"])]))
    result, report = run_suite(f"docker-archive:{archive}")
    result.assert_outcomes(errors=1, skipped=5)
    assert "layer 2 of 2" in first_message(report)
    assert "inflates to more than 32 MiB (DHI_MAX_LAYER_BYTES" in first_message(report)


def test_the_image_limit_covers_all_layers(run_suite, fake_operator, tmp_path, monkeypatch):
    monkeypatch.setenv("DHI_MAX_IMAGE_BYTES", "20KiB")
    archive = ik.write_docker_archive(tmp_path / "i.tar", ik.dhi_like(fake_operator, extra_layers=[
        [ik.file("opt/a", os.urandom(12 << 10))], [ik.file("opt/b", os.urandom(12 << 10))]]), ["x:1"])
    _, report = run_suite(f"docker-archive:{archive}")
    assert "(DHI_MAX_IMAGE_BYTES" in first_message(report)


def test_too_many_entries_in_a_layer_stop_with_the_limit_named(run_suite, fake_operator, tmp_path, monkeypatch):
    monkeypatch.setenv("DHI_MAX_LAYER_ENTRIES", "100")
    archive = ik.write_docker_archive(tmp_path / "e.tar", ik.dhi_like(fake_operator, extra_layers=[
        [ik.file(f"opt/f{i}") for i in range(101)]]), ["x:1"])
    _, report = run_suite(f"docker-archive:{archive}")
    assert "layer 3 of 3" in first_message(report)
    assert "has more than 100 entries (DHI_MAX_LAYER_ENTRIES" in first_message(report)


def test_a_bad_limit_value_is_one_sentence(run_suite, fake_operator, tmp_path, monkeypatch):
    monkeypatch.setenv("DHI_MAX_LAYER_BYTES", "lots")
    archive = ik.write_docker_archive(tmp_path / "b.tar", ik.dhi_like(fake_operator), ["x:1"])
    _, report = run_suite(f"docker-archive:{archive}")
    assert "DHI_MAX_LAYER_BYTES='lots' is not a size (e.g. 4GiB, 512M or 1000000)" in first_message(report)


def test_default_limits_and_their_spelling():
    assert Limits() == Limits(layer_bytes=1 << 30, layer_entries=1_000_000, image_bytes=2 << 30)
    assert Limits.from_env({"DHI_MAX_LAYER_BYTES": "512MiB", "DHI_MAX_LAYER_ENTRIES": "2000000"}) == \
        Limits(layer_bytes=512 << 20, layer_entries=2_000_000)
    assert [parse_size(t, "X") for t in ("4G", "4GiB", "4gb", "1000", "1k")] == [4 << 30] * 3 + [1000, 1024]
