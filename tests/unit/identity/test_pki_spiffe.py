"""SPIFFE ID parsing: the strict shapes accepted and every refusal's reason."""

from __future__ import annotations

import pytest

from identity.errors import VerificationError
from identity.pki import (
    NodeSpiffeId,
    SpiffeId,
    SpiffeIdError,
    node_spiffe_id,
    parse_node_spiffe_id,
    parse_spiffe_id,
    validate_name,
    validate_trust_domain,
)


def test_node_id_round_trips() -> None:
    uri = "spiffe://example.org/operator/acme/node/gpu-01.rack_2"
    parsed = parse_node_spiffe_id(uri, trust_domain="example.org")
    assert parsed == NodeSpiffeId("example.org", "acme", "gpu-01.rack_2")
    assert str(parsed) == uri == parsed.uri
    assert node_spiffe_id("example.org", "acme", "gpu-01.rack_2") == parsed


def test_generic_ids() -> None:
    assert parse_spiffe_id("spiffe://td") == SpiffeId("td", ())
    assert parse_spiffe_id("spiffe://td/service/scheduler").segments == ("service", "scheduler")
    assert str(parse_spiffe_id("spiffe://td/a/b")) == "spiffe://td/a/b"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("spiffe://example.org/operator/acme/node/..", "dot_segment"),
        ("spiffe://example.org/operator/../node/n1", "dot_segment"),
        ("spiffe://example.org/operator/./node/n1", "dot_segment"),
        ("spiffe://example.org/operator/acme/node/%2e%2e", "percent_encoding"),
        ("spiffe://example.org/operator/acme/node/%2E", "percent_encoding"),
        ("spiffe://example.org/operator/ac%6De/node/n1", "percent_encoding"),
        ("spiffe://ex%61mple.org/operator/acme/node/n1", "percent_encoding"),
        ("SPIFFE://example.org/operator/acme/node/n1", "scheme"),
        ("Spiffe://example.org/operator/acme/node/n1", "scheme"),
        ("https://example.org/operator/acme/node/n1", "scheme"),
        ("spiffe:/example.org/operator/acme/node/n1", "scheme"),
        ("spiffe://Example.org/operator/acme/node/n1", "trust_domain"),
        ("spiffe://example.org:443/operator/acme/node/n1", "trust_domain"),
        ("spiffe://user@example.org/operator/acme/node/n1", "trust_domain"),
        ("spiffe:///operator/acme/node/n1", "trust_domain"),
        ("spiffe://" + "a" * 256 + "/operator/acme/node/n1", "trust_domain"),
        ("spiffe://example.org/operator//node/n1", "empty_segment"),
        ("spiffe://example.org//operator/acme/node/n1", "empty_segment"),
        ("spiffe://example.org/operator/acme/node/n1/", "trailing_slash"),
        ("spiffe://example.org/", "trailing_slash"),
        ("spiffe://example.org/operator/ACME/node/n1", "character"),
        ("spiffe://example.org/operator/acme/node/n 1", "character"),
        ("spiffe://example.org/operator/acme/node/n1?x=1", "character"),
        ("spiffe://example.org/operator/acme/node/n1#frag", "character"),
        ("spiffe://example.org/operator/acme/node/nö", "character"),
        ("spiffe://example.org/operator/acme/node/" + "n" * 2100, "too_long"),
        ("spiffe://example.org/operator/acme/node/" + "n" * 64, "too_long"),
        ("spiffe://example.org/operator/acme/node/-n1", "character"),
        ("spiffe://example.org/operator/acme", "shape"),
        ("spiffe://example.org/operator/acme/host/n1", "shape"),
        ("spiffe://example.org/operator/acme/node/n1/extra", "shape"),
        ("spiffe://example.org", "shape"),
    ],
)
def test_refused_with_reason(value: str, reason: str) -> None:
    with pytest.raises(SpiffeIdError) as info:
        parse_node_spiffe_id(value)
    assert isinstance(info.value, VerificationError)
    assert info.value.reason == reason
    assert info.value.value == value[:256]


def test_other_trust_domain() -> None:
    with pytest.raises(SpiffeIdError) as info:
        parse_node_spiffe_id("spiffe://evil.org/operator/acme/node/n1", trust_domain="example.org")
    assert info.value.reason == "other_trust_domain"


@pytest.mark.parametrize("value", [None, 5, b"spiffe://td", ["spiffe://td"]])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(SpiffeIdError) as info:
        parse_spiffe_id(value)
    assert info.value.reason == "type"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty_segment"),
        ("..", "dot_segment"),
        ("a/b", "character"),
        ("A", "character"),
        ("_x", "character"),
        ("x" * 64, "too_long"),
        ("a%2e", "percent_encoding"),
        (7, "type"),
    ],
)
def test_validate_name(name: object, reason: str) -> None:
    with pytest.raises(SpiffeIdError) as info:
        validate_name(name)
    assert info.value.reason == reason


def test_validate_name_accepts_safe_alphabet() -> None:
    assert validate_name("a" * 63) == "a" * 63
    assert validate_name("0p-er_a.tor") == "0p-er_a.tor"


@pytest.mark.parametrize("td", ["", ".", "..", "a b", "A.org", "a" * 256, 3])
def test_validate_trust_domain_refuses(td: object) -> None:
    with pytest.raises(SpiffeIdError):
        validate_trust_domain(td)
