"""Options, prerequisites and wiring: what happens before any cluster (or image) work."""

import subprocess
import sys

import pytest

from pytest_dhi_cilium.cluster import fixtures as cluster_plugin
from pytest_dhi_cilium.cluster.options import (ClusterSettings, missing_requirements, read_cluster_settings,
                                               requirements_message)


def run(pytester, monkeypatch, path_dir, *args):
    monkeypatch.setenv("PATH", str(path_dir))
    monkeypatch.delenv("KIND_EXPERIMENTAL_PROVIDER", raising=False)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


@pytest.mark.parametrize("plugins, kind_tools", [
    ((), "kind (not on PATH; install it or pass --kind-bin=PATH); "
         "kubectl (not on PATH; install it or pass --kind-kubectl-bin=PATH); "),
    # Without pytest-kind (the cluster extra; here disabled) --kind-bin and --kind-kubectl-bin
    # do not exist: not offered. The cluster is named as with pytest-kind.
    (("-p", "no:pytest-kind"), "kind (not on PATH; install it); kubectl (not on PATH; install it); "),
])
def test_cluster_tier_without_kind_or_helm_stops_with_one_message(plugins, kind_tools, pytester, monkeypatch,
                                                                   tmp_path, k8s):
    archive, _ = k8s.tiny_docker_archive(tmp_path / "op.tar")
    result = run(pytester, monkeypatch, k8s.fake_tools(tmp_path / "bin"), *plugins,
                 f"--dhi-image=docker-archive:{archive}", "--dhi-tier=cluster")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert errors == [
        "ERROR: the cluster tier (a kind cluster named 'pytest-kind') cannot run; missing: "
        "helm (not on PATH; install it or pass --helm-bin=PATH); " + kind_tools +
        "docker (kind's node provider; not on PATH)"]
    assert "collected" not in result.stdout.str()


