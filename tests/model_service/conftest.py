"""Every service test checks what it receives from the service against the OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devtools.contract import checking_client_traffic


@pytest.fixture(autouse=True)
def _contract() -> Iterator[None]:
    """Validate every HTTP answer and `/v1/ws` message the test's clients receive."""
    with checking_client_traffic():
        yield


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread, as the service runs it: tiny recurrent steps on a busy 2-core CI
    machine are several times slower when torch splits them across threads."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def builtin_tagger(one_torch_thread: None) -> Iterator[Any]:
    """One embedded tagger (silero-vad loaded once) per module, on one torch thread."""
    from model_service.models.taggers.builtin import BuiltinTagger

    tagger = BuiltinTagger()
    yield tagger
    tagger.close()
