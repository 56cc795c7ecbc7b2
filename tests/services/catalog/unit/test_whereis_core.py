"""The where-is core (services/catalog/whereis.py), no I/O: merging the sources,
the bounded history, and dnsmasq's lease file read as untrusted text.

Properties (hypothesis): the newest evidence wins, whatever order the sources are
read in; a tie goes to the better-ranked source and says so; an expired lease
never wins; a history never grows past its bound nor goes back in time; a lease
file with hostile lines among good ones gives every good lease and refuses each
bad line with its number and a reason.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netfate.proto import dnsmasq
from netfate.services.catalog import whereis as core

NODES = ["cpe1", "cpe2", "pe1"]
SOURCES = [core.LOGIN, core.LEASE, core.HOST_SEEN]
NOW = 1_000_000.0

sightings = st.lists(
    st.builds(
        core.Sighting,
        user=st.sampled_from(["alice", "bob"]),
        node=st.sampled_from(NODES),
        source=st.sampled_from(SOURCES),
        at=st.integers(0, 20).map(float),  # few instants: ties happen
        until=st.one_of(st.none(), st.floats(NOW - 10, NOW + 10)),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(sightings, st.randoms(use_true_random=False))
def test_the_newest_fresh_evidence_wins_whatever_the_order(
    seen: list[core.Sighting], rnd: object
) -> None:
    fixes = core.locate(seen, NOW)
    shuffled = list(seen)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert core.locate(shuffled, NOW) == fixes
    for user in {s.user for s in seen}:
        fresh = [s for s in seen if s.user == user and (s.until is None or s.until > NOW)]
        fix = fixes.get(user)
        if not fresh:
            assert fix is None  # only stale leases: nowhere
            continue
        assert fix is not None
        newest = max(s.at for s in fresh)
        assert fix.at == newest
        best = min(core.RANK[s.source] for s in fresh if s.at == newest)
        assert core.RANK[fix.source] == best
        assert any((s.node, s.source, s.at) == (fix.node, fix.source, fix.at) for s in fresh)
        assert fix.why.startswith(f"newest: {fix.source} at {fix.node}")


def test_a_tie_and_a_stale_lease_are_explained() -> None:
    seen = [
        core.Sighting("alice", "cpe2", core.HOST_SEEN, 10.0, None, "02:00:00:00:00:01"),
        core.Sighting("alice", "cpe1", core.LOGIN, 10.0),
        core.Sighting("alice", "pe1", core.LEASE, 50.0, 60.0, "02:00:00:00:00:01 got x"),
        core.Sighting("alice", "cpe2", core.LEASE, 5.0, 100.0),
    ]
    fix = core.locate(seen, now=70.0)["alice"]
    assert (fix.node, fix.source, fix.at) == ("cpe1", "login", 10.0)
    assert "host-seen at cpe2 (t=10.000, 02:00:00:00:00:01) ties, and login ranks first" in fix.why
    assert (
        "lease at pe1 (t=50.000, 02:00:00:00:00:01 got x) is stale: it expired at 60.000" in fix.why
    )
    assert "lease at cpe2 (t=5.000) is older" in fix.why
    # Before that lease expired it was the newest evidence.
    assert core.locate(seen, now=55.0)["alice"].node == "pe1"


fixes = st.lists(
    st.builds(
        core.Fix,
        user=st.just("alice"),
        node=st.sampled_from(NODES),
        source=st.sampled_from(SOURCES),
        at=st.integers(0, 50).map(float),
        why=st.just("w"),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 8), fixes)
def test_a_history_is_bounded_never_goes_back_and_says_only_changes(
    bound: int, seen: list[core.Fix]
) -> None:
    track = core.Track(bound)
    added = []
    for f in seen:
        last = track.last
        entry = track.observe(f)
        if entry is not None:
            added.append(entry)
            assert last is None or (f.at >= last.at and (f.node, f.source) != (
                last.node, last.source))  # fmt: skip
        else:
            assert last is not None
            assert f.at < last.at or (f.node, f.source) == (last.node, last.source)
        assert len(track.history) <= bound
    assert track.history == added[-bound:] if added else track.history == []
    ats = [e.at for e in track.history]
    assert ats == sorted(ats)
    for a, b in zip(track.history, track.history[1:], strict=False):
        assert (a.node, a.source) != (b.node, b.source)


def test_a_history_keeps_at_least_one_entry() -> None:
    with pytest.raises(ValueError, match="at least one"):
        core.Track(0)


# ------------------------------------------------------------------ the lease file

GOOD = [
    "1763712000 02:00:00:00:00:01 192.168.1.100 tv 01:02:00:00:00:00:01",
    "1763712000 02:00:00:00:00:04 192.168.1.104 * " + ":".join(["ff"] * 255),  # the longest id
    "1763712600 02:00:00:00:00:02 192.168.1.101 * *",
    "0 0A:00:00:00:00:03 192.168.1.102 laptop-3 *",
]
HOSTILE = {
    "": "1 space-separated fields, not 5",
    "garbage": "1 space-separated fields, not 5",
    "1763712000 02:00:00:00:00:01 192.168.1.100 tv": "4 space-separated fields, not 5",
    "-5 02:00:00:00:00:01 192.168.1.100 tv *": "expiry '-5' is not epoch seconds",
    "1e9 02:00:00:00:00:01 192.168.1.100 tv *": "expiry '1e9' is not epoch seconds",
    "99999999999999999999 02:00:00:00:00:01 192.168.1.100 tv *": "is not epoch seconds",
    "1763712000 06-02:00:00:00:00:01 192.168.1.100 tv *": "is not an Ethernet MAC",
    "1763712000 02:00:00:00:00:01 192.168.1.300 tv *": "address '192.168.1.300' is not IPv4",
    "1763712000 02:00:00:00:00:01 fe80::1 tv *": "is not IPv4",
    "1763712000 02:00:00:00:00:01 192.168.1.100 <script> *": "is not a DNS label",
    "1763712000 02:00:00:00:00:01 192.168.1.100 tv zz": "client id 'zz' is not hex octets",
    "1763712000 02:00:00:00:00:01 192.168.1.100 tv\x00 *": "control or non-printable",
    "1763712000 02:00:00:00:00:01 192.168.1.100 tv\r *": "control or non-printable",
    "1763712000  02:00:00:00:00:01 192.168.1.100 tv *": "6 space-separated fields, not 5",
    "1763712000 02:00:00:00:00:01 192.168.1.100 tv " + "ab:" * 400 + "ab": "longer than 1024",
    "1763712000 02:00:00:00:00:01 192.168.1.100 " + "a" * 600 + " *": "is not a DNS label",
    "١٢٣ 02:00:00:00:00:01 192.168.1.100 tv *": "is not epoch seconds",  # Arabic digits
}


def test_each_good_line_is_a_lease() -> None:
    leases, refused = dnsmasq.parse_lease_file(
        "\n".join(GOOD) + "\nduid 00:01:00:01:2c:00:00:00:02:00:00:00:00:01\n"
    )
    assert refused == []
    assert [(le.expires, le.mac, le.ip, le.hostname) for le in leases] == [
        (1763712000, "02:00:00:00:00:01", "192.168.1.100", "tv"),
        (1763712000, "02:00:00:00:00:04", "192.168.1.104", None),
        (1763712600, "02:00:00:00:00:02", "192.168.1.101", None),
        (0, "0a:00:00:00:00:03", "192.168.1.102", "laptop-3"),
    ]


@pytest.mark.parametrize(
    ("line", "reason"), sorted(HOSTILE.items()), ids=[f"hostile{k}" for k in range(len(HOSTILE))]
)
def test_a_malformed_line_is_refused_with_its_reason(line: str, reason: str) -> None:
    with pytest.raises(dnsmasq.LeaseError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        dnsmasq.parse_lease_line(line)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(GOOD).map(lambda g: (True, g)),
            st.sampled_from(sorted(HOSTILE)).map(lambda h: (False, h)),
            st.text(max_size=80).filter(lambda t: "\n" not in t).map(lambda t: (None, t)),
        ),
        max_size=30,
    )
)
def test_hostile_lines_are_refused_and_lose_nothing(lines: list[tuple[bool | None, str]]) -> None:
    text = "".join(line + "\n" for _, line in lines)
    leases, refused = dnsmasq.parse_lease_file(text)
    good = [dnsmasq.parse_lease_line(line) for ok, line in lines if ok]
    bad = [n for n, (ok, _) in enumerate(lines, 1) if ok is False]
    # Every good line is a lease, in order (random text that happens to be one counts too).
    it = iter(leases)
    assert all(any(g == le for le in it) for g in good)
    assert {r.line for r in refused} >= set(bad)
    assert len(leases) + len(refused) + sum(t.startswith("duid ") for _, t in lines) == len(lines)
    for r in refused:
        assert r.reason and r.line >= 1
        assert r.text.isprintable() and r.text.isascii() and len(r.text) <= dnsmasq.SHOWN


def test_a_file_past_its_bound_is_refused_beyond_it_and_keeps_the_rest() -> None:
    text = "".join(GOOD[1] + "\n" for _ in range(dnsmasq.MAX_LINES + 5))
    leases, refused = dnsmasq.parse_lease_file(text)
    assert len(leases) == dnsmasq.MAX_LINES
    assert [(r.line, r.reason) for r in refused] == [
        (dnsmasq.MAX_LINES + 1, f"beyond {dnsmasq.MAX_LINES} lines: 5 unread")
    ]


def test_a_lease_of_a_users_device_places_the_user_at_the_functions_node() -> None:
    leases, _ = dnsmasq.parse_lease_file("\n".join(GOOD))
    owners = {"02:00:00:00:00:01": "alice", "0a:00:00:00:00:03": "bob"}
    got = core.lease_sightings(leases, owners, "cpe2", 3600, "vhg (i-1)", reported_at=42.0)
    assert got == [
        core.Sighting("alice", "cpe2", core.LEASE, 1763712000.0 - 3600, 1763712000.0,
                      "02:00:00:00:00:01 got 192.168.1.100 from vhg (i-1)"),
        # An infinite lease (expiry 0) counts from when the function reported it.
        core.Sighting("bob", "cpe2", core.LEASE, 42.0, None,
                      "0a:00:00:00:00:03 got 192.168.1.102 from vhg (i-1)"),
    ]  # fmt: skip
