"""What a request id may be: the gate's own, one a trusted proxy passed, and the one an
operator looks up (``audit list --request-id``, the admin API's ``request_id``)."""

from __future__ import annotations

import pytest

from consentgate.core.requestids import is_request_id, new_request_id, parse_request_id


def test_the_gates_own_ids_and_a_proxys_are_request_ids() -> None:
    ours = [new_request_id() for _ in range(600)]  # across a refill of the buffer
    assert len(set(ours)) == 600
    assert all(len(i) == 16 and is_request_id(i) for i in ours)
    for theirs in (
        "from-the-tls-terminator",
        "edge-7:1.2_3",
        "a" * 128,
    ):
        assert parse_request_id("--request-id", theirs) == theirs


@pytest.mark.parametrize("bad", ["", "a" * 129, "two words", "req/1", "ré", "id\n", "<script>"])
def test_anything_else_is_refused_naming_the_option_and_the_rule(bad: str) -> None:
    assert not is_request_id(bad)
    with pytest.raises(
        ValueError, match=r"^request_id: expected 1 to 128 letters, digits"
    ) as caught:
        parse_request_id("request_id", bad)
    assert repr(bad[:40]) in str(caught.value)
