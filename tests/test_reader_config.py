"""Class 5 of issue 10: config fields read as Docker reads them, users resolved as runc does.

``docker load`` decodes the config with Go's encoding/json into moby's types: a field of the
wrong type fails the load (``json: cannot unmarshal number into Go struct field
Config.config.User of type string``), ``Entrypoint``/``Cmd`` given as a string are a one-element
list, keys match case-insensitively, ``null`` is no value. The engine is asked about every
variant here and the reader must agree: refused with the same Go sentence, or accepted with the
same values. runc then resolves the user: numeric ids are ASCII digits (``²`` is a name), a UID
without a passwd entry must be in 0..2147483647, and the kernel takes passwd ids modulo 2^32.
"""

from __future__ import annotations

import json

import pytest

import imagekit as ik
from conftest import check
from pytest_dhi_cilium.checks.users import resolve_user
from pytest_dhi_cilium.image.config import ConfigError, decode_image_config

LAYER = ik.layer_tar([ik.file("x", b"x")])
BASE = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/x"]},
        "rootfs": {"type": "layers", "diff_ids": [ik.sha256(LAYER)]}}


def _with(**changes):
    def make():
        config = json.loads(json.dumps(BASE))
        for path, value in changes.items():
            target = config
            *parents, last = path.split("__")
            for key in parents:
                target = target[key]
            if value is _DELETE:
                target.pop(last, None)
            else:
                target[last] = value
        return json.dumps(config).encode()
    return make


_DELETE = object()

# (id, config bytes, the Go sentence docker load fails with, or None when it loads)
VARIANTS = [
    ("user-number", _with(config__User=0), "json: cannot unmarshal number into Go struct field Config.config.User of type string"),
    ("workdir-number", _with(config__WorkingDir=5), "json: cannot unmarshal number into Go struct field Config.config.WorkingDir of type string"),
    ("arch-number", _with(architecture=5), "json: cannot unmarshal number into Go struct field Image.architecture of type string"),
    ("env-string", _with(config__Env="PATH=/bin"), "json: cannot unmarshal string into Go struct field Config.config.Env of type []string"),
    ("env-element-number", _with(config__Env=["A=1", 5]), "json: cannot unmarshal number into Go struct field Config.config.Env of type string"),
    ("entrypoint-number", _with(config__Entrypoint=5), "json: cannot unmarshal number into Go struct field Config.config.Entrypoint of type string"),
    ("entrypoint-mixed-list", _with(config__Entrypoint=["/a", 5]), "json: cannot unmarshal array into Go struct field Config.config.Entrypoint of type string"),
    ("labels-number", _with(config__Labels={"a": 1}), "json: cannot unmarshal number into Go struct field Config.config.Labels of type string"),
    ("ports-list", _with(config__ExposedPorts=["80/tcp"]), "json: cannot unmarshal array into Go struct field Config.config.ExposedPorts of type nat.PortSet"),
    ("history-object", _with(history={}), "json: cannot unmarshal object into Go struct field Image.history of type []image.History"),
    ("healthcheck-test-number", _with(config__Healthcheck={"Test": 5}), "json: cannot unmarshal number into Go struct field HealthConfig.config.Healthcheck.Test of type []string"),
    ("size-string", _with(Size="big"), "json: cannot unmarshal string into Go struct field Image.Size of type int64"),
    ("tty-number", _with(config__Tty=1), "json: cannot unmarshal number into Go struct field Config.config.Tty of type bool"),
    ("container-config-user", _with(container_config={"User": 5}), "json: cannot unmarshal number into Go struct field Config.container_config.User of type string"),
    ("config-list", _with(config=[]), "json: cannot unmarshal array into Go struct field Image.config of type container.Config"),
    ("no-rootfs", _with(rootfs=_DELETE), "invalid image JSON, no RootFS key"),
    ("windows", _with(os="windows"), "cannot load windows image on linux"),
    ("history-too-long", _with(history=[{}, {}]), "too many non-empty layers in History section"),
    ("entrypoint-string", _with(config__Entrypoint="/bin/op --flag"), None),
    ("env-null", _with(config__Env=None), None),
    ("user-null", _with(config__User=None), None),
    ("config-null", _with(config=None), None),
    ("unknown-field", _with(zzz={"a": [1, 2]}), None),
    ("os-missing", _with(os=_DELETE), None),
    ("user-superscript", _with(config__User="²"), None),
]


@pytest.mark.parametrize("make, docker_says", [v[1:] for v in VARIANTS], ids=[v[0] for v in VARIANTS])
def test_config_decoded_as_docker_decodes_it(make, docker_says):
    if docker_says is None:
        decode_image_config(make(), 1)
    else:
        with pytest.raises(ConfigError) as refused:
            decode_image_config(make(), 1)
        assert docker_says in str(refused.value)


