"""pytest wiring only: options -> settings, the built-in suite into collection, one test
parameter per image, and the report at the end. Decisions live in checks/, I/O in image/,
runtime/ and cluster/."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from . import options
from .fixtures import (dhi_expectations, dhi_image, dhi_record, dhi_settings,  # noqa: F401
                       dhi_shell_providers, dhi_tags, dhi_target, dhi_user)
from .runtime.fixtures import (dhi_engine, dhi_help_run, dhi_operator_run,  # noqa: F401
                               dhi_reference_runs, dhi_restricted_run, dhi_runnable,
                               dhi_shell_runs, dhi_version_run)
from .image.reference import REGISTRY
from .state import STATE_KEY, VERDICT_KEY, SetupError, DhiState
from .verdict import CHECK_TIERS

SUITE_DIR = Path(__file__).parent / "suite"
SUITE_MODULES = {"image": "dhi_image.py", "runtime": "dhi_runtime.py", "cluster": "dhi_cluster.py"}


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)
    from .cluster.options import add_cluster_options  # options only: imports nothing heavy

    add_cluster_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "dhi_check(id): a pytest-dhi-cilium check (stable id)")
    config.addinivalue_line("markers", "dhi_tier(name): the tier of the checks in a suite module")
    settings = options.read_settings(config)
    if settings is None:
        return
    state = DhiState(settings)
    config.stash[STATE_KEY] = state
    config.pluginmanager.register(_Reporter(config, state), "dhi-cilium-reporter")
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        state.pins.update(workerinput.get("dhi_pins") or {})
    elif config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_PinForWorkers(state), "dhi-cilium-pins")
    if any("cluster" in settings.tiers_for(ref) for ref in settings.images):
        # Imported only now: kind/helm/kubernetes cost nothing to image-tier runs.
        config.pluginmanager.import_plugin("pytest_dhi_cilium.cluster.fixtures")
    _one_worker_per_engine(config, settings)
    if not config.getoption("dhi_no_suite"):
        _add_suite(config, settings)


_XDIST_NOTE = pytest.StashKey[str]()


def _one_worker_per_engine(config: pytest.Config, settings: options.Settings) -> None:
    """Runtime and cluster checks share state outside the process — images loaded into the
    engine (and removed at the end), one Cilium per cluster — so under pytest-xdist each of
    those modules must stay on one worker: --dist loadscope/loadfile/loadgroup keep it there;
    plain load/worksteal scatter tests and are switched to loadscope; --dist each is refused."""
    if getattr(config, "workerinput", None) is not None or not config.pluginmanager.hasplugin("xdist"):
        return
    tiers = [t for t in ("runtime", "cluster") if any(t in settings.tiers_for(r) for r in settings.images)]
    dist = config.getoption("dist", "no")
    if not tiers or dist == "no":
        return
    if dist == "each":
        raise pytest.UsageError(f"the {' and '.join(tiers)} tier cannot run with --dist each: every worker "
                                "would drive the same engine/cluster; use --dist loadscope (or loadgroup)")
    if dist in ("load", "worksteal"):
        config.option.dist = "loadscope"
        config.stash[_XDIST_NOTE] = f"--dist {dist} switched to loadscope: one worker runs the " \
                                    f"{' and '.join(tiers)} checks"


def _add_suite(config: pytest.Config, settings: options.Settings) -> None:
    """Collect the suite directory (the tiers not requested are ignored in collection).
    Without explicit paths the suite replaces the default (the current directory or
    testpaths): `pytest --dhi-image=REF` anywhere runs the checklist and nothing else."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = []
    if str(SUITE_DIR) not in config.args:
        config.args.append(str(SUITE_DIR))


