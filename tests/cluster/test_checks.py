"""The cluster verdicts, judged on API-shaped objects: the healthy install and each way it fails."""

import copy

import pytest

from pytest_dhi_cilium.checks import cluster as check
from pytest_dhi_cilium.checks.cluster import Healthz, ImageUnderTest, NodeImage, ProcessUser, Upgrade
from pytest_dhi_cilium.checks.users import RuntimeUser

k8s_NODE = "dhi-cilium-control-plane"  # conftest's NODE (parametrize ids are built before fixtures)
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
    assert verdict.message == (
        "1/1 operator pod(s) Ready with no restart, watched 30s from 11:39:29Z (the whole 30s settle window); "
        "/healthz 200 to our GET http://127.0.0.1:9234/healthz via node netns; lease acquired and renewed by pod "
        f"{k8s.POD}; CRDs established or re-confirmed by this run's operator")
    assert any(f"holderIdentity '{k8s.NODE}-kXq4tRbn2w'" in e and "acquired 2025-06-12T11:38:50" in e
               and "its container started 2025-06-12T11:38:40Z" in e for e in verdict.evidence)
    assert "CRD ciliumnodes.cilium.io: Established at 2025-06-12T11:39:00Z, after this run's operator pod started" \
        in verdict.evidence


GOPS_CRASH_LOG = (  # the previous container of operator 1.17.5 in the DHI layout without a writable gops dir
    'time="2025-06-12T11:39:30.402Z" level=info msg="Cilium Operator 1.17.5 69aab28cf1 2025-06-12T11:29:27+00:00 '
    'go version go1.27.3 linux/amd64" subsys=cilium-operator-generic\n'
    'time="2025-06-12T11:39:30.512Z" level=error msg="Start hook failed" error="mkdir /home: permission denied" '
    'function="gops.registerGopsHooks.func1 (pkg/gops/cell.go:43)" subsys=hive\n'
    'time="2025-06-12T11:39:30.513Z" level=fatal msg="failed to start: mkdir /home: permission denied" '
    'subsys=cilium-operator-generic\n')


def test_crashloopbackoff_fails_naming_pod_reason_and_last_exit(k8s):
    pod = k8s.crashlooping(k8s.operator_pod())
    dep = k8s.deployment(ready=0, available=0, available_cond="False")
    not_started = check.SettleObservation("not started", detail="the operator cannot recover: ...")
    verdict = check.operator_healthy(k8s.snapshot(pods=[pod], deployment=dep, settle_observed=not_started,
                                                  previous_logs={k8s.POD: GOPS_CRASH_LOG}))
    assert not verdict.ok
    assert verdict.message.startswith(  # the crash loop and what the operator died of lead
        f"pod {k8s.POD}: CrashLoopBackOff, 4 restart(s), last exit 1 (Error) at 2025-06-12T11:39:31Z: "
        'level=fatal msg="failed to start: mkdir /home: permission denied" (+')
    text = verdict.explain()
    assert "readyReplicas 0 != replicas 1" in text
    assert f"pod {k8s.POD}: container cilium-operator waiting: CrashLoopBackOff (back-off 1m20s" in text
    assert f"pod {k8s.POD}: container cilium-operator restarted 4 time(s); last exit 1 (Error)" in text
    assert "Available=False (MinimumReplicasUnavailable" in text
    # the diagnostics ride along with a failure
    assert "Deployment cilium-operator conditions: Available=False" in text
    assert f"events of pod {k8s.POD}" in text
    assert "wait: converged after 1m12s" in text
    assert "settle window of 30s not started: the operator cannot recover" in text


def test_crash_without_a_fatal_line_says_so(k8s):
    pod = k8s.crashlooping(k8s.operator_pod())
    assert check.crash_problems(k8s.snapshot(pods=[pod])) == [
        f"pod {k8s.POD}: CrashLoopBackOff, 4 restart(s), last exit 1 (Error) at 2025-06-12T11:39:31Z: "
        "no level=fatal line in the exited container's log"]


