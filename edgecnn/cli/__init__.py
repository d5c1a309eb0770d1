"""The `edgecnn` command line. It sits on top of everything; nothing imports it."""


def interrupted(exc: BaseException) -> bool:
    """Ctrl-C or SIGTERM (edgecnn.cli.main turns it into KeyboardInterrupt), including one
    that lands while a native module loads: Python then raises ImportError from it."""
    return isinstance(exc, KeyboardInterrupt) or (
        isinstance(exc, ImportError) and isinstance(exc.__context__, KeyboardInterrupt))
