"""The cluster verdicts, judged on API-shaped objects: the healthy install and each way it fails."""

import copy

import pytest

from pytest_dhi_cilium.checks import cluster as check
from pytest_dhi_cilium.checks.cluster import Healthz, ImageUnderTest, NodeImage, ProcessUser, Upgrade
from pytest_dhi_cilium.checks.users import RuntimeUser

NONROOT = RuntimeUser("nonroot", 65532, 65532, "nonroot", "/home/nonroot")


def restarted(pod, count=1):
    pod = copy.deepcopy(pod)
    cs = pod["status"]["containerStatuses"][0]
    cs["restartCount"] = count
    cs["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2025-06-12T11:39:01Z"}}
    return pod


# -- operator-healthy -----------------------------------------------------------------------------


def test_healthy_install_passes(k8s):
    verdict = check.operator_healthy(k8s.snapshot())
    assert verdict.ok, verdict.explain()
    assert "1/1 operator pod(s) Ready with no restart over 30s" in verdict.message
    assert any(f"holderIdentity '{k8s.NODE}-kXq4tRbn2w'" in e for e in verdict.evidence)


def test_crashloopbackoff_fails_naming_pod_reason_and_last_exit(k8s):
    pod = k8s.crashlooping(k8s.operator_pod())
    dep = k8s.deployment(ready=0, available=0, available_cond="False")
    verdict = check.operator_healthy(k8s.snapshot(pods=[pod], deployment=dep))
    assert not verdict.ok
    text = verdict.explain()
    assert "readyReplicas 0 != replicas 1" in text
    assert f"pod {k8s.POD}: container cilium-operator waiting: CrashLoopBackOff (back-off 1m20s" in text
    assert f"pod {k8s.POD}: container cilium-operator restarted 4 time(s); last exit 1 (Error)" in text
    assert "Available=False (MinimumReplicasUnavailable" in text
    # the diagnostics ride along with a failure
    assert "Deployment cilium-operator conditions: Available=False" in text
    assert f"events of pod {k8s.POD}" in text
    assert "wait: converged after 1m12s" in text


def test_restart_during_the_settle_window_fails_even_when_ready_again(k8s):
    verdict = check.operator_healthy(k8s.snapshot(pods=[restarted(k8s.operator_pod())]))
    assert not verdict.ok
    assert verdict.message.startswith(f"pod {k8s.POD}: container cilium-operator restarted 1 time(s); last exit 1")


@pytest.mark.parametrize("lease_kw, expected", [
    (None, "Lease cilium-operator-resource-lock does not exist"),
    ({"holder": None}, "is held by nobody (holderIdentity empty)"),
    ({"holder": ""}, "is held by nobody"),
    ({"holder": "some-other-node-Zz9Yy8Xx7W"},
     "is held by 'some-other-node-Zz9Yy8Xx7W', which is none of the operator pods"),
    ({"renewed_ago": 60}, "expired: last renewed 60s ago, leaseDurationSeconds 15"),
    ({"renewed_ago": None}, "never renewed"),
])
def test_lease_problems_fail(k8s, lease_kw, expected):
    verdict = check.operator_healthy(k8s.snapshot(lease=None if lease_kw is None else k8s.lease(**lease_kw)))
    assert not verdict.ok
    assert expected in verdict.message


def test_lease_of_a_pod_network_pod_is_matched_by_pod_name(k8s):
    pod = k8s.operator_pod(host_network=False)
    held = k8s.lease(holder="cilium-operator-6d8c7b9f5-x2k4q-AbCdEfGhIj")
    assert check.operator_healthy(k8s.snapshot(pods=[pod], all_pods=[pod], lease=held)).ok
    # ... and the node-name identity (hostNetwork) no longer names it
    assert not check.operator_healthy(k8s.snapshot(pods=[pod], all_pods=[pod])).ok


