"""Exceptions that carry a one-line message meant for the user, and reading the JSON files a user may hand us."""

import json
from pathlib import Path
from typing import Any


class UserInputError(Exception):
    """A mistake in what the user gave (file, option, volume): shown as one line, never a traceback."""


class Cancelled(Exception):
    """The user asked to stop; nothing was written."""


def read_json(path: Path, missing: str) -> Any:
    """The parsed JSON file at ``path``; a one-line :class:`UserInputError` (``missing`` when there is no such file)."""
    if not path.is_file():
        raise UserInputError(missing)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserInputError(f"{path} is not valid JSON ({error})") from None
