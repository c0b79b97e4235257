"""Running a coroutine from a test, whatever else the test process runs.

Playwright's sync API keeps an event loop running in the main thread for the
whole session, so ``asyncio.run`` there would fail; a worker thread has none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
