"""Validation of user-supplied names before they reach a filesystem or a key."""

from __future__ import annotations

import posixpath
import re
import unicodedata

from aimass.errors import InvalidInput

# fullmatch, never match with "$": "$" also matches before a final newline, so "name\n" passed.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ +-]{0,199}")


def validate_name(value: str, what: str = "name") -> str:
    """An entity name: letters, digits, '.', '_', '-', starting with a letter or digit."""
    if not _NAME.fullmatch(value) or ".." in value:
        raise InvalidInput(
            f"invalid {what} {value!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def validate_filename(value: str) -> str:
    """A file name with no directory part, no '..', nothing absolute, no control characters.

    Checked after Unicode normalization and after every decoding the HTTP layer did,
    so '..%2f', '/etc/passwd', '\\\\host' and 'a/../b' are all refused.
    """
    normalized = unicodedata.normalize("NFKC", value)
    if (
        normalized != value
        or "/" in value
        or "\\" in value
        or value in (".", "..")
        or ".." in value
        or posixpath.isabs(value)
        or not _FILENAME.fullmatch(value)
    ):
        raise InvalidInput(
            f"invalid file name {value!r}: a file name may not contain a path, '..', "
            "or characters other than letters, digits, space, '.', '_', '+' and '-'"
        )
    return value
