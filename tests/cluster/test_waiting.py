"""Waiting is polling with a deadline (a fake clock here: no test sleeps), and says what is pending."""

import io

from pytest_dhi_cilium.cluster.waiting import Progress, elapsed_text, hold_for, wait_for


class Clock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def run_wait(states, deadline=600.0, hopeless=lambda s: ""):
    clock, out = Clock(), io.StringIO()
    feed = iter(states)
    result = wait_for(lambda: next(feed), lambda s: s, deadline=deadline, what="the Cilium rollout",
                      progress=Progress(stream=out), hopeless=hopeless, interval=2.0,
                      report_every=10.0, clock=clock, sleep=clock.sleep)
    return result, out.getvalue(), clock


def test_wait_returns_as_soon_as_nothing_is_pending():
    states = [["pod x: Ready=False"]] * 7 + [[]]
    result, out, clock = run_wait(states)
    assert result.ok and result.elapsed == 14.0 and clock.sleeps == [2.0] * 7
    assert "[dhi-cilium] waiting for the Cilium rollout (up to 10m00s)" in out
    assert "the Cilium rollout: 10s elapsed, 1 pending: pod x: Ready=False" in out
    assert out.rstrip().endswith("the Cilium rollout: converged after 14s")


def test_progress_lines_list_every_pending_item_up_to_three():
    two = ["DaemonSet cilium: numberReady 0 != 1", "node n: Ready=False"]
    _, out, _ = run_wait([two] * 6 + [[]])
    assert "the Cilium rollout: 10s elapsed, 2 pending: DaemonSet cilium: numberReady 0 != 1; node n: Ready=False" in out
    five = [f"CRD c{i}.cilium.io does not exist" for i in range(5)]
    _, out, _ = run_wait([five] * 6 + [[]])
    assert ("5 pending: CRD c0.cilium.io does not exist; CRD c1.cilium.io does not exist; "
            "CRD c2.cilium.io does not exist (+2 more)\n") in out


def test_wait_gives_up_at_the_deadline_with_what_is_still_pending():
    result, out, clock = run_wait(iter(lambda: ["DaemonSet cilium: numberReady 0 != 1"], None), deadline=30)
    assert not result.ok and result.elapsed == 30.0
    assert result.describe() == "gave up after 30s; still pending: DaemonSet cilium: numberReady 0 != 1"
    assert clock.now == 30.0  # the last sleep is cut to the deadline


def test_wait_stops_early_on_a_hopeless_state():
    states = [["pod x crashing"]] * 3
    result, _, clock = run_wait(states, hopeless=lambda s: "pod x: CrashLoopBackOff after 3 restart(s)")
    assert not result.ok and result.elapsed == 0 and clock.sleeps == []
    assert result.describe() == "stopped after 0s: pod x: CrashLoopBackOff after 3 restart(s)"


def test_settle_window_holds_or_breaks_at_the_first_problem():
    clock, out = Clock(), io.StringIO()
    held = hold_for(lambda: "fine", lambda s: [], window=30, what="settle", progress=Progress(stream=out),
                    clock=clock, sleep=clock.sleep)
    assert held.ok and held.elapsed == 30.0
    clock = Clock()
    states = iter(["fine", "fine", "restarted"])
    broke = hold_for(lambda: next(states), lambda s: ["pod x restarted 1 time(s)"] if s == "restarted" else [],
                     window=30, what="settle", progress=Progress(stream=out), clock=clock, sleep=clock.sleep)
    assert not broke.ok and broke.elapsed == 4.0 and broke.hopeless == "pod x restarted 1 time(s)"


def test_progress_step_heartbeat_and_outcome():
    out = io.StringIO()
    ticks = iter([0.0, 5.0, 100.0, 175.0])
    progress = Progress(stream=out, heartbeat=3600, clock=lambda: next(ticks))
    with progress.step("creating kind cluster dhi"):
        pass
    assert out.getvalue().splitlines() == ["[dhi-cilium] creating kind cluster dhi ...",
                                           "[dhi-cilium] creating kind cluster dhi: done in 5s"]
    out.truncate(0)
    out.seek(0)
    try:
        with progress.step("loading"):
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert out.getvalue().splitlines()[-1] == "[dhi-cilium] loading: failed after 1m15s"
    assert elapsed_text(3725) == "62m05s"


def test_progress_lines_show_through_pytest_capture(pytester):
    """Written with capture suspended, like pytest's live logging: visible without -s."""
    pytester.makepyfile("""
        from pytest_dhi_cilium.cluster.waiting import Progress

        def test_it(pytestconfig):
            print("captured noise")
            Progress(pytestconfig).line("creating kind cluster dhi (12s)")
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*[[]dhi-cilium[]] creating kind cluster dhi (12s)*"])
    result.stdout.no_fnmatch_line("*captured noise*")
