"""Field readers shared by the codecs: numbers."""

from __future__ import annotations

import pytest

from peerpigeon.protocol.errors import DecodeError
from peerpigeon.protocol.fields import opt_number


@pytest.mark.parametrize("value", [0, -3, 2.5, 10**400, -(10**400)])
def test_finite_numbers_are_taken_as_they_are(value: int | float) -> None:
    assert opt_number({"n": value}, "n") == value


@pytest.mark.parametrize("value", [True, "1", float("inf"), float("nan"), [1], {"a": 1}])
def test_anything_else_is_a_decode_error(value: object) -> None:
    with pytest.raises(DecodeError):
        opt_number({"n": value}, "n")  # type: ignore[dict-item]


def test_absent_or_null_is_none() -> None:
    assert opt_number({}, "n") is None
    assert opt_number({"n": None}, "n") is None