def test_crd_not_established_fails(k8s):
    crds = k8s.all_crds(ciliumnodes=k8s.crd("ciliumnodes", established=False))
    verdict = check.operator_healthy(k8s.snapshot(crds=crds))
    assert not verdict.ok
    assert verdict.message == ("CRD ciliumnodes.cilium.io: Established=False (Installing: the initial "
                               "names have not been accepted)")


def test_missing_crd_fails(k8s):
    verdict = check.operator_healthy(k8s.snapshot(crds=k8s.all_crds(ciliumidentities=None)))
    assert verdict.message == "CRD ciliumidentities.cilium.io does not exist"


def test_generation_mismatch_fails(k8s):
    verdict = check.operator_healthy(k8s.snapshot(deployment=k8s.deployment(generation=3, observed=2)))
    assert not verdict.ok
    assert "observedGeneration 2 != generation 3" in verdict.message


def test_old_pods_still_present_fail(k8s):
    verdict = check.operator_healthy(k8s.snapshot(deployment=k8s.deployment(status_replicas=2)))
    assert "2 pods for 1 replicas (old pods not gone yet)" in verdict.message


def test_missing_deployment_fails(k8s):
    verdict = check.operator_healthy(k8s.snapshot(deployment=None, pods=[]))
    assert verdict.message.startswith("Deployment cilium-operator does not exist")


def test_healthz_bad_answer_fails(k8s):
    bad = Healthz(k8s.POD, "node netns", "http://127.0.0.1:9234/healthz", 503, "k8s connectivity failed")
    verdict = check.operator_healthy(k8s.snapshot(healthz=[bad]))
    assert not verdict.ok
    assert f"pod {k8s.POD}: /healthz answered HTTP 503 via node netns" in verdict.explain()


def test_healthz_unreachable_falls_back_to_the_readiness_probe_only_when_ready(k8s):
    unreachable = Healthz(k8s.POD, "pod proxy", "/api/v1/namespaces/kube-system/pods/x:9234/proxy/healthz", None,
                          error="error trying to reach service: dial tcp 172.18.0.2:9234: connect: connection refused")
    verdict = check.operator_healthy(k8s.snapshot(healthz=[unreachable]))
    assert verdict.ok, verdict.explain()
    assert any("readiness probe GET /healthz succeeds" in n for n in verdict.notes)
    not_ready = k8s.operator_pod(ready=False)
    verdict = check.operator_healthy(k8s.snapshot(pods=[not_ready], healthz=[unreachable]))
    assert not verdict.ok
    assert "/healthz not observed answering 200 (error trying to reach service" in verdict.explain()


def test_api_error_is_what_is_pending(k8s):
    snap = check.Snapshot(k8s.NS, k8s.NOW, api_error="MaxRetryError: connection refused")
    assert check.rollout_pending(snap) == ["API server: MaxRetryError: connection refused"]


def test_rollout_pending_lists_everything_not_converged(k8s):
    snap = k8s.snapshot(nodes=[k8s.node(ready=False)], daemonset=k8s.daemonset(ready=0, available=0),
                        lease=None, crds={})
    pending = check.rollout_pending(snap)
    assert any("numberReady 0" in p for p in pending)
    assert any(p.startswith(f"node {k8s.NODE}: Ready=False") for p in pending)
    assert any("Lease cilium-operator-resource-lock does not exist" in p for p in pending)
    assert sum("CRD " in p for p in pending) == 5
    assert check.rollout_pending(k8s.snapshot()) == []


def test_hopeless_states(k8s):
    assert check.hopeless([k8s.crashlooping(k8s.operator_pod(), restarts=1)]) == ""  # may still recover
    assert "CrashLoopBackOff after 3 restart(s)" in check.hopeless([k8s.crashlooping(k8s.operator_pod(), restarts=3)])
    pod = k8s.operator_pod()
    pod["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "ErrImageNeverPull",
                                                                  "message": "Container image is not present"}}
    assert "ErrImageNeverPull" in check.hopeless([pod])


