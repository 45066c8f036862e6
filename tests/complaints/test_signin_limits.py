"""The sign-in limit (issue 15): keyed on the account first, looser per address, and the address
is the peer's unless it is a proxy listed in CLIPGATE_TRUSTED_PROXIES. Over a real uvicorn server
started the way `clipgate serve` starts it."""

from __future__ import annotations

import httpx

from tests.complaints import web_helpers as h

WRONG = "wrong password here"


def _attempt(base: str, email: str, forwarded_for: str, password: str = WRONG) -> int:
    with httpx.Client(base_url=base, follow_redirects=False,
                      headers={"X-Forwarded-For": forwarded_for}) as c:
        return h.sign_in(c, email, password).status_code


def _people(settings, n: int) -> list[str]:
    emails = [f"person{i}@example.org" for i in range(n)]
    for e in emails:
        h.account(settings, "rights_holder", e)
    return emails


def test_a_forged_forwarded_for_does_not_escape_the_address_limit(settings):
    emails = _people(settings, 5)
    limited = settings.model_copy(update={"signin_max_failures_per_address": 3,
                                          "signin_max_failures": 100})
    with h.live_server(limited) as base:
        codes = [_attempt(base, emails[i], f"203.0.113.{i}") for i in range(4)]
        # The right password of a fifth person waits too: the address is over its limit.
        assert _attempt(base, emails[4], "203.0.113.99", h.PASSWORD) == 429
    assert codes == [400, 400, 400, 429]


def test_a_trusted_proxy_names_the_client(settings):
    emails = _people(settings, 5)
    limited = settings.model_copy(update={"signin_max_failures_per_address": 3,
                                          "signin_max_failures": 100,
                                          "trusted_proxies": "127.0.0.1"})
    with h.live_server(limited) as base:
        codes = [_attempt(base, emails[i], f"203.0.113.{i}") for i in range(4)]
        assert _attempt(base, emails[4], "203.0.113.99", h.PASSWORD) == 303
    assert codes == [400, 400, 400, 400]  # four addresses, one failure each


def test_the_limit_is_per_account_from_any_address(settings):
    (email,) = _people(settings, 1)
    limited = settings.model_copy(update={"signin_max_failures": 3,
                                          "trusted_proxies": "127.0.0.1"})
    with h.live_server(limited) as base:
        codes = [_attempt(base, email, f"198.51.100.{i}") for i in range(3)]
        assert codes == [400, 400, 400]
        # A fresh address, the right password: the account waits out the window.
        assert _attempt(base, email, "198.51.100.200", h.PASSWORD) == 429


def test_people_behind_one_address_are_not_locked_out_by_each_other(settings):
    emails = _people(settings, 7)
    c = h.client(settings)  # the defaults
    for email in emails[:6]:
        for _ in range(4):  # 24 failures, under each account's limit of 5
            assert h.sign_in(c, email, WRONG).status_code == 400
    assert h.sign_in(c, emails[6]).status_code == 303
