"""A missing part of the machine fails a test with the reason; only the explicit opt-out skips it."""

import pytest

from tests.support.parts import ALLOW_MISSING_ENV, missing


def test_a_missing_part_fails_with_its_reason(monkeypatch):
    monkeypatch.delenv(ALLOW_MISSING_ENV, raising=False)
    with pytest.raises(pytest.fail.Exception, match=r"needs tmux .*the real suite never skips"):
        missing("needs tmux")


def test_only_the_opt_out_skips(monkeypatch):
    monkeypatch.setenv(ALLOW_MISSING_ENV, "1")
    with pytest.raises(pytest.skip.Exception, match="needs tmux"):
        missing("needs tmux")