# -- operator-image-in-use ------------------------------------------------------------------------


def test_image_in_use_accepts_the_digest_containerd_gave_the_loaded_image(k8s, image_under_test):
    verdict = check.operator_image_in_use(k8s.snapshot(), image_under_test)
    assert verdict.ok, verdict.explain()
    assert any(f"the digest node {k8s.NODE} gave the loaded image" in e for e in verdict.evidence)


@pytest.mark.parametrize("image_id, why", [
    ("{config}", "its config digest"),
    ("docker.io/acme/dhi-cilium-operator-generic@{manifest}", "its manifest digest"),
])
def test_image_in_use_accepts_config_and_manifest_digests(k8s, image_under_test, image_id, why):
    pod = k8s.operator_pod(image_id=image_id.format(config=k8s.CONFIG_DIGEST, manifest=k8s.MANIFEST_DIGEST))
    verdict = check.operator_image_in_use(k8s.snapshot(pods=[pod], all_pods=[pod], node_images=[]), image_under_test)
    assert verdict.ok, verdict.explain()
    assert any(why in e for e in verdict.evidence)


def test_old_digest_still_running_fails(k8s, image_under_test):
    old_id = f"docker.io/acme/dhi-cilium-operator-generic@{k8s.OLD_DIGEST}"
    old = k8s.operator_pod("cilium-operator-5c7d8e9f1-old00", image_id=old_id)
    new = k8s.operator_pod()
    verdict = check.operator_image_in_use(k8s.snapshot(pods=[new, old], all_pods=[new, old]), image_under_test)
    assert not verdict.ok
    assert verdict.message.startswith(f"pod {k8s.NS}/cilium-operator-5c7d8e9f1-old00 runs {old_id}: "
                                      "not the image under test")


def test_node_digest_counts_only_when_the_node_image_is_ours(k8s, image_under_test):
    stale = NodeImage(k8s.NODE, k8s.IMAGE, "sha256:" + "ee" * 32,
                      (f"docker.io/acme/dhi-cilium-operator-generic@{k8s.NODE_DIGEST}",))
    verdict = check.operator_image_in_use(k8s.snapshot(node_images=[stale]), image_under_test)
    assert not verdict.ok
    assert "not the image under test" in verdict.message


def test_an_upstream_operator_pod_anywhere_fails(k8s, image_under_test):
    stray = k8s.operator_pod("cilium-operator-7f-stray", image=k8s.UPSTREAM,
                             image_id=f"quay.io/cilium/operator-generic@{k8s.OLD_DIGEST}")
    stray["metadata"]["namespace"] = "cilium-old"
    verdict = check.operator_image_in_use(k8s.snapshot(all_pods=[k8s.operator_pod(), stray]), image_under_test)
    assert not verdict.ok
    assert verdict.message == ("pod cilium-old/cilium-operator-7f-stray container cilium-operator runs upstream "
                               f"image {k8s.UPSTREAM}")


def test_certifying_the_upstream_image_itself_is_not_flagged(k8s):
    pod = k8s.operator_pod(image=k8s.UPSTREAM, image_id=f"quay.io/cilium/operator-generic@{k8s.MANIFEST_DIGEST}")
    verdict = check.operator_image_in_use(k8s.snapshot(pods=[pod], all_pods=[pod], node_images=[]),
                                          ImageUnderTest(k8s.UPSTREAM, k8s.MANIFEST_DIGEST, k8s.CONFIG_DIGEST))
    assert verdict.ok, verdict.explain()


def test_override_not_applied_fails(k8s, image_under_test):
    pod = k8s.operator_pod(image=k8s.UPSTREAM, image_id=f"quay.io/cilium/operator-generic@{k8s.OLD_DIGEST}")
    verdict = check.operator_image_in_use(k8s.snapshot(pods=[pod], all_pods=[pod]), image_under_test)
    assert not verdict.ok
    assert verdict.message.startswith(f"pod {k8s.POD}: spec image '{k8s.UPSTREAM}', expected the override '{k8s.IMAGE}'")


