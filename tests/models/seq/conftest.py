"""Sequential models: ``planted`` here is planted sequences (the root conftest's ``planted`` is CTR rows)."""

from __future__ import annotations

import pytest

from recwise.data.sequence import Sequences
from tests.fixtures.seq import planted_sequences


@pytest.fixture(scope="session")
def planted() -> Sequences:
    return planted_sequences()
