"""Every service test checks what it receives from the service against the OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.contract import checking_client_traffic


@pytest.fixture(autouse=True)
def _contract() -> Iterator[None]:
    """Validate every HTTP answer and `/v1/ws` message the test's clients receive."""
    with checking_client_traffic():
        yield
