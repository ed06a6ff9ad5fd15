"""Log capture through the production pipeline (JSON lines, redaction), at DEBUG."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from qianbao.observability import logs


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything any logger writes, as the server would print it."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buffer = io.StringIO()
    logs.configure("DEBUG", "json", stream=buffer)
    yield buffer
    root.handlers[:], root.level = saved[0], saved[1]
