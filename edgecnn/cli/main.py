"""Entry point of the `edgecnn` command: subcommands, and one way to report user errors.

Each subcommand group lives in its own module of this package with `add_parsers(subparsers)`
setting `func` on each parser; modules are discovered, so a new command file enrols itself.
Heavy imports (torch) happen inside the functions, so `edgecnn --help` and `edgecnn predict`
stay fast and torch-free.

A base install (`pip install edgecnn`: numpy, ONNX Runtime, Pillow) runs `predict` and `bench`
on artifacts. A command of the torch side says in one line what to install instead: checked
before it runs for the commands that always need it (so nothing is written), and caught for
whatever else reaches for a torch-side module (`bench` of a zoo name or `--runtime torch`).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import os
import signal
import sys
import warnings
from collections.abc import Sequence

from edgecnn import __version__
from edgecnn.cli import interrupted
from edgecnn.errors import INSTALL_TORCH, EdgeCNNError

# What the torch extra adds, as import names (pyproject.toml's [torch] list; a test keeps the
# two in step), and the commands that cannot run without it.
TORCH_SIDE = ("torch", "onnx", "onnxscript", "onnxslim", "torch_pruning", "matplotlib", "tqdm",
              "yaml", "zstandard", "mlxtend", "sklearn")
TORCH_COMMANDS = ("list", "info", "train", "eval", "export", "sweep", "pipeline", "fit")


class DefaultsFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already names it; flags
    (store_true) are off unless given, which needs no saying. An option without help text
    still shows its default (argparse skips help expansion for those), and a tuple default
    (a comma list such as --precision) prints as the user would type it: `fp32`, not
    `('fp32',)`."""

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and shown_default(action) is not None:
            action = copy.copy(action)  # the parser's action stays as declared
            action.help = self._get_help_string(action)  # "(default: ...)": argparse expands
            # only non-empty help
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = (action.help or "").strip()
        default = shown_default(action)
        if default is None or "default" in text:
            return text
        return f"{text} (default: {default.replace('%', '%%')})".lstrip()


def shown_default(action: argparse.Action) -> str | None:
    """The default `--help` prints for this option, or None where none is due (flags,
    positionals, no default)."""
    flag = isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                               argparse._StoreConstAction, argparse._HelpAction,
                               argparse._VersionAction, argparse._CountAction))
    if flag or not action.option_strings or action.default in (None, argparse.SUPPRESS):
        return None
    if isinstance(action.default, (tuple, list)):
        return ",".join(map(str, action.default))
    return str(action.default)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump), exit status 2, and every
    option's help gives its default."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="edgecnn",
        description="Paper-exact CNNs from definition to an edge device.",
    )
    parser.add_argument("--version", action="version", version=f"edgecnn {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _command_modules():
        module.add_parsers(subparsers)
    return parser


def _command_modules() -> list:
    import importlib
    import pkgutil

    import edgecnn.cli as package

    modules = [importlib.import_module(f"edgecnn.cli.{m.name}")
               for m in pkgutil.iter_modules(package.__path__)]
    return sorted((m for m in modules if hasattr(m, "add_parsers")),
                  key=lambda m: getattr(m, "ORDER", 50))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors: argparse prints one line and exits 2
    # A model given as `module:callable` is found in the current directory, as `python -m
    # edgecnn` finds it (the console script alone would not); appended, so a file there
    # never shadows an installed package.
    with contextlib.suppress(OSError):  # a working directory deleted under the shell
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.append(os.getcwd())
    from edgecnn.cli.artifact_info import names_a_path

    # info of a path (an artifact, its ONNX file, or a missing path) is torch-free
    artifact = args.command == "info" and names_a_path(getattr(args, "model", ""))
    if args.command in TORCH_COMMANDS and not artifact:
        missing = next((m for m in TORCH_SIDE if importlib.util.find_spec(m) is None), None)
        if missing:
            return _torch_side_missing(args.command, missing)
    previous = _term_as_interrupt()
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return int(args.func(args) or 0)
    except EdgeCNNError as exc:
        print(f"edgecnn: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        module = (exc.name or "").partition(".")[0]
        if module not in TORCH_SIDE:
            raise  # a bug, not an install: keep the traceback
        return _torch_side_missing(args.command, module)
    except (KeyboardInterrupt, ImportError) as exc:  # ImportError: Ctrl-C in a native import
        if not interrupted(exc):
            raise
        print("edgecnn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `edgecnn list | head`
        return 0
    except OSError as exc:  # a file-system error no command anticipated: still one line
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"edgecnn: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _show_warning(message: Warning | str, category: type[Warning], filename: str,
                  lineno: int, file: object = None, line: str | None = None) -> None:
    """edgecnn's own warnings (unreadable images, ...) as plain `edgecnn: warning:` lines,
    without Python's source-line format; other libraries' keep theirs."""
    if not category.__module__.startswith("edgecnn"):
        _python_showwarning(message, category, filename, lineno, file, line)
        return
    from edgecnn.progress import write

    for text in str(message).splitlines():  # above any bar on screen, not glued to it
        write(f"edgecnn: warning: {text}")


_python_showwarning = warnings.showwarning


def _term_as_interrupt() -> object:
    """SIGTERM (a service stopping, `kill`) unwinds like Ctrl-C, so every half-written file
    and temporary directory is cleaned up the same way; returns the previous handler."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals to whoever owns them
        return None


def _torch_side_missing(command: str, module: str) -> int:
    print(f"edgecnn: error: `edgecnn {command}` needs the torch side of edgecnn, which is not "
          f"installed (no module {module!r}); add it with: {INSTALL_TORCH}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