def test_a_container_that_just_exited_leads_with_its_own_log(k8s):
    pod = k8s.crashlooping(k8s.operator_pod())
    cs = pod["status"]["containerStatuses"][0]
    cs["state"] = {"terminated": {"exitCode": 255, "reason": "Error", "finishedAt": "2025-06-12T11:39:58Z"}}
    slog_fatal = ('time=2025-06-12T11:39:58.120Z level=fatal msg="failed to start: mkdir /nonexistent: permission '
                  'denied" module=operator\n')
    snap = k8s.snapshot(pods=[pod], operator_logs={k8s.POD: slog_fatal}, previous_logs={k8s.POD: GOPS_CRASH_LOG})
    assert check.crash_problems(snap) == [
        f"pod {k8s.POD}: exited, 4 restart(s), last exit 255 (Error) at 2025-06-12T11:39:58Z: "
        'level=fatal msg="failed to start: mkdir /nonexistent: permission denied"']


@pytest.mark.parametrize("log, expected", [
    (GOPS_CRASH_LOG, 'level=fatal msg="failed to start: mkdir /home: permission denied"'),
    ('{"level":"fatal","msg":"failed to start: Get \\"http://127.0.0.1:8080/api\\": refused","time":"x"}\n',
     'level=fatal msg="failed to start: Get \\"http://127.0.0.1:8080/api\\": refused"'),
    ('level=info msg="Leading the operator HA deployment"\n', ""),
    ("(logs unavailable: ApiException: (400))", ""),
])
def test_fatal_line_in_logfmt_and_json_logs(log, expected):
    assert check.fatal_line(log) == expected


# -- the settle window -----------------------------------------------------------------------------


@pytest.mark.parametrize("observed, expected", [
    (None, "the operator was not watched over a settle window (30s configured)"),
    (check.SettleObservation("not started", detail="no pod of Deployment cilium-operator to watch"),
     "settle window of 30s not started: no pod of Deployment cilium-operator to watch"),
    (check.SettleObservation("broke", 12.0, detail="pod x: Ready=False"),
     "settle window broke after 12s of 30s: pod x: Ready=False"),
    (check.SettleObservation("held", 10.0), "the operator pods were watched 10s, less than the 30s settle window"),
    (check.SettleObservation("held", 30.0, looks=16, unreadable=16),
     "settle window of 30s not observed: the API server was unreadable at every look"),
])
def test_operator_healthy_needs_the_whole_settle_window_observed(k8s, observed, expected):
    verdict = check.operator_healthy(k8s.snapshot(settle_observed=observed))
    assert not verdict.ok
    assert verdict.message == expected


def test_an_operator_ready_just_before_the_deadline_passes_only_with_the_window_held(k8s):
    """The issue's case: the agent never became ready, the wait gave up at its deadline with the
    operator just Ready; the operator's verdict rests on what the settle window then saw."""
    gave_up = "gave up after 10m00s; still pending: DaemonSet kube-system/cilium: numberReady 0 != 1"
    agent_down = {"daemonset": k8s.daemonset(ready=0, available=0), "waited": gave_up}
    held = check.operator_healthy(k8s.snapshot(**agent_down))
    assert held.ok, held.explain()
    assert not check.cilium_ready(k8s.snapshot(**agent_down)).ok
    broke = check.operator_healthy(k8s.snapshot(**agent_down, settle_observed=check.SettleObservation(
        "broke", 6.0, k8s.NOW, f"pod {k8s.POD}: container cilium-operator restarted 1 time(s)")))
    assert broke.message == (f"settle window broke after 6s of 30s: pod {k8s.POD}: container cilium-operator "
                             "restarted 1 time(s)")
    assert f"wait: {gave_up}" in broke.explain()


def test_looks_that_found_the_api_server_unreadable_are_counted_in_the_message(k8s):
    """A restart during such a look still shows in restartCount at the next; a brief readiness
    flap would not — so the pass says how much of the window was really seen."""
    seen = check.SettleObservation("held", 30.0, k8s.NOW, looks=16, unreadable=2)
    verdict = check.operator_healthy(k8s.snapshot(settle_observed=seen))
    assert verdict.ok, verdict.explain()
    assert "(the whole 30s settle window, API server unreadable at 2 of 16 looks)" in verdict.message


