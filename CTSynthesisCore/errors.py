"""Exceptions that carry a one-line message meant for the user."""


class UserInputError(Exception):
    """A mistake in what the user gave (file, option, volume): shown as one line, never a traceback."""


class Cancelled(Exception):
    """The user asked to stop; nothing was written."""
