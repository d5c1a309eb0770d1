"""Every option of every command shows its default in --help, readably (issue 24)."""

from __future__ import annotations


import pytest

from edgecnn.cli.main import main, shown_default


# Every option's default in --help: tests/test_cli_help.py's
# test_every_option_says_its_default.


def test_tuple_defaults_print_as_typed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 0.25,0.5,0.75,1.0)" in out
    assert "(default: fp32)" in out and "('fp32',)" not in out
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--precision PRECISION comma list: fp32,fp16,int8 (default: fp32)" in out