def test_settle_blocker_says_why_watching_is_pointless(k8s):
    assert check.settle_blocker(k8s.snapshot()) == ""
    assert check.settle_blocker(k8s.snapshot(pods=[])) == "no pod of Deployment cilium-operator to watch"
    crashing = k8s.snapshot(pods=[k8s.crashlooping(k8s.operator_pod(), restarts=3)])
    assert check.settle_blocker(crashing).startswith(
        f"the operator cannot recover: pod {k8s.POD}: container cilium-operator CrashLoopBackOff after 3 restart(s)")
    starting = k8s.snapshot(pods=[k8s.operator_pod(ready=False)])
    assert check.settle_blocker(starting) == (
        f"the operator was not Ready with no restart when the rollout wait ended: pod {k8s.POD}: Ready=False "
        "(ContainersNotReady: containers with unready status: [cilium-operator])")
    assert check.settle_blocker(check.Snapshot(k8s.NS, k8s.NOW, api_error="timeout")) == ""  # watch anyway


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
    # a previous run's operator on the same node: the hostname matches, the time does not
    ({"acquired_ago": 3600, "holder": f"{k8s_NODE}-Pr3v10usRn"},
     f"held by '{k8s_NODE}-Pr3v10usRn' since 2025-06-12T10:40:00.000000Z, before the running operator container "
     f"started (pod kube-system/cilium-operator-6d8c7b9f5-x2k4q container started 2025-06-12T11:38:40Z): an "
     "earlier operator process's lease (a previous run's, or this pod's container before a restart), not the "
     "running one's"),
    ({"acquired_ago": None}, "with no acquireTime: which operator process acquired it is unknown"),
])
def test_lease_problems_fail(k8s, lease_kw, expected):
    verdict = check.operator_healthy(k8s.snapshot(lease=None if lease_kw is None else k8s.lease(**lease_kw)))
    assert not verdict.ok
    assert expected in verdict.message


def test_an_earlier_lease_keeps_the_rollout_pending(k8s):
    """The waiter waits for this run's operator to take the lease, not for any holder."""
    earlier = k8s.lease(acquired_ago=3600, renewed_ago=1)
    assert any("an earlier operator process's lease" in p for p in check.rollout_pending(k8s.snapshot(lease=earlier)))


def test_a_lease_taken_by_the_restarted_container_is_its_own(k8s):
    pod = restarted(k8s.operator_pod())
    pod["status"]["containerStatuses"][0]["state"] = {"running": {"startedAt": k8s.ts(20)}}
    assert check.lease_problems(k8s.lease(acquired_ago=10), [pod], k8s.NOW) == []
    assert "an earlier operator process's lease" in check.lease_problems(k8s.lease(acquired_ago=70), [pod], k8s.NOW)[0]
    crashing = k8s.crashlooping(k8s.operator_pod())
    assert check.lease_problems(k8s.lease(), [crashing], k8s.NOW) == [
        f"Lease kube-system/cilium-operator-resource-lock: held by '{k8s.NODE}-kXq4tRbn2w' (acquired "
        f"2025-06-12T11:38:50.000000Z), but no operator container of {k8s.POD} is running to hold it"]


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


def test_crds_of_an_earlier_run_do_not_count_for_a_crashlooping_operator(k8s):
    old = {p: k8s.crd(p, created_ago=86400) for p in check.OPERATOR_CRDS}
    pod = k8s.crashlooping(k8s.operator_pod())
    verdict = check.operator_healthy(k8s.snapshot(pods=[pod], crds=old, previous_logs={k8s.POD: GOPS_CRASH_LOG}))
    assert not verdict.ok
    assert verdict.message.startswith(f"pod {k8s.POD}: CrashLoopBackOff")
    assert ("CRD ciliumnodes.cilium.io: Established since 2025-06-11T11:40:00Z, before this run's operator pod "
            "started (2025-06-12T11:38:32Z), and not re-confirmed by it: no write by cilium-operator* since "
            "(managedFields), no 'CRD (CustomResourceDefinition) is installed and up-to-date' line for it in the "
            "operator's log") in verdict.explain()


