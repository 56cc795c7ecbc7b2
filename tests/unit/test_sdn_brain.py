"""The controller's Brain: view + intents + where hosts were seen (no switches needed)."""

from __future__ import annotations

from netfate.orchestrator.sdn.brain import Brain
from netfate.orchestrator.sdn.intents import PortView, ViewAndIntents, parse_intent
from sdn_fixtures import MAC, make_view

NOW = 1000.0  # the brain is given the time; these tests do not move it


def _brain() -> Brain:
    view = make_view()
    # cpe2 gets an anonymous access port (a Wi-Fi AP, say) at ofport 9.
    nodes = [
        n.model_copy(update={"ports": [*n.ports, PortView(name="ap", ofport=9, peer="host:ap")]})
        if n.name == "cpe2"
        else n
        for n in view.nodes
    ]
    b = Brain()
    b.update(
        ViewAndIntents(
            view=view.model_copy(update={"nodes": nodes}),
            intents=[
                parse_intent(
                    {"kind": "connectivity", "id": "c", "a": "host:alice", "b": "host:server"}
                )
            ],
            version="1",
        )
    )
    return b


def test_same_version_is_not_recompiled() -> None:
    b = _brain()
    gen = b.generation
    assert not b.update(ViewAndIntents(view=b.data.view, intents=b.data.intents, version="1"))  # type: ignore[union-attr]
    assert b.generation == gen


def test_known_host_on_its_own_port_changes_nothing() -> None:
    b = _brain()
    assert not b.host_at(MAC["alice"], "cpe1", 1, NOW)


def test_known_host_on_an_anonymous_port_moves_its_flows() -> None:
    b = _brain()
    gen = b.generation
    assert b.host_at(MAC["alice"], "cpe2", 9, NOW)
    assert b.generation == gen + 1
    flows, _groups, _gen = b.desired("cpe2") or (set(), set(), 0)
    assert any(("in_port", 9) in f.match and ("eth_src", MAC["alice"]) in f.match for f in flows)
    assert not b.host_at(MAC["alice"], "cpe2", 9, NOW)  # already there


def test_a_copied_mac_on_another_hosts_port_is_ignored() -> None:
    b = _brain()
    gen = b.generation
    assert not b.host_at(MAC["alice"], "cpe2", 1, NOW)  # bob's port
    assert b.generation == gen


def test_unknown_mac_changes_nothing() -> None:
    b = _brain()
    assert not b.host_at("02:de:ad:be:ef:00", "cpe2", 9, NOW)
    assert b.known("02:de:ad:be:ef:00") is None
    assert b.mac_for_ip("10.0.0.5") == MAC["server"]


def test_many_intents_a_move_recompiles_that_host_first_then_settles() -> None:
    view = make_view()
    nodes = [
        n.model_copy(update={"ports": [*n.ports, PortView(name="ap", ofport=9, peer="host:ap")]})
        if n.name == "cpe2"
        else n
        for n in view.nodes
    ]
    view = view.model_copy(update={"nodes": nodes})
    intents = [
        parse_intent(
            {
                "kind": "connectivity",
                "id": f"bg{i}",
                "a": "host:bob",
                "b": f"subnet:10.{100 + i}.0.0/16@pe",
            }
        )
        for i in range(60)
    ]
    intents.append(
        parse_intent(
            {"kind": "steering", "id": "s", "host": "alice", "chain": ["fw2"], "to": "host:server"}
        )
    )
    b = Brain()
    b.update(ViewAndIntents(view=view, intents=intents, version="1"))
    assert b.host_at(MAC["alice"], "cpe2", 9, NOW)
    assert b.full_due
    fast = {n: set(fs) for n, fs in (b.result.flows if b.result else {}).items()}
    assert any(("in_port", 9) in f.match for f in fast["cpe2"] if f.priority == 400)
    assert not b.settle(NOW)  # too soon: more hosts may be arriving
    b.last_partial -= 10.0
    assert b.settle(NOW) and not b.full_due and not b.settle(NOW)
    full = b.result.flows if b.result else {}
    # No flows are shared between these intents: the spliced result was already exact.
    assert fast == full


def _migrating_brain() -> Brain:
    """fw1 (cpe1) steers alice's traffic to the server; a standby copy of fw1 sits on
    cpe2 at ofport 7, as during a migration before the view names cpe2."""
    view = make_view()
    nodes = [
        n.model_copy(
            update={"ports": [*n.ports, PortView(name="c2fw", ofport=7, peer="instance:fw1")]}
        )
        if n.name == "cpe2"
        else n
        for n in view.nodes
    ]
    b = Brain()
    steer = {"kind": "steering", "id": "s", "host": "alice", "chain": ["fw1"], "to": "host:server"}
    b.update(
        ViewAndIntents(
            view=view.model_copy(update={"nodes": nodes}),
            intents=[parse_intent(steer)],
            version="1",
        )
    )
    return b


def _to_fw(b: Brain, node: str) -> set[int]:
    """Ports of `node` that steered frames to fw1's MAC leave by."""
    flows, _g, _gen = b.desired(node) or (set(), set(), 0)
    out = set()
    for f in flows:
        acts = [a for a in f.actions if getattr(a, "field", None) == "eth_dst"]
        if acts and getattr(acts[0], "value", None) == MAC["fw1"]:
            out |= {a.port for a in f.actions if hasattr(a, "port")}
    return out


def test_a_migrated_instance_announcing_itself_takes_the_steering_ahead_of_the_view() -> None:
    b = _migrating_brain()
    assert _to_fw(b, "cpe1") == {3}  # the view's node: the copy at cpe1
    gen = b.generation
    assert b.instance_at(MAC["fw1"], "cpe2", 7, NOW)  # its gratuitous ARP at the cut-over
    assert b.generation > gen
    assert 3 not in _to_fw(b, "cpe1")  # alice's frames now leave cpe1 toward pe
    assert _to_fw(b, "pe") == {2}  # ...and on to cpe2
    assert not b.instance_at(MAC["fw1"], "cpe2", 7, NOW)  # already there: nothing to do


def test_an_instance_is_not_pulled_to_a_port_that_is_not_its_own() -> None:
    b = _migrating_brain()
    gen = b.generation
    assert not b.instance_at(MAC["fw1"], "cpe2", 1, NOW)  # bob's port
    assert not b.instance_at(MAC["alice"], "cpe2", 7, NOW)  # a host's MAC is not an instance
    assert b.generation == gen


def test_the_override_ends_when_its_port_goes() -> None:
    b = _migrating_brain()
    assert b.instance_at(MAC["fw1"], "cpe2", 7, NOW)
    assert b.data is not None
    gone = [
        n.model_copy(update={"ports": [p for p in n.ports if p.ofport != 7]})
        if n.name == "cpe2"
        else n
        for n in b.data.view.nodes
    ]
    b.update(ViewAndIntents(view=b.data.view.model_copy(update={"nodes": gone}),
                            intents=b.data.intents, version="2"))  # fmt: skip
    assert MAC["fw1"] not in b.overrides
    assert _to_fw(b, "cpe1") == {3}
