"""Class 6 of issue 10: every compression Docker reads, told by magic bytes, damage in one sentence.

moby's DecompressStream picks gzip, bzip2, xz or zstd by the stream's first bytes (never the
media type), else a plain tar. The engine loads gzip, bzip2 and xz layers; Engine 20.10 reads a
zstd layer as a plain tar and fails (``unexpected EOF``) while containerd and Docker >= 23
decompress it — this reader accepts zstd (the image is valid OCI and runs there).
"""

from __future__ import annotations

import bz2
import gzip
import lzma

import pytest
import zstandard

import imagekit as ik
from conftest import outcomes
from pytest_dhi_cilium.image.layerstream import detect_compression
from test_reader_integrity import write_oci

COMPRESS = {
    "gzip": lambda b: gzip.compress(b, mtime=0),
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
    "tar": lambda b: b,
}


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_each_compression_is_read_and_recorded(run_suite, fake_operator, tmp_path, kind):
    spec = ik.dhi_like(fake_operator)
    stored = [COMPRESS[kind](b) for b in spec.layer_blobs()]
    _, report = run_suite(write_oci(tmp_path, spec, stored=stored))  # media types say gzip: ignored
    assert set(outcomes(report).values()) == {"passed"}
    assert {layer["compression"] for layer in report["images"][0]["verified"]["layers"]} == {kind}


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz"])
def test_concatenated_streams_are_one_layer(kind):
    blob = ik.layer_tar([ik.file("a", b"x" * 3000), ik.file("b", b"y")])
    fs = ik.merged_view_stored([COMPRESS[kind](blob[:1000]) + COMPRESS[kind](blob[1000:])], [blob])
    assert fs.entry("/a") is not None and fs.entry("/b") is not None


@pytest.mark.parametrize("kind, reason", [
    ("zstd", "zstd data is corrupt"), ("xz", "xz data is corrupt"), ("bzip2", "bzip2 data is corrupt"),
    ("gzip", "gzip data is corrupt"),
])
def test_a_corrupt_stream_is_one_sentence(run_suite, fake_operator, tmp_path, kind, reason):
    spec = ik.dhi_like(fake_operator)
    stored = [COMPRESS[kind](b) for b in spec.layer_blobs()]
    damaged = bytearray(stored[1])
    for i in range(24, min(len(damaged) - 16, 400)):
        damaged[i] ^= 0x5A
    stored[1] = bytes(damaged)
    result, report = run_suite(write_oci(tmp_path, spec, stored=stored))
    result.assert_outcomes(errors=1, skipped=5)
    text = report["images"][0]["errors"][0]
    assert "layer 2 of 2" in text and ("corrupt" in text or "invalid checksum" in text or "diff_id" in text), text
    assert "Traceback" not in result.stdout.str()


def test_magic_bytes_decide():
    assert [detect_compression(COMPRESS[k](b"x" * 600)[:10]) for k in ("gzip", "bzip2", "xz", "zstd")] == \
        ["gzip", "bzip2", "xz", "zstd"]
    assert detect_compression(bytes(10)) == "tar"
    assert detect_compression(b"\x50\x2a\x4d\x18" + bytes(6)) == "zstd"  # a skippable frame


@pytest.mark.docker
def test_engine_loads_gzip_bzip2_xz_and_20_10_refuses_zstd(docker_client):
    import docker.errors

    blob = ik.layer_tar([ik.file("a", b"hello")])
    config = ik.ImageSpec(layers=[[ik.file("a", b"hello")]], cmd=["/x"]).config([blob])
    for kind in ("gzip", "bzip2", "xz", "zstd"):
        data = ik.raw_docker_archive([(config, [COMPRESS[kind](blob)], None)])
        try:
            docker_client.images.load(data)
        except (docker.errors.APIError, docker.errors.ImageLoadError) as exc:
            version = docker_client.version()["Version"]
            assert kind == "zstd" and version.startswith("20.10") and "unexpected EOF" in str(exc), (kind, exc)
            continue
        docker_client.images.remove(ik.sha256(config), force=True)
        assert ik.merged_view_stored([COMPRESS[kind](blob)], [blob]).entry("/a") is not None


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz", "zstd"])
def test_reads_of_any_size_give_the_whole_stream(kind):
    """Output is bounded per read; what a decoder holds back must still come out at the end."""
    import io

    from pytest_dhi_cilium.image.layerstream import decompressed

    data = b"abc" * 50000 + bytes(300000)
    for size in (1, 7, 4096, 1 << 20):
        reader, found = decompressed(io.BytesIO(COMPRESS[kind](data)))
        out = bytearray()
        while chunk := reader.read(size):
            out += chunk
        assert found == kind and bytes(out) == data, size
