"""Restart tickets (sfu/lifecycle/restart.py): good once, for one room, for two minutes, only with the right key."""

from __future__ import annotations

from sfu.lifecycle.restart import LIFETIME, RestartTickets, Ticket


def test_a_ticket_gives_back_id_and_role_once() -> None:
    tickets = RestartTickets("key-one")
    token = tickets.issue("circle", "abc123", "facilitator", now=1000)
    assert token is not None and len(token) <= 128 and "circle" not in token
    nextprocess = RestartTickets("key-one")
    assert nextprocess.redeem(token, "circle", now=1000 + LIFETIME - 1) == Ticket("abc123", "facilitator")
    assert nextprocess.redeem(token, "circle", now=1001) is None, "second use"


def test_forged_expired_other_room_or_keyless_tickets_are_refused() -> None:
    token = RestartTickets("key-one").issue("circle", "abc123", "participant", now=1000)
    assert token is not None
    assert RestartTickets("key-two").redeem(token, "circle", now=1000) is None
    assert RestartTickets("key-one").redeem(token, "other-room", now=1000) is None
    assert RestartTickets("key-one").redeem(token, "circle", now=1000 + LIFETIME + 1) is None
    promoted = token.replace(".p.", ".f.")
    assert RestartTickets("key-one").redeem(promoted, "circle", now=1000) is None
    assert RestartTickets(None).redeem(token, "circle", now=1000) is None
    assert RestartTickets(None).issue("circle", "abc123", "participant") is None
    for junk in ("", "r1.", "r1.a.b.c.d", "r1.abc.p.notanumber.sig", "an ordinary resume token"):
        assert RestartTickets("key-one").redeem(junk, "circle", now=1000) is None