def _requested_modules(config: pytest.Config) -> set[str]:
    state = config.stash[STATE_KEY]
    tiers = {t for ref in state.settings.images for t in state.settings.tiers_for(ref)}
    return {SUITE_MODULES[t] for t in tiers}


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.parent == SUITE_DIR and collection_path.name in SUITE_MODULES.values():
        if config.stash.get(STATE_KEY, None) is None or config.getoption("dhi_no_suite"):
            return True
        return collection_path.name not in _requested_modules(config) or None
    return None


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    """Suite modules are collected whatever the user's python_files setting says."""
    if file_path.parent != SUITE_DIR or file_path.name not in SUITE_MODULES.values():
        return None
    patterns = parent.config.getini("python_files")
    if any(fnmatch.fnmatch(file_path.name, p) for p in patterns):
        return None  # the python plugin collects it already
    return pytest.Module.from_parent(parent, path=file_path)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "dhi_target" not in metafunc.fixturenames:
        return
    state = metafunc.config.stash.get(STATE_KEY, None)
    if state is None:
        return
    if state.targets is None:
        from .targets import expand_targets

        state.targets = expand_targets(state.settings, state.pins)
    tier_marker = metafunc.definition.get_closest_marker("dhi_tier")
    tier = tier_marker.args[0] if tier_marker else None
    targets = [t for t in state.targets if tier is None or tier in t.tiers]
    metafunc.parametrize("dhi_target", targets, ids=[t.id for t in targets], scope="session")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("dhi_check")
        if marker:
            item.extra_keyword_matches.add(marker.args[0])  # -k no-shell


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash.get(STATE_KEY, None)
    if state is None:
        return []
    s = state.settings
    lines = [f"dhi-cilium: profile {s.profile.name}, variant {s.variant}, platforms "
             f"{','.join(s.platforms) if s.platforms else 'all'}; {len(s.images)} image(s):"]
    for ref in s.images:  # which tiers apply to this image, and why
        if s.tiers is not None:
            why = "as --dhi-tier asks"
        elif ref.daemonless:
            what = "a registry image" if ref.transport == REGISTRY else "an archive"
            why = f"{what} is read without an engine; --dhi-tier=image,runtime adds the runtime tier"
        else:
            why = "a Docker daemon reference: the engine that holds it runs it too"
        lines.append(f"dhi-cilium:   {ref.raw}: tiers {', '.join(s.tiers_for(ref))} ({why})")
    note = config.stash.get(_XDIST_NOTE, "")
    return lines + ([f"dhi-cilium: {note}"] if note else [])


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Plain `pytest` where nothing is collected (the plugin installed, no --dhi-image, no tests
    of the user's): say how to point it at an image. Silent whenever anything was collected,
    deselected or named on the command line, so projects with tests never see it."""
    if config.stash.get(STATE_KEY, None) is not None or exitstatus != pytest.ExitCode.NO_TESTS_COLLECTED \
            or getattr(config, "workerinput", None) is not None or terminalreporter.stats.get("deselected") \
            or config.args_source == pytest.Config.ArgsSource.ARGS:
        return
    terminalreporter.write_line(
        "dhi-cilium: no image to certify. Point pytest at one: pytest --dhi-image=REF, where REF is "
        "NAME[:TAG] (Docker daemon), docker://REGISTRY/REPO:TAG (a registry), docker-archive:PATH, "
        "oci-archive:PATH or oci:DIR "
        "(see pytest --help, dhi-cilium section)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    marker = item.get_closest_marker("dhi_check")
    callspec = getattr(item, "callspec", None)
    target = callspec.params.get("dhi_target") if callspec else None
    if marker is None or target is None:
        return
    report = outcome.get_result()
    state = item.config.stash[STATE_KEY]
    verdict = item.stash.get(VERDICT_KEY, None)
    check = marker.args[0]
    error = call.excinfo.value if call.excinfo is not None else None
    # A plain attribute survives xdist's report serialization (JSON-able values only).
    report.dhi_cilium = {
        "check": check,
        "tier": CHECK_TIERS.get(check, "custom"),
        "target": target.id,
        "ref": target.ref.raw,
        "platform": target.platform_text,
        "profile": state.settings.profile.name,
        "tiers": list(target.tiers),
        "image": state.meta.get(target.id),
        "verdict": verdict.to_dict() if verdict and call.when == "call" else None,
        # The image could not be read, no engine, ...: shown once per image and cause.
        "setup_error": {"message": str(error), "cause": error.cause, "where": str(item.path)}
        if isinstance(error, SetupError) else None,
    }
    if call.when == "call" and report.failed and verdict is not None and not verdict.ok \
            and not _plugin_debugging(item.config):
        # The suite's source and its fixtures' reprs mean nothing to a user of the plugin: the
        # failure is the verdict's explanation (message, expectation, evidence), as in JUnit.
        try:
            raise CheckFailed(verdict.explain())
        except CheckFailed:
            report.longrepr = item.repr_failure(pytest.ExceptionInfo.from_current())
        crash = getattr(report.longrepr, "reprcrash", None)
        if crash is not None:  # the short summary line: the message, not the whole evidence
            crash.message = crash.message.splitlines()[0]


class CheckFailed(pytest.fail.Exception):
    __module__ = "builtins"  # "CheckFailed: <check>: <message>" in the short summary

    def __init__(self, text: str) -> None:
        super().__init__(text, pytrace=False)


def _plugin_debugging(config: pytest.Config) -> bool:
    """``--tb=long``/``--tb=native`` or ``-vv``: show pytest's own traceback of the suite."""
    return config.getoption("tbstyle", "auto") in ("long", "native") or config.getoption("verbose", 0) >= 2


class _PinForWorkers:
    """pytest-xdist: the controller (which never collects) lists the inputs once — every
    registry tag resolved to a digest, the targets kept for the report — and hands every worker
    the digests, so no two workers can judge different images behind one moving tag."""

    def __init__(self, state: DhiState) -> None:
        self.state = state

    def pytest_configure_node(self, node) -> None:
        if self.state.targets is None:
            from .targets import expand_targets

            self.state.targets = expand_targets(self.state.settings, self.state.pins)
        node.workerinput["dhi_pins"] = dict(self.state.pins)


class _Reporter:
    """Collects every suite report (xdist workers' included) and writes the report files."""

    def __init__(self, config: pytest.Config, state: DhiState) -> None:
        from .report import ReportBuilder

        self.config = config
        self.state = state
        self.builder = ReportBuilder()
        self.document: dict | None = None
        self.moved: dict[str, str] = {}  # registry reference -> its tag moved during the run
        self._errors_shown: set[tuple[str, str]] = set()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, "dhi_cilium", None)
        if data is None:
            return
        error = data.get("setup_error")
        if error and report.when == "setup" and report.failed:
            # One error per image and cause: the checks it stops after the first are skipped
            # as not run (before the terminal, JUnit or -x see the report; xdist workers and
            # then the controller each apply this, so it holds across workers too).
            key = (data["target"], error["cause"])
            if key in self._errors_shown:
                report.outcome = "skipped"  # no line number: `-rs` folds them into one line
                report.longrepr = (error["where"], None, f"Skipped: not run: {error['message']}")
            self._errors_shown.add(key)
        self.builder.add(report)

    @pytest.hookimpl(trylast=True)  # after pytest's own teardown of the session fixtures (-x, Ctrl-C)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if getattr(self.config, "workerinput", None) is not None:
            return  # xdist workers ship their reports; only the controller writes
        from .report import write_json, write_markdown

        order = []
        collect_only = self.config.option.collectonly
        if not collect_only:
            # Every image is in the report, even when -k, -x or an interrupt ran none of its checks:
            # the targets listed at collection (or by the xdist controller), never listed again.
            for t in self.state.targets or ():
                self.builder.expect(t.id, t.ref.raw, t.platform_text, self.state.settings.profile.name, list(t.tiers))
                order.append(t.id)
        self.document = self.builder.document(order)
        settings = self.state.settings
        if self.state.pins and not collect_only:
            from .targets import moved_tags

            self.moved = moved_tags(settings, self.state.pins)
            for image in self.document["images"]:
                if image["ref"] in self.moved:
                    image["warnings"] = list(image.get("warnings") or []) + [self.moved[image["ref"]]]
        if self.state.cluster_cleanup:
            self.document["cluster_cleanup"] = list(self.state.cluster_cleanup)
        if settings.report:
            write_json(self.document, settings.report)
        if settings.report_md:
            write_markdown(self.document, settings.report_md)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.document or not self.document["images"]:
            return  # nothing ran (e.g. --collect-only)
        terminalreporter.section("dhi-cilium")
        for image in self.document["images"]:
            counts: dict[str, int] = {}
            for check in image["checks"]:
                counts[check["outcome"]] = counts.get(check["outcome"], 0) + 1
            # A skipped check is shown with its reason below; "not run" names only the rest.
            unseen = [c for c in image["not_run"] if c not in {check["id"] for check in image["checks"]}]
            tally = ", ".join([f"{n} {o}" for o, n in sorted(counts.items())]
                              + ([f"{len(unseen)} not run"] if unseen else []))
            where = f" ({image['platform']})" if image["platform"] else ""
            terminalreporter.write_line(
                f"{image['result'].upper():10} {image['ref']}{where} "
                f"variant={image['variant'] or '?'} profile={image['profile']}: {tally}")
            for error in image["errors"]:
                terminalreporter.write_line(f"    error    {error}")
            for check in image["checks"]:
                if check["outcome"] != "passed":  # failures, errors and skips, each with its why
                    terminalreporter.write_line(f"    {check['outcome']:8} {check['id']}: {check['message']}")
            if unseen:
                terminalreporter.write_line(f"    not run  {', '.join(unseen)}")
            if image["ref"] in self.moved:
                terminalreporter.write_line(f"    warning  {self.moved[image['ref']]}")
        if self.document.get("cluster_cleanup"):
            terminalreporter.write_line("cluster cleanup (a cluster this run did not create):")
            for line in self.document["cluster_cleanup"]:
                terminalreporter.write_line(f"    {line}")
        for path in (self.state.settings.report, self.state.settings.report_md):
            if path:
                terminalreporter.write_line(f"report written to {path}")
