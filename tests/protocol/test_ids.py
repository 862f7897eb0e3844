"""Tests of peer IDs: validation, generation, XOR distance, k-closest, initiator rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerpigeon.protocol.errors import DecodeError
from peerpigeon.protocol.ids import (
    PEER_ID_LENGTH,
    PeerId,
    generate_peer_id,
    is_initiator,
    is_valid_peer_id,
    k_closest,
    parse_peer_id,
    xor_distance,
)
from peerpigeon.protocol.rand import SeededEntropy

A = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
B = "0f1e2d3c4b5a69788796a5b4c3d2e1f00a1b2c3d"

peer_ids = st.text(alphabet="0123456789abcdefABCDEF", min_size=40, max_size=40).map(PeerId)
lower_ids = st.text(alphabet="0123456789abcdef", min_size=40, max_size=40).map(PeerId)


@pytest.mark.parametrize("value", [A, A.upper(), "aB" * 20, "0" * 40, "F" * 40])
def test_valid_ids(value: str) -> None:
    assert is_valid_peer_id(value)
    assert parse_peer_id(value) == value  # kept exactly as received, case included


@pytest.mark.parametrize(
    "value",
    [
        "",
        A[:-1],
        A + "0",
        "g" * 40,
        A[:-1] + " ",
        A + "\n",
        "\u0660" * 40,  # Arabic-Indic digits are digits, but not hex
        "\uff10" * 40,  # fullwidth zero
        " " + A[1:],
    ],
)
def test_invalid_id_strings(value: str) -> None:
    assert not is_valid_peer_id(value)
    with pytest.raises(DecodeError) as info:
        parse_peer_id(value)
    assert (info.value.field, info.value.reason) == ("peerId", "must be 40 hex characters")


@pytest.mark.parametrize("value", [None, 40, A.encode(), [A], {"id": A}, True])
def test_non_string_ids(value: object) -> None:
    assert not is_valid_peer_id(value)
    with pytest.raises(DecodeError) as info:
        parse_peer_id(value, "data.peerId")
    assert str(info.value) == "data.peerId: must be a string"


@given(st.text(max_size=45) | st.binary(max_size=45) | st.integers() | st.none())
def test_parse_agrees_with_is_valid(value: object) -> None:
    if is_valid_peer_id(value):
        assert parse_peer_id(value) == value
    else:
        with pytest.raises(DecodeError):
            parse_peer_id(value)


def test_generate_peer_id_is_seeded_lowercase_hex() -> None:
    first = [generate_peer_id(SeededEntropy(1)) for _ in range(2)]
    assert first[0] == first[1]  # same seed, same first ID
    entropy = SeededEntropy("seed")
    ids = [generate_peer_id(entropy) for _ in range(50)]
    assert len(set(ids)) == 50
    for peer in ids:
        assert len(peer) == PEER_ID_LENGTH
        assert peer == peer.lower()
        assert is_valid_peer_id(peer)
    assert generate_peer_id(SeededEntropy(2)) != first[0]


@given(peer_ids, peer_ids, peer_ids)
def test_xor_distance_is_a_metric(a: PeerId, b: PeerId, c: PeerId) -> None:
    assert xor_distance(a, a) == 0
    assert xor_distance(a, b) == xor_distance(b, a)
    assert (xor_distance(a, b) == 0) == (a.lower() == b.lower())
    assert xor_distance(a, c) == xor_distance(a, b) ^ xor_distance(b, c)
    assert xor_distance(a, c) <= xor_distance(a, b) + xor_distance(b, c)
    assert 0 <= xor_distance(a, b) < 2**160


def test_xor_distance_values() -> None:
    assert xor_distance("0" * 40, "0" * 39 + "1") == 1
    assert xor_distance("8" + "0" * 39, "0" * 40) == 2**159
    assert xor_distance(A, A.upper()) == 0


@given(lower_ids, st.lists(peer_ids, max_size=12), st.integers(min_value=-2, max_value=15))
def test_k_closest_matches_brute_force(target: PeerId, candidates: list[PeerId], k: int) -> None:
    expected = sorted(enumerate(candidates), key=lambda ic: (xor_distance(target, ic[1]), ic[0]))
    assert k_closest(target, candidates, k) == [c for _, c in expected[: max(k, 0)]]


def test_k_closest_ties_keep_candidate_order() -> None:
    target = PeerId("0" * 40)
    upper, lower = PeerId(A.upper()), PeerId(A)
    assert k_closest(target, [upper, lower], 2) == [upper, lower]
    assert k_closest(target, [lower, upper], 1) == [lower]
    assert k_closest(target, iter([PeerId(B), lower]), 5) == [PeerId(B), lower]
    assert k_closest(target, [lower], 0) == []


def test_initiator_rule_compares_strings() -> None:
    assert is_initiator(A, B)  # "a..." > "0..."
    assert not is_initiator(B, A)
    assert not is_initiator(A, A)
    # As in JS: code-unit order, so an upper-case spelling sorts below every lower-case one.
    assert is_initiator("a" + "0" * 39, "F" * 40)


@given(peer_ids, peer_ids)
def test_exactly_one_side_initiates(a: PeerId, b: PeerId) -> None:
    if a != b:
        assert is_initiator(a, b) != is_initiator(b, a)
