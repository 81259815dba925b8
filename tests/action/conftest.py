"""Fixtures of the action tests: the canned GitHub API of the CI integration tests."""

from tests.ci.fake_api import fake_api

__all__ = ["fake_api"]