@pytest.mark.docker
def test_the_engine_agrees_on_every_variant(docker_client):
    import docker.errors

    disagreements = []
    for name, make, docker_says in VARIANTS:
        config = make()
        try:
            docker_client.images.load(ik.raw_docker_archive([(config, [LAYER], None)]))
            error = None
            docker_client.images.remove(ik.sha256(config), force=True)
        except (docker.errors.APIError, docker.errors.ImageLoadError) as exc:
            error = str(exc)
        if (error is None) != (docker_says is None) or (error and docker_says not in error):
            disagreements.append(f"{name}: engine {error!r}, expected {docker_says!r}")
    assert not disagreements, "\n".join(disagreements)


def test_a_string_entrypoint_is_one_argument_as_docker_reads_it():
    config = decode_image_config(_with(config__Entrypoint="/bin/op --flag")(), 1)
    assert config["config"]["Entrypoint"] == ["/bin/op --flag"]


def test_keys_match_case_insensitively_and_repeats_merge():
    data = (b'{"rootfs": {"diff_ids": ["' + ik.sha256(LAYER).encode() + b'"]}, '
            b'"config": {"User": "a", "Cmd": ["/x"]}, "CONFIG": {"User": "b"}}')
    config = decode_image_config(data, 1)["config"]
    assert config == {"User": "b", "Cmd": ["/x"]}


def test_a_config_type_error_is_one_sentence_for_the_image(run_suite, fake_operator, tmp_path):
    spec = ik.dhi_like(fake_operator)
    blobs = spec.layer_blobs()
    config = json.loads(spec.config(blobs))
    config["config"]["User"] = 65532
    archive = tmp_path / "c.tar"
    archive.write_bytes(ik.raw_docker_archive([(json.dumps(config).encode(), blobs, ["x:1"])]))
    result, report = run_suite(f"docker-archive:{archive}")
    result.assert_outcomes(errors=1, skipped=5)
    assert report["images"][0]["errors"][0].endswith(
        "json: cannot unmarshal number into Go struct field Config.config.User of type string")
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize("user, passwd, uid, error", [
    ("²", "", None, "unable to find user ²: no matching entries in passwd file"),
    ("٣", "", None, "unable to find user ٣: no matching entries in passwd file"),
    ("2147483647", "", 2147483647, ""),
    ("2147483648", "", None, "uids and gids must be in range 0-2147483647"),
    ("-1", "", None, "uids and gids must be in range 0-2147483647"),
    ("+5", "", 5, ""),
    ("huge", "huge:x:4294967296:5::/:/x", 0, ""),  # the kernel runs it as root
    ("4294967296", "huge:x:4294967296:5::/:/x", 0, ""),
    ("m1", "m1:x:4294967295:5::/:/x", None, "invalid argument"),
    ("big", "big:x:2147483648:5::/:/x", 2147483648, ""),
    ("neg", "neg:x:-5:5::/:/x", None, "uids and gids must be in range"),
    ("1:1:1", "", 1, ""),
    ("bad", "bad:x:abc:abc::/:/x", 0, ""),  # runc ignores Atoi errors: 0
])
def test_users_resolve_as_runc_resolves_them(user, passwd, uid, error):
    resolved = resolve_user(user, passwd + "\n", "")
    assert resolved.uid == uid if not error else error in resolved.error, resolved


def test_a_name_that_maps_to_uid_zero_modulo_2_32_fails_nonroot_user(run_suite, fake_operator, tmp_path):
    spec = ik.dhi_like(fake_operator, tag_user="nonroot")
    spec.layers[0] = [m for m in spec.layers[0] if m.name != "etc/passwd"] + [
        ik.passwd("root:x:0:0:root:/root:/sbin/nologin", "nonroot:x:4294967296:65532::/home/nonroot:/sbin/nologin")]
    archive = ik.write_docker_archive(tmp_path / "u.tar", spec, ["x:1"])
    _, report = run_suite(f"docker-archive:{archive}")
    result = check(report, "nonroot-user")
    assert result["outcome"] == "failed"
    assert "truncated to 32 bits by the kernel: 0" in " ".join(result["notes"] + result["evidence"] + [result["message"]])


def test_a_uid_beyond_runcs_range_fails_nonroot_user(run_suite, fake_operator, tmp_path):
    archive = ik.write_docker_archive(tmp_path / "r.tar", ik.dhi_like(fake_operator, tag_user="4294967296"), ["x:1"])
    _, report = run_suite(f"docker-archive:{archive}")
    result = check(report, "nonroot-user")
    assert result["outcome"] == "failed" and "uids and gids must be in range 0-2147483647" in result["message"]
