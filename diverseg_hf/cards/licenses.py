"""The licence ids a dataset card may name: the Hugging Face Hub's list (``data/hub_licenses.txt``).

A custom licence is ``other:NAME`` (NAME: lower-case letters, digits, ``.``, ``_``, ``-``): the card then
says ``license: other`` with ``license_name: NAME``, as the Hub asks.

Example:
    >>> check_license("cc-by-4.0"), check_license("other:my-terms")
    (None, None)
    >>> check_license("not a licence")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    diverseg_hf.errors.ParameterError: license 'not a licence' is not a licence id of the Hub (e.g. ...
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from ..errors import ParameterError

_OTHER_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@functools.cache
def hub_licenses() -> frozenset[str]:
    """The Hub's licence ids, read from the package's data.

    Example:
        >>> {"mit", "cc-by-nc-4.0", "other"} <= hub_licenses()
        True
    """
    text = resources.files("diverseg_hf").joinpath("data/hub_licenses.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def check_license(license: str | None) -> None:
    """Refuse (``ParameterError``) a licence that is neither a Hub licence id nor ``other:NAME`` (None passes)."""
    if license is None or license in hub_licenses():
        return
    kind, sep, name = license.partition(":")
    if kind == "other" and sep:
        if _OTHER_NAME.match(name):
            return
        raise ParameterError("license", f"{license!r}: the name after other: must be lower-case letters, digits, "
                             "'.', '_' or '-'")
    raise ParameterError("license", f"{license!r} is not a licence id of the Hub (e.g. apache-2.0, mit, cc-by-4.0, "
                         "cc-by-nc-4.0; a custom licence is other:NAME)")
