"""Text for people on the terminal: counts with their noun in the right number, and output
that outlives its reader (`chipctl ... | head` closes the pipe early)."""

from __future__ import annotations

import os
import sys


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """'1 image', '0 images', '3 images' ('1 mouse', '2 mice' with `nouns`)."""
    return f"{n} {noun if n == 1 else nouns or noun + 's'}"


def discard_stdout() -> None:
    """Point stdout at the null device, so that the interpreter's last flush of what a closed
    pipe did not take cannot raise again (Python's documented recipe for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (tests capture stdout)
        pass


def say(text: str) -> bool:
    """Print a line to stdout; False (and stdout discarded) if the reader has gone."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        discard_stdout()
        return False
    return True
