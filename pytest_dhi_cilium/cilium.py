"""What the real ``cilium-operator-generic`` needs and prints at boot, as observed on real
1.17 and 1.18 builds (REFERENCE.md, "It also needs an API server address"). The runtime tier
boots it with these; the pure checks read its logs for these lines."""

from __future__ import annotations

# Run as the chart runs it (env K8S_NODE_NAME set), the operator builds a Kubernetes client
# while it assembles its object graph: with no API server address it dies there, before any
# start hook. An http:// address where nothing listens keeps it alive: it runs its start hooks
# (gops first), then retries the API server every 5 s for 60 s. Containers run with networking
# disabled, but the loopback interface is up and nothing in it listens on port 1.
API_SERVER = "http://127.0.0.1:1"
API_WAIT_SECONDS = 60  # then it exits (1.17: rc 1, 1.18: rc 255) "failed to start: Get ..."
KUBECONFIG_PATH = "/tmp/dhi-cilium/kubeconfig"
# Both 1.17 and 1.18 list --k8s-kubeconfig-path (1.18 renamed --k8s-api-server to
# --k8s-api-server-urls), so a kubeconfig file is the address both understand.
API_SERVER_FLAGS = ("--k8s-kubeconfig-path", "--k8s-api-server", "--k8s-api-server-urls")

# The k8s client's start hook logs this before each attempt. Start hooks run one after the
# other and the hive stops at the first failing one, so this line proves every hook before it
# (gops included) returned without error.
API_WAIT = "Establishing connection to apiserver"
# Logged *before* gops listens and writes its port file: on its own it proves nothing.
GOPS_STARTED = "Started gops server"
# A start that failed (1.17 logrus and 1.18 slog alike); error-level lines carry the reason.
START_FAILED = ("level=fatal", "Start hook failed", "Failed to start hive")
REASON_MARKERS = ("level=fatal", "level=error")


def kubeconfig(server: str = API_SERVER) -> bytes:
    """A kubeconfig naming ``server`` with no credentials (plain http needs none)."""
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: dhi-cilium\n  cluster:\n    server: {server}\n"
        "contexts:\n- name: dhi-cilium\n  context:\n    cluster: dhi-cilium\n    user: dhi-cilium\n"
        "current-context: dhi-cilium\n"
        "users:\n- name: dhi-cilium\n  user: {}\n"
    ).encode()


def names_api_server(args: tuple[str, ...]) -> bool:
    """The operator args already say where the API server is (then the boot adds none)."""
    return any(a == flag or a.startswith(flag + "=") for a in args for flag in API_SERVER_FLAGS)


def start_failures(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(m in line for m in START_FAILED)]


def reason_lines(text: str) -> list[str]:
    """The error and fatal lines: the operator's own account of why it stopped."""
    return [line for line in text.splitlines() if any(m in line for m in REASON_MARKERS)]
