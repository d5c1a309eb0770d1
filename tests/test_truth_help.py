"""Every option of every command shows its default in --help, readably (issue 24)."""

from __future__ import annotations

import argparse

import pytest

from edgecnn.cli.main import build_parser, main, shown_default


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_option_with_a_default_shows_it() -> None:
    missing = []
    for name, parser in _commands().items():
        text = " ".join(parser.format_help().split())  # unwrap the columns
        for action in parser._actions:
            default = shown_default(action)
            if default is None:
                continue
            said = f"(default: {default})" in text or "default" in (action.help or "")
            if not said:
                missing.append(f"{name} {action.option_strings[0]}")
    assert not missing, missing


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