CONFIRMED_1_17 = ('time="2025-06-12T11:38:41.2Z" level=info msg="CRD (CustomResourceDefinition) is installed and '
                  'up-to-date" name={name} subsys=k8s')
CONFIRMED_1_18 = ('time=2025-06-12T11:38:41.200Z level=info msg="CRD (CustomResourceDefinition) is installed and '
                  'up-to-date" module=operator.create-crds name={name}')


@pytest.mark.parametrize("line", [CONFIRMED_1_17, CONFIRMED_1_18], ids=["1.17-logrus", "1.18-slog"])
def test_crds_of_an_earlier_run_count_when_this_operator_logs_it_checked_them(k8s, line):
    old = {p: k8s.crd(p, created_ago=86400) for p in check.OPERATOR_CRDS}
    log = "\n".join(line.format(name=f"{p}.cilium.io") for p in check.OPERATOR_CRDS)
    verdict = check.operator_healthy(k8s.snapshot(crds=old, operator_logs={k8s.POD: log}))
    assert verdict.ok, verdict.explain()
    assert (f"CRD ciliumnodes.cilium.io: re-confirmed by pod {k8s.POD}, its log: "
            f"{line.format(name='ciliumnodes.cilium.io')}") in verdict.evidence
    one_missing = "\n".join(line.format(name=f"{p}.cilium.io") for p in check.OPERATOR_CRDS[1:])
    verdict = check.operator_healthy(k8s.snapshot(crds=old, operator_logs={k8s.POD: one_missing}))
    assert verdict.message.startswith(f"CRD {check.OPERATOR_CRDS[0]}.cilium.io: Established since")


def test_a_crd_updated_by_this_operator_counts_and_the_api_servers_status_write_does_not(k8s):
    updated = k8s.crd("ciliumnodes", created_ago=86400)
    updated["metadata"]["managedFields"][0]["time"] = k8s.ts(50)
    status_only = k8s.crd("ciliumidentities", created_ago=86400)
    status_only["metadata"]["managedFields"][1]["time"] = k8s.ts(50)
    crds = k8s.all_crds(ciliumnodes=updated)
    assert ("CRD ciliumnodes.cilium.io: written by cilium-operator-generic at 2025-06-12T11:39:10Z "
            "(managedFields, Update)") in check.operator_healthy(k8s.snapshot(crds=crds)).evidence
    verdict = check.operator_healthy(k8s.snapshot(crds=k8s.all_crds(ciliumidentities=status_only)))
    assert verdict.message.startswith("CRD ciliumidentities.cilium.io: Established since 2025-06-11T11:40:00Z")


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
    assert ("/healthz not reached by our GET (pod proxy: error trying to reach service: dial tcp 172.18.0.2:9234: "
            "connect: connection refused); witness: the kubelet's readiness probe GET 127.0.0.1:9234/healthz "
            "(Ready=True since 2025-06-12T11:38:45Z)") in verdict.message
    assert "/healthz 200" not in verdict.message
    assert any("readiness probe GET 127.0.0.1:9234/healthz succeeds" in n for n in verdict.notes)
    not_ready = k8s.operator_pod(ready=False)
    verdict = check.operator_healthy(k8s.snapshot(pods=[not_ready], healthz=[unreachable]))
    assert not verdict.ok
    assert "/healthz not observed answering 200 (error trying to reach service" in verdict.explain()


def test_healthz_through_the_pod_proxy_is_named_as_the_witness(k8s):
    url = f"/api/v1/namespaces/kube-system/pods/{k8s.POD.split('/')[1]}:9234/proxy/healthz"
    verdict = check.operator_healthy(k8s.snapshot(healthz=[Healthz(k8s.POD, "pod proxy", url, 200, "ok")]))
    assert verdict.ok, verdict.explain()
    assert f"/healthz 200 to our GET {url} via pod proxy;" in verdict.message


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


