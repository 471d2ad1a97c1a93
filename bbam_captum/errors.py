"""The project's own error for unusable input, which the command line turns into exit code 2."""
from __future__ import annotations


class InputError(ValueError):
    """Input the user must fix (a malformed file, a bad argument, an unreadable image).

    A subclass of ``ValueError``, so API callers that catch ``ValueError`` keep working; the
    command line catches only this class, so that a bug still shows its traceback.
    """
