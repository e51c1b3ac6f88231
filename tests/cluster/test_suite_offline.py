"""The whole cluster tier through the real plugin — options, fixtures, suite, report — with kind,
helm and docker replaced by scripts and the cluster by a fake API server: everything but a
cluster, so the wiring is proven here and only the cluster's behaviour is left to the live tests."""

import copy
import json
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

pytest.importorskip("kubernetes")
pytest.importorskip("pytest_kind")

KIND = """echo "kind $*" >> {dir}/calls
case "$1 $2" in
  "create cluster")
    for a in "$@"; do case "$a" in --kubeconfig=*) cp {kubeconfig} "${{a#--kubeconfig=}}" ;; esac; done
    prev=""; for a in "$@"; do [ "$prev" = --config ] && cp "$a" {dir}/kind-config.yaml; prev="$a"; done ;;
esac
exit 0
"""
HELM = """echo "helm $*" >> {dir}/calls
case "$1" in
  status) echo 'Error: release: not found' >&2; exit 1 ;;
  get) printf 'operator:\\n  image:\\n    override: acme/op:1.18.3\\n' ;;
  upgrade) case "$*" in *override=acme/op:1.18.3*) touch {dir}/upgraded ;; esac ;;
esac
exit 0
"""
DOCKER = """echo "docker $*" >> {dir}/calls
case "$1 $3 $4" in
  "inspect "*) echo '{{"io.x-k8s.kind.cluster": "offline"}}' ;;
  "exec crictl inspect") echo '{{"info": {{"pid": 4242, "runtimeSpec": {{"process": {{"user": {{"uid": 65532, "gid": 65532}}}}}}}}}}' ;;
  "exec cat /proc/4242/status") printf 'Name:\\tcilium-operato\\nUid:\\t65532\\t65532\\t65532\\t65532\\nGid:\\t65532\\t65532\\t65532\\t65532\\n' ;;
  "exec nsenter --target") printf 'ok\\n200' ;;
  "exec crictl inspecti") echo '{{"status": {{"id": "{config_digest}", "repoDigests": ["docker.io/acme/op@{node_digest}"]}}}}' ;;
  *) exit 1 ;;
esac
"""


