"""Pure parts of webhook delivery: signatures, the URL guard, the retry backoff."""

from __future__ import annotations

import hashlib
import hmac
import random

import pytest

from app.events import signing
from app.events.dispatcher import backoff_delay
from app.events.urls import UrlPolicy, UrlRefused, check_url, pin

SECRET = "whsec_0123456789abcdef"


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"id":"e1","type":"version.created"}'
    header = signing.header_value(SECRET, 1_700_000_000, body)
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert signing.verify(SECRET, header, body, now=1_700_000_100)


@pytest.mark.parametrize(
    ("secret", "body", "now"),
    [
        ("another-secret-value", b"{}", 1_700_000_000),  # wrong key
        (SECRET, b'{"x":1}', 1_700_000_000),  # body changed
        (SECRET, b"{}", 1_700_000_000 + 301),  # replayed too late
    ],
)
def test_verification_refuses_wrong_key_changed_body_and_old_timestamp(
    secret: str, body: bytes, now: int
) -> None:
    header = signing.header_value(SECRET, 1_700_000_000, b"{}")
    assert not signing.verify(secret, header, body, now=now)


def test_verification_refuses_malformed_headers() -> None:
    for header in ("", "v1=abc", "t=notanumber,v1=abc", "t=1700000000"):
        assert not signing.verify(SECRET, header, b"{}", now=1_700_000_000)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "https://10.1.2.3/hook",
        "http://192.168.0.10/x?y=1",
        "http://[::1]:9000/hook",
        "http://localhost:9000/hook",
        "https://8.8.8.8/hook",
    ],
)
def test_allowed_urls(url: str) -> None:
    check_url(url, UrlPolicy())


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://127.0.0.1/hook", "http and https"),
        ("file:///etc/passwd", "http and https"),
        ("http:///nohost", "no host"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://169.254.10.10/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://100.100.100.200/", "metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("http://0.0.0.0:80/", "unicast"),
        ("http://224.0.0.1/", "unicast"),
        ("http://user:pass@127.0.0.1/hook", "credentials"),
        ("http://127.0.0.1:99999/", "valid URL"),
    ],
)
def test_refused_urls(url: str, reason: str) -> None:
    with pytest.raises(UrlRefused, match=reason):
        check_url(url, UrlPolicy())


def test_a_name_that_does_not_resolve_is_allowed_and_refused_at_send_time() -> None:
    # Decision 0025: DNS may change before the first event; each delivery resolves and
    # checks again (pin), where a name without an address fails the attempt.
    check_url("http://no-such-host.invalid/hook", UrlPolicy())
    with pytest.raises(UrlRefused, match="does not resolve"):
        pin("http://no-such-host.invalid/hook", UrlPolicy())


def test_policy_switches() -> None:
    with pytest.raises(UrlRefused, match="private"):
        check_url("http://127.0.0.1/hook", UrlPolicy(allow_private_networks=False))
    with pytest.raises(UrlRefused, match="private"):
        check_url("http://10.0.0.1/hook", UrlPolicy(allow_private_networks=False))
    check_url("http://169.254.169.254/", UrlPolicy(allow_link_local=True))
    check_url("http://[fe80::1]/", UrlPolicy(allow_link_local=True))


def test_backoff_is_equal_jitter_under_an_exponential_ceiling() -> None:
    rng = random.Random(7)
    for attempt in range(1, 20):
        ceiling = min(600.0, 1.0 * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, base=1.0, cap=600.0, rng=rng) for _ in range(200)]
        # Never sooner than half the exponential step: no immediate hammering.
        assert all(0.5 * ceiling <= d <= ceiling for d in delays)
        # Spread over the upper half, not bunched: jittered.
        assert min(delays) < 0.55 * ceiling
        assert max(delays) > 0.95 * ceiling
    assert backoff_delay(50, base=1.0, cap=600.0, rng=rng) <= 600.0
