"""Every check's verdict on the image layouts vendors ship and the ways they go wrong, with the
operator inside being the fake (1.18 style, and 1.17 style where the boot differs) and, when
DHI_TEST_OPERATOR / DHI_TEST_OPERATOR_IMAGE names one, the real cilium-operator-generic
(tests/real_operator.py). Each failure must carry its evidence; where the operator ran, its own
log or output line."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

import imagekit as ik
import real_operator as ro
from conftest import check, outcomes

pytestmark = pytest.mark.docker

ARGS = ("--dhi-tier=image,runtime", "--dhi-settle=3", "--dhi-timeout=30")
CHECKS = ("no-shell", "no-package-manager", "nonroot-user", "entrypoint", "operator-binary", "gops-writable",
          "help", "version", "no-shell-runtime", "runtime-user", "restricted-run", "operator-starts")
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Layout:
    build: object  # (binary) -> ImageSpec
    failing: dict[str, list[str]] = field(default_factory=dict)  # check -> evidence it must show
    args: tuple[str, ...] = ()
    tag_suffix: str = ""
    fake_117: bool = False  # also with the 1.17-style fake: its boot takes another path


def chainguard(binary) -> ik.ImageSpec:
    """Wolfi/apko: binary in /usr/bin, ENTRYPOINT it, USER 65532 with a writable home, no
    GOPS_CONFIG_DIR (gops writes $HOME/.config/gops)."""
    base = [ik.directory("etc"), ik.NONROOT_PASSWD, ik.NONROOT_GROUP, ik.directory("tmp", 0o1777),
            ik.directory("home"), ik.directory("home/nonroot", 0o755, 65532, 65532)]
    app = [ik.directory("usr"), ik.directory("usr/bin"), ik.host_file(f"usr/bin/{ik.OPERATOR}", binary)]
    return ik.ImageSpec(layers=[base, app], entrypoint=[f"/usr/bin/{ik.OPERATOR}"], user="65532", env=[PATH])


def renamed(binary) -> ik.ImageSpec:
    spec = ik.dhi_like(binary, entrypoint=["/usr/local/bin/operator"])
    spec.layers[1] = [ik.directory("usr"), ik.directory("usr/local"), ik.directory("usr/local/bin"),
                      ik.host_file("usr/local/bin/operator", binary)]
    return spec


START_FAILED = ["Start hook failed", "gops.registerGopsHooks.func1", "level=fatal"]
NOT_OBSERVED = ["never reached its API-server wait", "Start hook failed"]

LAYOUTS = {
    "dhi": Layout(ik.dhi_like, fake_117=True),
    "chainguard": Layout(chainguard, args=("--dhi-profile=chainguard",)),
    "upstream": Layout(ik.upstream_like, {"nonroot-user": ["Config.User"],
                                          "runtime-user": ["uid=0 gid=0"]}, args=("--dhi-profile=upstream",)),
    "no-writable-gops": Layout(
        lambda b: ik.dhi_like(b, env=[PATH], extra_layers=[[ik.directory("home/nonroot", 0o755, 0, 0)]]),
        {"gops-writable": ["/home/nonroot/.config/gops"],
         "operator-starts": START_FAILED + ["mkdir /home/nonroot/.config: permission denied"],
         "runtime-user": NOT_OBSERVED}, fake_117=True),
    "root-run": Layout(
        lambda b: ik.dhi_like(b, tag_user=""),
        {"nonroot-user": ["Config.User"], "gops-writable": ["/home/gops"],
         "operator-starts": START_FAILED + ["open /home/gops/1: permission denied"],
         "runtime-user": NOT_OBSERVED}, fake_117=True),
    "renamed": Layout(renamed, {"entrypoint": ["/usr/local/bin/operator"], "operator-binary": ["PATH"],
                                "help": ["stdout: Run operator"], "restricted-run": ["stdout: Run operator"]}),
    "dev": Layout(ik.dev_like, tag_suffix="-dev"),
    "kubernetes-disabled": Layout(
        lambda b: ik.dhi_like(b, env=[PATH, "GOPS_CONFIG_DIR=/home/gops", "CILIUM_ENABLE_K8S=false"]),
        {"operator-starts": ["Start hook failed", "unable to listen on localhost:9234"],
         "runtime-user": NOT_OBSERVED}, fake_117=True),
}
CASES = [pytest.param(op, name, id=f"{name}-{op}") for name, layout in LAYOUTS.items()
         for op in ("fake", *(("fake-1.17",) if layout.fake_117 else ()), "real")]


@pytest.fixture
def operator(request, fake_operator, fake_operator_variant) -> ro.Operator:
    if request.param == "fake":
        return ro.Operator("fake", fake_operator, "1.18.3", "tests/fake_operator")
    if request.param == "fake-1.17":
        return ro.Operator("fake-1.17", fake_operator_variant(FAKE_V117=None), "1.17.5", "tests/fake_operator")
    return request.getfixturevalue("real_operator")


@pytest.mark.parametrize("operator, layout", CASES, indirect=["operator"])
def test_every_verdict(operator, layout, loaded_images, run_suite, tmp_path, our_containers):
    spec = LAYOUTS[layout]
    ref = loaded_images(spec.build(operator.binary), f"layout-{layout}-{operator.name}:{operator.version}"
                        f"{spec.tag_suffix}", tmp_path)
    result, report = run_suite(ref, args=(*ARGS, *spec.args))
    got = outcomes(report)
    assert got.pop("reference-flags") == "skipped"
    want = {c: "failed" if c in spec.failing else "passed" for c in CHECKS}
    assert got == want, result.stdout.str()[-4000:]
    fatal_rc = 1 if operator.minor < (1, 18) else 255
    for check_id, must_show in spec.failing.items():
        verdict = check(report, check_id)
        evidence = "\n".join([verdict["message"], *verdict["evidence"]])
        for text in must_show:
            assert text in evidence, f"{check_id}: {text!r} not in\n{evidence}"
    if "operator-starts" in spec.failing:
        message = check(report, "operator-starts")["message"]
        if layout == "kubernetes-disabled" and operator.minor < (1, 18):
            # 1.17 hangs after its failed start: alive, but it never waited for the API server
            assert message.startswith("still running after 3s but it never logged "
                                      "`Establishing connection to apiserver`"), message
        else:
            assert message.startswith(f"the operator exited {fatal_rc} after "), message
    if "operator-starts" not in spec.failing:
        boot = check(report, "operator-starts")
        assert "kept waiting for http://127.0.0.1:1 for the whole 3s window" in boot["message"], boot
        assert any(e.startswith("gops wrote its port file ") for e in boot["evidence"]), boot["evidence"]
    assert our_containers(ref) == []