def test_the_message_comes_before_the_image_is_read(pytester, monkeypatch, tmp_path, k8s):
    bin_dir = k8s.fake_tools(tmp_path / "bin", "kind", "kubectl", "docker")
    result = run(pytester, monkeypatch, bin_dir, "--dhi-image=docker-archive:/no/such/op.tar", "--dhi-tier=image,cluster")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: the cluster tier * cannot run; missing: helm (not on PATH; *"])
    assert "kind (" not in result.stderr.str() and "no such file" not in result.stderr.str()


def test_a_bad_explicit_binary_is_named(pytester, monkeypatch, tmp_path, k8s):
    bin_dir = k8s.fake_tools(tmp_path / "bin", "kind", "kubectl", "docker")
    result = run(pytester, monkeypatch, bin_dir, "--dhi-image=acme/op:1.18.3", "--dhi-tier=cluster",
                 "--helm-bin=/opt/helm/helm")
    result.stderr.fnmatch_lines(["*missing: helm (--helm-bin=/opt/helm/helm is not an executable file)"])


def test_byo_cluster_needs_helm_only(pytester, monkeypatch, tmp_path, k8s):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    result = run(pytester, monkeypatch, k8s.fake_tools(tmp_path / "bin"), "--dhi-image=acme/op:1.18.3",
                 "--dhi-tier=cluster", f"--dhi-kubeconfig={kubeconfig}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line.strip()] == [
        f"ERROR: the cluster tier (--dhi-kubeconfig={kubeconfig}) cannot run; missing: "
        "helm (not on PATH; install it or pass --helm-bin=PATH)"]


def test_xdist_load_is_switched_so_one_worker_owns_the_cluster(pytester, monkeypatch, tmp_path, k8s):
    pytest.importorskip("xdist")
    bin_dir = k8s.fake_tools(tmp_path / "bin", "kind", "kubectl", "helm", "docker")
    pytester.makepyfile("def test_a(): pass\ndef test_b(): pass\n")
    result = run(pytester, monkeypatch, bin_dir, "-n", "2", "--dhi-no-suite", "--dhi-image=acme/op:1.18.3",
                 "--dhi-tier=cluster")
    result.stdout.fnmatch_lines(["dhi-cilium: --dist load switched to loadscope: one worker runs the cluster checks",
                                 "dhi-cilium cluster tier: kind cluster 'pytest-kind' (kind */bin/kind)*"])
    assert result.ret == 0
    each = run(pytester, monkeypatch, bin_dir, "-n", "2", "--dist", "each", "--dhi-no-suite",
               "--dhi-image=acme/op:1.18.3", "--dhi-tier=cluster")
    each.stderr.fnmatch_lines(["ERROR: the cluster tier cannot run with --dist each*"])


def test_nothing_heavy_is_imported_by_the_plugin_or_the_cluster_options():
    code = ("import sys, pytest_dhi_cilium.plugin, pytest_dhi_cilium.cluster.options, "
            "pytest_dhi_cilium.cluster.fixtures; "
            "print(sorted(m for m in ('kubernetes', 'pytest_kind', 'yaml') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


class FakeConfig:
    def __init__(self, **options):
        self.options = {"dhi_helm_sets": [], "dhi_helm_values": [], "dhi_kubeconfig": None,
                        "dhi_upgrade_from": None, "helm_bin": None, "dhi_cilium_chart": "cilium/cilium",
                        "dhi_cilium_version": None, "dhi_cluster_timeout": "600", "dhi_cluster_settle": "30",
                        "cluster_name": "pytest-kind", "keep_cluster": False, **options}

    def getoption(self, name, default=None):
        return self.options.get(name, default)


def which_all(name):
    return f"/usr/local/bin/{name}"


def test_settings_reuse_pytest_kind_options():
    settings = read_cluster_settings(FakeConfig(cluster_name="ci", keep_cluster=True, kind_image="kindest/node:v1.33.1",
                                                kubeconfig="/tmp/kind-config"), which=which_all)
    assert (settings.cluster_name, settings.keep_cluster, settings.kind_image, settings.kind_kubeconfig) == (
        "ci", True, "kindest/node:v1.33.1", "/tmp/kind-config")
    assert (settings.kind_bin, settings.kubectl_bin, settings.helm_bin) == (
        "/usr/local/bin/kind", "/usr/local/bin/kubectl", "/usr/local/bin/helm")
    assert (settings.timeout, settings.settle, settings.byo) == (600.0, 30.0, False)


def test_settings_without_pytest_kind_installed_use_the_same_cluster_name():
    config = FakeConfig()
    del config.options["cluster_name"], config.options["keep_cluster"]
    assert read_cluster_settings(config, which=which_all).cluster_name == "pytest-kind"


@pytest.mark.parametrize("options, message", [
    ({"dhi_helm_sets": ["operator.replicas"]}, "--dhi-helm-set 'operator.replicas': expected KEY=VALUE"),
    ({"dhi_helm_values": ["/no/values.yaml"]}, "--dhi-helm-values '/no/values.yaml': no such file"),
    ({"dhi_kubeconfig": "/no/kubeconfig"}, "--dhi-kubeconfig '/no/kubeconfig': no such file"),
    ({"dhi_upgrade_from": "docker-archive:/x.tar"}, "--dhi-upgrade-from='docker-archive:/x.tar': needs a registry"),
    ({"dhi_cluster_timeout": "soon"}, "--dhi-cluster-timeout='soon' is not a number of seconds"),
    ({"dhi_cluster_settle": "-1"}, "--dhi-cluster-settle='-1' must not be negative"),
])
def test_bad_values_are_usage_errors(options, message):
    with pytest.raises(pytest.UsageError, match="^" + message.replace("(", r"\(").replace("[", r"\[")):
        read_cluster_settings(FakeConfig(**options), which=which_all)


def test_missing_python_packages_point_at_the_extra():
    settings = read_cluster_settings(FakeConfig(), which=which_all)
    missing = missing_requirements(settings, find_spec=lambda name: None)
    assert missing == ["Python packages kubernetes, pytest-kind (pip install 'pytest-dhi-cilium[cluster]')"]
    byo = ClusterSettings(**{**settings.__dict__, "byo_kubeconfig": "/k"})
    assert missing_requirements(byo, find_spec=lambda name: None) == [
        "Python package kubernetes (pip install 'pytest-dhi-cilium[cluster]')"]
    assert requirements_message(["helm (x)"], byo) == "the cluster tier (--dhi-kubeconfig=/k) cannot run; missing: helm (x)"


def test_cluster_items_are_grouped_for_xdist(pytester):
    pytester.makepyfile("""
        import pytest

        pytestmark = pytest.mark.dhi_tier("cluster")

        def test_suite_check(): pass
    """)
    items, _ = pytester.inline_genitems("-p", "no:cacheprovider")
    other = pytester.getitem("def test_func(): pass")
    cluster_plugin.pytest_collection_modifyitems(items[0].config, items + [other])
    assert [m.args for m in items[0].iter_markers("xdist_group")] == [(cluster_plugin.XDIST_GROUP,)]
    assert list(other.iter_markers("xdist_group")) == []