def test_cilium_ready_fails_with_the_agents_cause_and_their_diagnostics(k8s):
    """The live run: the agent's image could not be pulled; the cause leads, the operator's
    diagnostics stay out."""
    failing = k8s.agent_pull_failing(k8s.agent_pod())
    snap = k8s.snapshot(agent_pods=[failing], daemonset=k8s.daemonset(ready=0, available=0),
                        nodes=[k8s.node(ready=False)],
                        agent_diagnostics=[f"events of pod {k8s.AGENT_POD}:\n  Warning Failed: Failed to pull image"])
    verdict = check.cilium_ready(snap)
    assert not verdict.ok
    assert verdict.message == (f"agent pod {k8s.AGENT_POD}: init container config waiting ErrImagePull: …dial tcp: "
                               "lookup quay.io: no such host (+4 more)")
    assert verdict.evidence[0] == f"agent pod {k8s.AGENT_POD}: Ready=False (ContainersNotReady: containers with unready status: [cilium-agent])"
    status = next(e for e in verdict.evidence if e.startswith(f"agent pod {k8s.AGENT_POD} on node {k8s.NODE}"))
    assert status.splitlines()[0].endswith(": Init:ErrImagePull (phase Pending), Ready=False (ContainersNotReady: "
                                           f"containers with unready status: [cilium-agent]); image {k8s.AGENT_IMAGE}")
    assert f"  init container config: waiting ErrImagePull: {k8s.PULL_NO_SUCH_HOST}; restarts 0\n" in status
    assert "  init container mount-cgroup: waiting PodInitializing; restarts 0" in status
    assert "  container cilium-agent: waiting PodInitializing" in status
    assert "Warning Failed: Failed to pull image" in verdict.explain()
    assert "helm get values" not in verdict.explain() and "Deployment cilium-operator conditions" not in verdict.explain()
    assert f"events of pod {k8s.POD}" not in verdict.explain()  # the operator's


def test_a_container_status_with_no_state_is_shown_as_such(k8s):
    """The API makes containerStatuses[].state optional: nothing is claimed for a status without one."""
    stateless = k8s.agent_pod()
    del stateless["status"]["containerStatuses"][0]["state"]
    assert "  container cilium-agent: no state reported; restarts 0" in check.agent_status(stateless)


