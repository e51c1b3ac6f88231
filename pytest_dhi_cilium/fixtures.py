"""The ``dhi_*`` fixtures the suite (and users' own tests) build on.

Loading problems (a missing image, a broken archive, no Docker) raise ``SetupError``: one
sentence, no traceback, cached by the session fixture so the image is not retried per test,
and shown once per image (the plugin reports the other checks it stops as not run).
"""

from __future__ import annotations

from typing import Callable

import pytest

from .image.model import Image, build_image
from .image.reference import image_tags
from .image.sources import EngineUnreachable, SourceError, open_source, reading
from .options import Settings
from .settings import Expectations, decide_variant
from .state import ENGINE_UNREACHABLE, STATE_KEY, VERDICT_KEY, SetupError, image_summary
from .targets import Target
from .verdict import Verdict


@pytest.fixture(scope="session")
def dhi_settings(pytestconfig: pytest.Config) -> Settings:
    state = pytestconfig.stash.get(STATE_KEY, None)
    if state is None:
        raise SetupError("no image to certify: pass --dhi-image=REF")
    return state.settings


@pytest.fixture(scope="session")
def dhi_target(request: pytest.FixtureRequest) -> Target:
    """Overridden by parametrization (one value per image and platform)."""
    raise SetupError("dhi_target is parametrized from --dhi-image; none was given")


@pytest.fixture(scope="session")
def dhi_image(dhi_target: Target, dhi_settings: Settings) -> Image:
    """The image model: config plus merged filesystem, read once per target and session."""
    if dhi_target.error:
        raise SetupError(dhi_target.error)
    try:
        with reading(dhi_target.ref), open_source(dhi_target.read_ref, dhi_settings.pull,
                                                  dhi_settings.insecure_registries) as source:
            return build_image(dhi_target.ref.raw, source.read(dhi_target.platform))
    except EngineUnreachable as exc:
        raise SetupError(f"{dhi_target.ref.raw}: {exc}; a Docker daemon reference is read through the "
                            "engine: start it, or certify the image daemonless as an archive "
                            "(docker save -o op.tar REF, then --dhi-image=docker-archive:op.tar)",
                            cause=ENGINE_UNREACHABLE) from None
    except SourceError as exc:
        raise SetupError(str(exc)) from None


@pytest.fixture(scope="session")
def dhi_tags(dhi_target: Target, dhi_image: Image) -> list[str]:
    """The tags the image goes by: the reference's, then the names the input carries."""
    return image_tags(dhi_target.ref, dhi_image.names)


@pytest.fixture(scope="session")
def dhi_expectations(dhi_image: Image, dhi_target: Target, dhi_settings: Settings, dhi_tags: list[str],
                     pytestconfig: pytest.Config) -> Expectations:
    variant, why = decide_variant(dhi_settings.variant, dhi_tags, dhi_image.config.labels)
    expectations = Expectations(dhi_settings.profile, variant, why)
    state = pytestconfig.stash[STATE_KEY]
    state.meta[dhi_target.id] = image_summary(dhi_target, dhi_image, expectations)
    return expectations


@pytest.fixture(scope="session")
def dhi_user(dhi_image: Image):
    """The runtime user resolved through the image's /etc/passwd and /etc/group."""
    from .checks.image import image_user

    return image_user(dhi_image)


@pytest.fixture(scope="session")
def dhi_shell_providers(dhi_image: Image) -> list:
    """Every shell program of the image with the paths that run it (checks/image.py), found
    once per image: a walk over the whole merged filesystem that no-shell judges and
    no-shell-runtime then probes."""
    from .checks.image import shell_providers

    return shell_providers(dhi_image)


@pytest.fixture
def dhi_record(request: pytest.FixtureRequest) -> Callable[[Verdict], Verdict]:
    """Keep a verdict for the report (and JUnit), then hand it back to be asserted."""

    def record(verdict: Verdict) -> Verdict:
        request.node.stash[VERDICT_KEY] = verdict
        return verdict

    return record
