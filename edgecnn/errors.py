"""The one exception type for user errors.

Everything a user can get wrong (an unknown model name, a bad alpha, a missing file, a
corrupt artifact) raises `EdgeCNNError` with a one-line message. The CLI prints that
line and exits with status 2; anything else is a bug and keeps its traceback.

This module imports nothing heavy: the torch-free runtime shares it.
"""

from __future__ import annotations

# What adds the torch side (zoo, training, export) to a base install, for messages that say so.
INSTALL_TORCH = 'pip install "edgecnn[torch]"'


class EdgeCNNError(ValueError):
    """A user error: the message is one line, meant to be printed as it is."""

    def __init__(self, message: str) -> None:
        # One line, always: the CLI prints it without a traceback.
        super().__init__(" ".join(str(message).split()))
