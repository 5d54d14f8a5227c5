"""The ``digest`` command: parse arguments, call the library, turn its errors into exit codes.

One module per command group; `_app` holds the root command and `main`, `_output` what they print with.
Importing the package registers every command; each command imports the library it uses when it runs.
"""

from __future__ import annotations

from . import _chats, _eval, _init, _preview, _run, _serve, _sources, _subscribers, _topics
from ._app import cli, main

__all__ = ["cli", "main"]

_COMMAND_MODULES = (
    _chats,
    _eval,
    _init,
    _preview,
    _run,
    _serve,
    _sources,
    _subscribers,
    _topics,
)  # registered on import
