"""The command line is consistent: every option's help gives its default, every command that
writes files takes -o/--output, every command prints JSON with --json, list and info say
what they do. Checked on the real parser, in process (no subprocess needed)."""

from __future__ import annotations

import argparse

import pytest

from edgecnn.cli.main import DefaultsFormatter, build_parser

WRITES = ("train", "eval", "export", "bench", "sweep", "pipeline")
SILENT = (argparse._HelpAction, argparse._StoreTrueAction, argparse._StoreFalseAction,
          argparse._StoreConstAction, argparse._VersionAction)


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_option_says_its_default() -> None:
    missing = []
    for name, parser in commands().items():
        fmt = DefaultsFormatter(name)
        for action in parser._actions:
            if not action.option_strings or isinstance(action, SILENT) or action.required:
                continue
            if isinstance(action, argparse.BooleanOptionalAction):
                continue  # --x / --no-x: the help says which is the default
            if "default" not in fmt._get_help_string(action):
                missing.append(f"{name} {action.option_strings[-1]}")
    assert not missing, missing


@pytest.mark.parametrize("name", sorted(set(commands())))
def test_json_and_output_everywhere(name: str) -> None:
    options = {o for a in commands()[name]._actions for o in a.option_strings}
    assert "--json" in options, name
    if name in WRITES:
        assert {"-o", "--output"} <= options, name


def one_line_help(name: str) -> str:
    """The help a command has in `edgecnn --help`'s list of commands."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return next(a.help for a in sub._choices_actions if a.dest == name)


def printed_help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """What `edgecnn ARGV --help` prints (through main, as the command does), one space
    between words."""
    from edgecnn.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    return " ".join(capsys.readouterr().out.split())


# What each command prints, in words its description must use
SAYS = {"list": ("parameters", "multiply-adds", "paper"),
        "info": ("parameters", "multiply-adds", "layer by layer")}


@pytest.mark.parametrize("name", sorted(SAYS))
def test_list_and_info_describe_themselves(name: str, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    """`edgecnn --help` lists the command with its one-line help; `edgecnn NAME --help`
    shows a description, longer than that line, that names what the command prints."""
    description = commands()[name].description or ""
    summary = one_line_help(name)
    assert summary and len(description) > len(summary), (summary, description)
    assert all(word in description for word in SAYS[name]), description
    assert " ".join(description.split()) in printed_help(capsys, name)
    assert f"{name} {' '.join(summary.split())}" in printed_help(capsys)


def test_bench_footer_says_what_was_timed_and_what_was_not() -> None:
    from dataclasses import fields, replace

    from edgecnn.bench.report import render
    from edgecnn.bench.targets import skip_reason
    from edgecnn.timing.harness import BenchRecord

    text_fields = {"model", "runtime", "precision", "device", "baseline"}
    rec = BenchRecord(**{f.name: ("x" if f.name in text_fields else 1.0) for f in fields(
        BenchRecord)})
    records = [replace(rec, iters=37), replace(rec, iters=40)]
    why = skip_reason("torch-eager", "int8", "cpu")
    assert why and "PyTorch int8" in why
    cond = {"interrupted": True, "iters_desc": "200", "not_measured": [why]}
    text = render(records, "table", cond)
    assert "37-40 (interrupted) timed calls per case" in text and "200 timed" not in text
    assert why in text
    assert "MB = 10^6 bytes" in text
