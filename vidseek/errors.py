"""The one base of every error a user can cause and fix (``VidseekError``).

Each layer raises its own subclasses, whose messages say what was wrong and what to do: the engine
``BundleError`` and ``QueryError``, the index storage ``IndexStorageError``, the library
``ModelChoiceError``, ``PhrasesUnavailable`` and ``NoIndex``. The command line shows any
``VidseekError`` as a one-line message and exits with status 1; anything else is a bug and keeps
its traceback.

>>> issubclass(VidseekError, Exception)
True
"""

from __future__ import annotations


class VidseekError(Exception):
    """Something the user can fix (a bad input, a missing or damaged file, a full disk); the message
    says what was received, what was expected and what to do."""