@pytest.fixture
def offline(pytester, monkeypatch, tmp_path, k8s, fake_api):
    """A fake kind/helm/docker toolset and API server: the operator of the image under test runs
    once helm installed it; before that (an upgrade's first install) the upstream one runs."""
    archive, config_digest = k8s.tiny_docker_archive(tmp_path / "op.tar")
    lease = k8s.lease()
    lease["spec"]["renewTime"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    ours = k8s.api_routes(k8s.operator_pod(image="acme/op:1.18.3", image_id=f"docker.io/acme/op@{k8s.NODE_DIGEST}"),
                          lease)
    ours["/apis/apps/v1/namespaces/kube-system/deployments/cilium-operator"]["metadata"]["generation"] = 2
    upstream = k8s.api_routes(k8s.operator_pod("cilium-operator-5f4b8c6d7-u1p2s", image=k8s.UPSTREAM,
                                               image_id=f"quay.io/cilium/operator-generic@{k8s.OLD_DIGEST}"),
                              copy.deepcopy(lease))
    upstream["/apis/apps/v1/namespaces/kube-system/deployments/cilium-operator"] = k8s.deployment(generation=1,
                                                                                                 observed=1)
    api = fake_api(lambda: ours if (tmp_path / "upgraded").exists() else upstream)
    fill = dict(dir=tmp_path, kubeconfig=api.kubeconfig, config_digest=config_digest, node_digest=k8s.NODE_DIGEST)
    bin_dir = k8s.fake_tools(tmp_path / "bin", "kind", "kubectl", "helm", "docker",
                             scripts={"kind": KIND.format(**fill), "helm": HELM.format(**fill),
                                      "docker": DOCKER.format(**fill)})
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")

    def run(*args):
        report = tmp_path / "report.json"
        result = pytester.runpytest_subprocess(f"--dhi-image=docker-archive:{archive}", "--dhi-tier=cluster",
                                               "--dhi-cluster-settle=0", "--cluster-name=offline",
                                               f"--dhi-report={report}", "-p", "no:cacheprovider", "-rs", *args)
        checks = {c["id"]: c for c in json.loads(report.read_text())["images"][0]["checks"]}
        return result, checks, (tmp_path / "calls").read_text()

    return SimpleNamespace(run=run, archive=archive, dir=tmp_path)


def test_the_cluster_tier_end_to_end_without_a_cluster(offline):
    result, checks, calls = offline.run()
    result.assert_outcomes(passed=4, skipped=1)
    result.stdout.fnmatch_lines(["*[[]dhi-cilium[]] creating kind cluster offline*",
                                 "*[[]dhi-cilium[]] the Cilium rollout: converged after*",
                                 "*[[]dhi-cilium[]] deleting kind cluster offline: done in*",
                                 "*SKIPPED*no --dhi-upgrade-from=REF given*"])
    assert {k: c["outcome"] for k, c in checks.items()} == {
        "operator-healthy": "passed", "operator-image-in-use": "passed", "operator-runtime-user": "passed",
        "cilium-ready": "passed", "upgrade-from-upstream": "skipped"}
    assert "the digest node dhi-cilium-control-plane gave the loaded image" in " ".join(
        checks["operator-image-in-use"]["evidence"])
    assert f"kind load image-archive --name offline {offline.archive}" in calls
    assert ("helm upgrade --install cilium cilium --repo https://helm.cilium.io --version 1.18.3 "
            "--namespace kube-system") in calls
    assert calls.rstrip().endswith("kind delete cluster --name=offline --kubeconfig=.pytest-kind/offline/kubeconfig")
    assert "disableDefaultCNI: true" in (offline.dir / "kind-config.yaml").read_text()


def test_the_upgrade_from_upstream_end_to_end_without_a_cluster(offline, k8s):
    result, checks, calls = offline.run(f"--dhi-upgrade-from={k8s.UPSTREAM}")
    result.assert_outcomes(passed=5)
    assert checks["upgrade-from-upstream"]["message"] == (
        f"{k8s.UPSTREAM} -> acme/op:1.18.3: generation 1 -> 2, 1 new pod(s) Ready on the new digest")
    installs = [line for line in calls.splitlines() if line.startswith("helm upgrade")]
    assert [line.rsplit("=", 1)[1] for line in installs] == [k8s.UPSTREAM, "acme/op:1.18.3"]
    assert f"docker image inspect {k8s.UPSTREAM}" in calls  # loaded only if the local Docker had it


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_interrupting_kind_create_still_deletes_the_cluster(pytester, offline, signum):
    """Ctrl-C (or CI's cancel, SIGTERM) while `kind create cluster` runs: pytest stops and the
    half-created cluster is deleted."""
    import signal
    import time

    kind = offline.dir / "bin" / "kind"
    kind.write_text(kind.read_text().replace('"create cluster")', '"create cluster") exec sleep 20 ;;\n  "never")'))
    calls = offline.dir / "calls"
    proc = pytester.popen([*pytester._getpytestargs(), f"--dhi-image=docker-archive:{offline.archive}",
                           "--dhi-tier=cluster", "--cluster-name=offline", "-p", "no:cacheprovider"],
                          stdout=open(offline.dir / "out", "w"), stderr=open(offline.dir / "err", "w"))
    deadline = time.monotonic() + 30
    while "create cluster" not in (calls.read_text() if calls.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(getattr(signal, signum))
    assert proc.wait(timeout=30) == pytest.ExitCode.INTERRUPTED
    assert calls.read_text().rstrip().splitlines()[-1] == (
        "kind delete cluster --name=offline --kubeconfig=.pytest-kind/offline/kubeconfig")
    assert "deleting kind cluster offline: done" in (offline.dir / "out").read_text()
