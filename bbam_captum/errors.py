"""The project's own errors for unusable input, which the command line turns into exit code 2."""
from __future__ import annotations


class InputError(ValueError):
    """Input the user must fix (a malformed file, a bad argument, an unreadable image).

    A subclass of ``ValueError``, so API callers that catch ``ValueError`` keep working; the
    command line catches only this class, so that a bug still shows its traceback.
    """


class SettingsError(InputError):
    """A value that a settings class refuses (:class:`~bbam_captum.BBAMSettings`,
    :class:`~bbam_captum.labels.LabelSettings`, the report's ``FlagSettings``, the synthetic
    world's ``WorldConfig``); the message names the field, what it must be and what came.

    One type for every settings class: an ``InputError`` (the command line's exit code 2) and so
    a ``ValueError`` (what Python callers catch for a bad value).
    """
