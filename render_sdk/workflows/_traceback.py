"""Tracebacks as the user would read them: their frames, not this SDK's or importlib's."""

from __future__ import annotations

import importlib
import os
import traceback

__all__ = ["user_traceback"]

#: Frames from these directories are the SDK's and the import machinery's, not the user's.
_MACHINERY_DIRS = (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,  # render_sdk/
    os.path.dirname(os.path.abspath(importlib.__file__)) + os.sep,  # importlib/
)


def _is_ours(filename: str) -> bool:
    return filename.startswith("<frozen importlib") or filename.startswith(_MACHINERY_DIRS)


def user_traceback(exc: BaseException, *, header: bool = False) -> str:
    """``exc`` formatted like Python's traceback, without this SDK's or importlib's frames.

    A task's failure reads as if the user had called their function themselves: the
    runner that called it, the subtask plumbing between two of their frames and the
    import machinery say nothing about what to fix. Without a user frame (the app module
    itself is missing) it is the one ``Type: message`` line, unless ``header`` asks for
    the ``Traceback (most recent call last):`` line anyway (a task's stack trace always
    has it, so that readers can tell it from a message).
    """
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not _is_ours(f.filename)]
    lines: list[str] = []
    if frames or header:
        lines.append("Traceback (most recent call last):\n")
        lines.extend(traceback.format_list(frames))
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines).rstrip("\n")