def test_container_never_started_fails(k8s, image_under_test):
    pod = k8s.operator_pod(image_id="")
    verdict = check.operator_image_in_use(k8s.snapshot(pods=[pod], all_pods=[pod]), image_under_test)
    assert "no imageID reported (the container never started)" in verdict.message


def test_no_operator_pod_fails(k8s, image_under_test):
    assert not check.operator_image_in_use(k8s.snapshot(pods=[]), image_under_test).ok


# -- operator-runtime-user ------------------------------------------------------------------------


def test_runtime_user_matches_the_image_user(k8s):
    verdict = check.operator_runtime_user(k8s.snapshot(), NONROOT)
    assert verdict.ok, verdict.explain()
    assert verdict.message == "the operator process runs as 65532:65532, the image's user"


def test_runtime_user_root_fails(k8s):
    verdict = check.operator_runtime_user(k8s.snapshot(users=[ProcessUser(k8s.POD, 0, 0, "/proc/4242/status", observed=True)]),
                                          NONROOT)
    assert verdict.message == f"{k8s.POD}: the operator process runs as root (UID 0)"


def test_runtime_user_set_by_the_pod_spec_is_named(k8s):
    pod = k8s.operator_pod()
    pod["spec"]["containers"][0]["securityContext"] = {"runAsUser": 1000, "runAsGroup": 1000}
    snap = k8s.snapshot(pods=[pod], users=[ProcessUser(k8s.POD, 1000, 1000, "/proc/4242/status", observed=True)])
    verdict = check.operator_runtime_user(snap, NONROOT)
    assert not verdict.ok
    assert verdict.message == (f"{k8s.POD}: the operator process runs as 1000:1000, the image declares "
                               "65532:65532 (Config.User 'nonroot')")
    assert any("container securityContext.runAsUser=1000" in e for e in verdict.evidence)


def test_runtime_user_with_an_unresolved_image_user_fails(k8s):
    unresolved = RuntimeUser("op", None, None, error="user 'op' is not in the image's /etc/passwd")
    verdict = check.operator_runtime_user(k8s.snapshot(), unresolved)
    assert not verdict.ok and "unresolved" in verdict.message


def test_runtime_user_read_from_the_oci_spec_is_called_configured(k8s):
    """A crash loop leaves no live process: the OCI spec's user passes, worded as configured."""
    spec = ProcessUser(k8s.POD, 65532, 65532, "the OCI spec of container 4f4f4f4f4f4f on node-1 "
                       "(crictl reports no running process)", ("OCI spec process.user of container 4f4f4f4f4f4f "
                                                                "on node-1: 65532:65532",))
    verdict = check.operator_runtime_user(k8s.snapshot(users=[spec]), NONROOT)
    assert verdict.ok, verdict.explain()
    assert verdict.message.startswith("the operator container is configured to run as 65532:65532, the image's "
                                      f"user (no live process observed for {k8s.POD}: read from the OCI spec")
    assert "runs as" not in verdict.message
    assert any("(configured; no live process observed)" in e for e in verdict.evidence)


def test_runtime_user_configured_root_fails_as_configured(k8s):
    kubelet = ProcessUser(k8s.POD, 0, 0, "pod status containerStatuses[].user")
    verdict = check.operator_runtime_user(k8s.snapshot(users=[kubelet]), NONROOT)
    assert not verdict.ok
    assert verdict.message == f"{k8s.POD}: the operator container is configured to run as root (UID 0)"


def test_runtime_user_not_observed_fails(k8s):
    verdict = check.operator_runtime_user(k8s.snapshot(users=[], users_unobservable="no node access"), NONROOT)
    assert verdict.message == "no operator process user observed: no node access"


# -- cilium-ready ---------------------------------------------------------------------------------