def test_agent_problems_name_the_container_that_keeps_the_agent_down(k8s):
    assert check.agent_problems(k8s.agent_pod()) == []
    crashing = k8s.agent_pod()
    crashing["status"]["containerStatuses"][0].update(
        ready=False, restartCount=4, state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s "
                                                        "restarting failed container=cilium-agent pod=cilium-x7k2p"}},
        lastState={"terminated": {"exitCode": 1, "reason": "Error", "message": 'level=fatal msg="BPF filesystem missing"'}})
    next(c for c in crashing["status"]["conditions"] if c["type"] == "Ready")["status"] = "False"
    assert check.agent_problems(crashing)[0] == (
        f"agent pod {k8s.AGENT_POD}: container cilium-agent waiting CrashLoopBackOff after 4 restart(s), last exit 1 "
        '(Error): level=fatal msg="BPF filesystem missing"')
    assert check.pod_status_column(crashing) == "CrashLoopBackOff"
    assert ("  container cilium-agent: waiting CrashLoopBackOff: back-off 1m20s restarting failed container=cilium-agent "
            'pod=cilium-x7k2p; last exit 1 (Error): level=fatal msg="BPF filesystem missing"; restarts 4'
            ) in check.agent_status(crashing)
    failed_init = k8s.agent_pull_failing(k8s.agent_pod())
    failed_init["status"]["initContainerStatuses"][1]["state"] = {
        "terminated": {"exitCode": 32, "reason": "Error", "message": "mount: permission denied\n"}}
    failed_init["status"]["initContainerStatuses"][0]["state"] = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    assert check.agent_problems(failed_init)[0] == (f"agent pod {k8s.AGENT_POD}: init container mount-cgroup "
                                                    "terminated: exit 32 (Error): mount: permission denied")
    assert check.pod_status_column(failed_init) == "Init:Error"
    unscheduled = copy.deepcopy(k8s.agent_pod())
    unscheduled["status"] = {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."}]}
    assert check.agent_problems(unscheduled)[0] == (
        f"agent pod {k8s.AGENT_POD}: no container status yet (phase Pending, PodScheduled=False (Unschedulable: "
        "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.))")
    terminating = k8s.agent_pull_failing(k8s.agent_pod())
    terminating["metadata"]["deletionTimestamp"] = k8s.ts(1)
    assert check.agent_problems(terminating) == [] and check.pod_status_column(terminating) == "Terminating"


def test_pod_status_column_reads_like_kubectl(k8s):
    assert check.pod_status_column(k8s.agent_pod()) == "Running"
    assert check.pod_status_column(k8s.agent_pull_failing(k8s.agent_pod())) == "Init:ErrImagePull"
    second_running = k8s.agent_pull_failing(k8s.agent_pod())
    second_running["status"]["initContainerStatuses"][0]["state"] = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    second_running["status"]["initContainerStatuses"][1]["state"] = {"running": {"startedAt": k8s.ts(2)}}
    assert check.pod_status_column(second_running) == "Init:1/6"


def _pulling(k8s, reason, message, started_ago):
    return k8s.agent_pull_failing(k8s.agent_pod(started_ago=started_ago), reason=reason, message=message)


def test_agent_hopeless_when_no_retry_cures_the_pull_or_the_retries_ran_out(k8s):
    # the live run's cause: the registry's name does not resolve
    assert check.agent_hopeless([_pulling(k8s, "ErrImagePull", k8s.PULL_NO_SUCH_HOST, 5)], k8s.NOW) == (
        f"agent pod {k8s.AGENT_POD}: init container config waiting ErrImagePull: {k8s.PULL_NO_SUCH_HOST}")
    not_found = (f'rpc error: code = NotFound desc = failed to pull and unpack image "{k8s.AGENT_IMAGE}": failed to '
                 f'resolve reference "{k8s.AGENT_IMAGE}": {k8s.AGENT_IMAGE}: not found')
    assert "not found" in check.agent_hopeless([_pulling(k8s, "ErrImagePull", not_found, 5)], k8s.NOW)
    # a registry hiccup: the kubelet's retries get PULL_GIVE_UP seconds
    hiccup = (f'rpc error: code = Unknown desc = failed to pull and unpack image "{k8s.AGENT_IMAGE}": failed to copy: '
              'httpReadSeeker: failed open: unexpected status code 503 Service Unavailable')
    assert check.agent_hopeless([_pulling(k8s, "ErrImagePull", hiccup, 30)], k8s.NOW) == ""
    back_off = f'Back-off pulling image "{k8s.AGENT_IMAGE}"'
    assert check.agent_hopeless([_pulling(k8s, "ImagePullBackOff", back_off, 30)], k8s.NOW) == ""
    assert check.agent_hopeless([_pulling(k8s, "ImagePullBackOff", back_off, 150)], k8s.NOW) == (
        f"agent pod {k8s.AGENT_POD}: init container config waiting ImagePullBackOff: {back_off} "
        "(still failing 150s after the pod started)")
    assert check.agent_hopeless([k8s.agent_pod(), k8s.agent_pull_failing(k8s.agent_pod())], k8s.NOW) != ""
    assert check.agent_hopeless([k8s.agent_pod()], k8s.NOW) == ""


def test_agent_hopeless_on_a_crash_loop_like_the_operator(k8s):
    pod = k8s.agent_pod()
    cs = pod["status"]["containerStatuses"][0]
    cs.update(restartCount=1, state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}})
    assert check.agent_hopeless([pod], k8s.NOW) == ""  # may still recover
    cs["restartCount"] = check.CRASHLOOP_GIVE_UP
    assert check.agent_hopeless([pod], k8s.NOW) == (f"agent pod {k8s.AGENT_POD}: container cilium-agent waiting "
                                                    "CrashLoopBackOff after 3 restart(s): back-off 10s")
    # the operator's own rule stays the operator's: it reads no init container
    assert check.hopeless([_pulling(k8s, "ErrImagePull", k8s.PULL_NO_SUCH_HOST, 5)]) == ""


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
