"""Shared fixtures: each lives in its own module and is made visible to every test here."""

import pytest
from fixtures_image import skip_reason, start_build, stop_build
from fixtures_pipeline import sample_mirror, sample_repo  # noqa: F401


def needs_image(item: pytest.Item) -> bool:
    return item.get_closest_marker("container") is not None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The container tests last (a stable sort: every other test keeps its place), so that the image build,
    # started in the background below, overlaps the rest of the suite instead of holding it up.
    items.sort(key=needs_image)


def pytest_collection_finish(session: pytest.Session) -> None:
    if not session.config.option.collectonly and any(map(needs_image, session.items)) and skip_reason() is None:
        start_build()


def pytest_sessionfinish(session: pytest.Session) -> None:
    stop_build()
