"""Class 3 of issue 10: every verdict is bound to digests verified on the bytes judged.

A layer blob is hashed as it streams and must match its descriptor's digest and size; its
uncompressed stream must match the config's diff_id (what ``docker load`` checks); a gzip
stream is read to its trailer (a bad CRC fails docker load too); an index's manifests and a
manifest's config must match their descriptors. Each mismatch is an error for that image
naming the blob, the expected and the actual digest, and the report carries ``verified``.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

import imagekit as ik
from conftest import outcomes

SHELL_LAYER = [ik.host_file("bin/busybox", ik.BUSYBOX), ik.symlink("bin/sh", "busybox")]
CLEAN_LAYER = [ik.file("opt/readme", b"nothing to see\n")]


def write_oci(target: Path, spec: ik.ImageSpec, *, stored: list[bytes] | None = None,
              layer_files: dict[int, bytes] | None = None, edit_manifest=None,
              manifest_file: bytes | None = None, config_file: bytes | None = None) -> str:
    """An OCI layout of ``spec`` (gzip layers), with chosen parts tampered with: the bytes
    of layer blob files, the manifest before hashing, the stored manifest or config files."""
    blobs = spec.layer_blobs()
    stored = stored or [gzip.compress(b, mtime=0) for b in blobs]
    config = spec.config(blobs)
    files = {ik.sha256(config): config_file or config}
    layers = []
    for i, blob in enumerate(stored):
        digest = ik.sha256(blob)
        files[digest] = (layer_files or {}).get(i, blob)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "digest": digest, "size": len(blob)})
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": ik.sha256(config), "size": len(config)}, "layers": layers}
    if edit_manifest:
        edit_manifest(manifest)
    manifest_bytes = json.dumps(manifest).encode()
    files[ik.sha256(manifest_bytes)] = manifest_file or manifest_bytes
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": ik.sha256(manifest_bytes),
        "size": len(manifest_bytes), "platform": {"os": "linux", "architecture": "amd64"}}]}
    (target / "blobs" / "sha256").mkdir(parents=True)
    (target / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (target / "index.json").write_text(json.dumps(index))
    for digest, data in files.items():
        (target / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
    return f"oci:{target}"


def message(report) -> str:
    return report["images"][0]["errors"][0]


def test_a_layer_blob_with_other_bytes_is_an_error_naming_both_digests(run_suite, fake_operator, tmp_path):
    """The manifest names the shell layer; the file under that digest holds a clean layer."""
    spec = ik.dhi_like(fake_operator, extra_layers=[SHELL_LAYER])
    shell = gzip.compress(spec.layer_blobs()[2], mtime=0)
    clean = gzip.compress(ik.layer_tar(CLEAN_LAYER), mtime=0)
    result, report = run_suite(write_oci(tmp_path, spec, layer_files={2: clean}))
    result.assert_outcomes(errors=1, skipped=5)
    text = message(report)
    assert f"layer 3 of 3 ({ik.sha256(shell)[:19]})" in text
    assert f"blob does not match its digest: expected {ik.sha256(shell)} ({len(shell)} bytes), " \
           f"the bytes hash to {ik.sha256(clean)} ({len(clean)} bytes)" in text


def test_a_blob_whose_size_differs_from_its_descriptor_is_an_error(run_suite, fake_operator, tmp_path):
    spec = ik.dhi_like(fake_operator)

    def grow(manifest):
        manifest["layers"][1]["size"] += 1

    _, report = run_suite(write_oci(tmp_path, spec, edit_manifest=grow))
    assert "blob does not match its digest" in message(report) and "layer 2 of 2" in message(report)


def test_a_layer_whose_content_is_not_its_diff_id_is_an_error(run_suite, fake_operator, tmp_path):
    """Blob digest right (the descriptor names the clean blob), diff_id names the shell layer."""
    spec = ik.dhi_like(fake_operator, extra_layers=[SHELL_LAYER])
    blobs = spec.layer_blobs()
    stored = [gzip.compress(b, mtime=0) for b in blobs[:2]] + [gzip.compress(ik.layer_tar(CLEAN_LAYER), mtime=0)]
    _, report = run_suite(write_oci(tmp_path, spec, stored=stored))
    assert f"does not match the config's diff_id: expected {ik.sha256(blobs[2])}" in message(report)


def test_a_tampered_manifest_or_config_is_an_error(run_suite, fake_operator, tmp_path):
    spec = ik.dhi_like(fake_operator)
    blobs = spec.layer_blobs()
    config = json.loads(spec.config(blobs))
    config["config"]["User"] = "0"  # root, under the digest of the nonroot config
    _, report = run_suite(write_oci(tmp_path / "c", spec, config_file=json.dumps(config).encode()))
    assert f"config {ik.sha256(spec.config(blobs))} does not match its digest" in message(report)
    _, report = run_suite(write_oci(tmp_path / "m", spec, manifest_file=b'{"schemaVersion": 2}'))
    assert "manifest sha256:" in message(report) and "does not match its digest" in message(report)


def test_a_swapped_docker_archive_layer_is_refused_as_docker_load_refuses_it(run_suite, fake_operator, tmp_path):
    spec = ik.dhi_like(fake_operator, extra_layers=[SHELL_LAYER])
    blobs = spec.layer_blobs()
    archive = tmp_path / "swapped.tar"
    archive.write_bytes(ik.raw_docker_archive([(spec.config(blobs), blobs[:2] + [ik.layer_tar(CLEAN_LAYER)], ["x:1"])]))
    _, report = run_suite(f"docker-archive:{archive}")
    assert "invalid diffID" in message(report) and f"expected {ik.sha256(blobs[2])}" in message(report)


@pytest.mark.docker
def test_engine_refuses_a_swapped_layer_and_a_bad_gzip_crc(docker_client, tmp_path):
    import docker.errors

    spec = ik.ImageSpec(layers=[SHELL_LAYER[:1]], cmd=["/x"])
    blob = spec.layer_blobs()[0]
    bad_crc = bytearray(gzip.compress(blob, mtime=0))
    bad_crc[-8] ^= 0xFF
    for stored, docker_says, we_say in [
        (ik.layer_tar(CLEAN_LAYER), "invalid diffID", "invalid diffID"),
        (bytes(bad_crc), "gzip: invalid checksum", "gzip: invalid checksum"),
    ]:
        data = ik.raw_docker_archive([(spec.config([blob]), [stored], None)])
        with pytest.raises((docker.errors.APIError, docker.errors.ImageLoadError)) as refused:
            docker_client.images.load(data)
        assert docker_says in str(refused.value)
        (tmp_path / "a.tar").write_bytes(data)
        from pytest_dhi_cilium.image.model import build_image
        from pytest_dhi_cilium.image.reference import parse_reference
        from pytest_dhi_cilium.image.sources import SourceError, open_source

        ref = parse_reference(f"docker-archive:{tmp_path / 'a.tar'}")
        with pytest.raises(SourceError, match=we_say), open_source(ref) as source:
            build_image(ref.raw, source.read())


@pytest.mark.parametrize("damage, reason", [
    (lambda g: g[:-8] + bytes([g[-8] ^ 1]) + g[-7:], "gzip: invalid checksum"),
    (lambda g: g[:-1] + bytes([g[-1] ^ 1]), "gzip: invalid checksum"),
    (lambda g: g[:-4], "truncated"),
    (lambda g: g + b"garbage that is not gzip", "trailing bytes"),
], ids=["crc", "length", "truncated", "trailing-garbage"])
def test_a_damaged_gzip_layer_is_an_error(run_suite, fake_operator, tmp_path, damage, reason):
    spec = ik.dhi_like(fake_operator)
    stored = [gzip.compress(b, mtime=0) for b in spec.layer_blobs()]
    stored[1] = damage(stored[1])
    _, report = run_suite(write_oci(tmp_path, spec, stored=stored))
    assert reason in message(report) and "layer 2 of 2" in message(report)


def test_concatenated_gzip_members_are_one_stream_as_for_docker(run_suite, fake_operator, tmp_path):
    spec = ik.dhi_like(fake_operator)
    stored = [gzip.compress(b, mtime=0) for b in spec.layer_blobs()]
    raw = spec.layer_blobs()[1]
    stored[1] = gzip.compress(raw[:700], mtime=0) + gzip.compress(raw[700:], mtime=0)
    _, report = run_suite(write_oci(tmp_path, spec, stored=stored))
    assert set(outcomes(report).values()) == {"passed"}


def test_bytes_after_the_tar_count_toward_the_diff_id():
    """Docker hashes the whole uncompressed stream: trailing bytes are part of the diff_id."""
    fs = ik.merged_view(ik.layer_tar([ik.file("a")]) + b"trailing")
    assert fs.entry("/a") is not None


def test_the_report_records_what_was_verified(run_suite, fake_operator, tmp_path):
    spec = ik.dhi_like(fake_operator)
    blobs = spec.layer_blobs()
    ref = write_oci(tmp_path / "oci", spec)
    _, report = run_suite(ref)
    image = report["images"][0]
    verified = image["verified"]
    assert image["digest"] == verified["manifest"]
    assert image["config_digest"] == verified["config"] == ik.sha256(spec.config(blobs))
    assert [layer["diff_id"] for layer in verified["layers"]] == [ik.sha256(b) for b in blobs]
    assert [layer["digest"] for layer in verified["layers"]] == [ik.sha256(gzip.compress(b, mtime=0)) for b in blobs]
    assert {layer["compression"] for layer in verified["layers"]} == {"gzip"}
    archive = ik.write_docker_archive(tmp_path / "d.tar", spec, ["x:1"])
    _, report = run_suite(f"docker-archive:{archive}")
    verified = report["images"][0]["verified"]
    assert report["images"][0]["digest"] == verified["config"]  # no manifest: the image ID
    assert "manifest" not in verified and all("digest" not in layer for layer in verified["layers"])
    assert [layer["diff_id"] for layer in verified["layers"]] == [ik.sha256(b) for b in blobs]