def test_cilium_ready_passes(k8s):
    verdict = check.cilium_ready(k8s.snapshot())
    assert verdict.ok, verdict.explain()


def test_node_without_cni_fails(k8s):
    snap = k8s.snapshot(nodes=[k8s.node(ready=False)], daemonset=k8s.daemonset(ready=0, available=0))
    verdict = check.cilium_ready(snap)
    assert not verdict.ok
    text = verdict.explain()
    assert "DaemonSet kube-system/cilium: numberReady 0 != desiredNumberScheduled 1" in text
    assert f"node {k8s.NODE}: Ready=False (KubeletNotReady: container runtime network not ready" in text


def test_agent_daemonset_missing_unscheduled_or_stale_fails(k8s):
    assert check.cilium_ready(k8s.snapshot(daemonset=None)).message == "DaemonSet cilium does not exist"
    assert "desiredNumberScheduled 0" in check.cilium_ready(k8s.snapshot(daemonset=k8s.daemonset(0, 0, 0, 0))).message
    stale = k8s.daemonset(generation=2)
    assert "observedGeneration 1 != generation 2" in check.cilium_ready(k8s.snapshot(daemonset=stale)).message


# -- upgrade-from-upstream ------------------------------------------------------------------------


@pytest.fixture
def upgrade(k8s):
    upstream_pod = k8s.operator_pod("cilium-operator-5f4b8c6d7-u1p2s", image=k8s.UPSTREAM,
                                    image_id=f"quay.io/cilium/operator-generic@{k8s.OLD_DIGEST}")
    before = k8s.snapshot(pods=[upstream_pod], all_pods=[upstream_pod],
                          deployment=k8s.deployment(generation=1, observed=1))
    return Upgrade(k8s.UPSTREAM, before, k8s.snapshot())


def test_upgrade_passes(k8s, upgrade, image_under_test):
    verdict = check.upgrade_from_upstream(upgrade, image_under_test)
    assert verdict.ok, verdict.explain()
    assert verdict.message == (f"{k8s.UPSTREAM} -> {k8s.IMAGE}: generation 1 -> 2, 1 new pod(s) Ready "
                               "on the new digest")


def test_upgrade_with_the_old_digest_still_running_fails(k8s, upgrade, image_under_test):
    upgrade.after.all_pods.append(upgrade.before.pods[0])
    verdict = check.upgrade_from_upstream(upgrade, image_under_test)
    assert not verdict.ok
    assert (f"still runs the pre-upgrade digest quay.io/cilium/operator-generic@{k8s.OLD_DIGEST}"
            in verdict.explain())


def test_upgrade_that_did_not_change_the_deployment_fails(k8s, upgrade, image_under_test):
    upgrade.after.deployment = k8s.deployment(generation=1, observed=1)
    verdict = check.upgrade_from_upstream(upgrade, image_under_test)
    assert "helm upgrade did not change the operator" in verdict.message


def test_upgrade_from_an_unhealthy_upstream_fails(k8s, upgrade, image_under_test):
    upgrade.before.pods = [k8s.crashlooping(upgrade.before.pods[0])]
    verdict = check.upgrade_from_upstream(upgrade, image_under_test)
    assert verdict.message.startswith("before the upgrade:")


def test_upgrade_install_error_fails(k8s, image_under_test):
    failed_install = Upgrade(k8s.UPSTREAM, None, k8s.snapshot(), "installing it failed: helm exit 1")
    verdict = check.upgrade_from_upstream(failed_install, image_under_test)
    assert verdict.message == "installing it failed: helm exit 1"


def test_digest_of_forms(k8s):
    assert check.digest_of(f"docker-pullable://quay.io/x@{k8s.OLD_DIGEST}") == k8s.OLD_DIGEST
    assert check.digest_of(k8s.CONFIG_DIGEST) == k8s.CONFIG_DIGEST
    assert check.digest_of("quay.io/x:v1") == ""
