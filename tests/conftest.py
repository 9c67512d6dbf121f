"""Shared fixtures: every test gets labs in its own temporary folder."""

import pytest

from miglab import Lab


@pytest.fixture
def lab_root(tmp_path):
    return tmp_path / "labs"


@pytest.fixture
def lab(lab_root):
    return Lab("t", root=lab_root)
