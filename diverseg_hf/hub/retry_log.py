"""huggingface_hub's retry messages, folded into one log line per retried request while diverseg_hf pushes.

huggingface_hub retries some requests itself (LFS uploads, for example) and logs two warnings per retry,
which a CLI that also configures the root logger prints twice each. :func:`one_line_retries` turns
them into the line :mod:`diverseg_hf.hub.push` logs for its own retries.

Example:
    >>> import logging
    >>> with one_line_retries():
    ...     logging.getLogger("huggingface_hub.utils._http").filters[-1].__class__.__name__
    '_FoldRetryMessages'
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterator

_HUB_LOGGER = logging.getLogger("diverseg_hf.hub.push")


class _FoldRetryMessages(logging.Filter):
    """Turn huggingface_hub's two warnings per retried request into one line, in the form
    :mod:`diverseg_hf.hub.push` uses for its own retries.

    huggingface_hub logs ``<error> thrown while requesting <METHOD> <URL>`` and then ``Retrying in
    <N>s [Retry i/n].`` (or ``Rate limited. Waiting <N>s before retry [Retry i/n].``), through its own
    handler and again through the root logger's. This filter drops both records and logs one
    ``Hub request failed (...)`` line on ``diverseg_hf.hub.push``'s logger instead (the URL without its
    query). Requests are tracked per thread (huggingface_hub uploads files from several threads).
    """

    _REQUEST = re.compile(r"^(?P<error>.*) thrown while requesting (?P<method>\S+) (?P<url>\S+)")
    _RETRY = re.compile(r"(?:Retrying in|Waiting) (?P<wait>[\d.]+)s.*\[Retry (?P<i>\d+)/(?P<n>\d+)\]")

    def __init__(self) -> None:
        super().__init__()
        self.requests: dict[int, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if match := self._REQUEST.match(message):
            path = re.sub(r"^[a-z]+://[^/]+", "", match["url"]).split("?", 1)[0]
            error = match["error"].removeprefix("HTTP Error ").strip("'")
            error = f"HTTP {error}" if error.isdigit() else error
            self.requests[threading.get_ident()] = f"{error}, {match['method']} {path}"
            return False
        if match := self._RETRY.search(message):
            request = self.requests.pop(threading.get_ident(), "transient error")
            _HUB_LOGGER.warning("Hub request failed (%s); retry %s/%s in %ss", request, match["i"], match["n"],
                                match["wait"])
            return False
        return True


@contextlib.contextmanager
def one_line_retries() -> Iterator[None]:
    """While pushing, fold huggingface_hub's retry warnings into one line each (see :class:`_FoldRetryMessages`)."""
    http_logger = logging.getLogger("huggingface_hub.utils._http")
    fold = _FoldRetryMessages()
    http_logger.addFilter(fold)
    try:
        yield
    finally:
        http_logger.removeFilter(fold)
