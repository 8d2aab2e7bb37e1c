"""Conformance: a test suite for APIs that claim to be OpenAI-compatible."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("conformance")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
