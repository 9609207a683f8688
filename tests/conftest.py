"""Shared fixtures: each lives in its own module and is made visible to every test here."""

from fixtures_pipeline import sample_mirror, sample_repo  # noqa: F401
