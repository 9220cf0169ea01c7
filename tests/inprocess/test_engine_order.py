"""The in-process ``up`` takes its steps in the engine's order: proven on toy providers that journal
every call, without the lab.

Each test reads the sequence of provider calls (and the manifest) and asserts an order or an
invariant, never a fixed list of every call.
"""

from __future__ import annotations

import io

import pytest
from toystack import ToyStack, res

from imagelib_ha.inprocess import executing


def index_of(calls: list[dict[str, object]], call: str, **match: object) -> int:
    found = [
        i for i, c in enumerate(calls) if c["call"] == call and all(c.get(k) == v for k, v in match.items())
    ]
    assert len(found) == 1, f"expected one {call} {match}, got {len(found)} in {calls}"
    return found[0]


def test_replacement_creates_the_new_resource_first_and_deletes_the_old_one_at_the_end(toy: ToyStack) -> None:
    toy.up(res("a"), res("b", upstream="a"), res("c"))
    old = toy.manifest().get(next(e.urn for e in toy.manifest().entries if e.name == "a"))
    assert old is not None
    mark = toy.mark()

    # a's key forces a replacement, with new provider code (flavor v2); b and c update, d is new.
    deployment = toy.up(
        res("a", key="k2", flavor="v2"), res("b", upstream="a"), res("c", value="x"), res("d")
    )

    calls = toy.mutations(mark)
    create_new = index_of(calls, "create", label="a")
    delete_old = index_of(calls, "delete", label="a")
    assert create_new < delete_old
    # The old copy goes after every other create and update of the run, as the engine's final deletes.
    assert all(i < delete_old for i, c in enumerate(calls) if c["call"] in ("create", "update"))
    # ... through the code it was created with, with its old outputs.
    deleted = calls[delete_old]
    assert (deleted["id"], deleted["key"], deleted["flavor"]) == (old.id, "k1", "v1")
    assert calls[create_new]["flavor"] == "v2"

    by_name = {s.name: s for s in deployment.steps}
    assert (by_name["a"].op, by_name["a"].changed) == ("replace", ("key",))
    assert (by_name["b"].op, by_name["b"].changed) == ("update", ("upstream",))
    assert (by_name["c"].op, by_name["d"].op) == ("update", "create")
    # The old copy's delete is part of the replace step, not a step of its own.
    assert [s.op for s in deployment.steps].count("delete") == 0
    manifest = toy.manifest()
    assert manifest.pending_deletes == []
    assert old.id not in toy.live_ids()
    assert {e.id for e in manifest.entries} == toy.live_ids()


def test_a_failed_run_leaves_the_replaced_copy_pending_and_the_next_up_deletes_it_first(
    toy: ToyStack,
) -> None:
    toy.up(res("a"), res("x"))
    old_a = next(e for e in toy.manifest().entries if e.name == "a")
    mark = toy.mark()

    refused = "Toy z: RuntimeError: toy z refuses to be created"
    with pytest.raises(executing.InProcessError, match=refused) as caught:
        # a is replaced, then z (which waits for a) fails; x is no longer declared.
        toy.up(res("a", key="k2"), res("z", depends_on=["a"], fail_create=True))

    assert [c["call"] for c in toy.mutations(mark)].count("delete") == 0  # no delete runs after a failure
    manifest = toy.manifest()
    assert [e.id for e in manifest.pending_deletes] == [old_a.id]
    assert {e.name for e in manifest.entries} == {"a", "x"}  # x stays: its delete never ran
    assert [(s.op, s.name) for s in caught.value.steps] == [("replace", "a")]
    assert old_a.id in toy.live_ids()

    mark = toy.mark()
    deployment = toy.up(res("a", key="k2"), res("z", depends_on=["a"]))
    calls = toy.mutations(mark)
    assert (calls[0]["call"], calls[0]["id"]) == ("delete", old_a.id)  # pending deletes run first
    assert calls[-1]["call"] == "delete" and calls[-1]["label"] == "x"  # undeclared ones at the end
    assert [(s.op, s.name) for s in deployment.steps] == [("delete", "a"), ("same", "a"), ("create", "z"),
                                                          ("delete", "x")]
    assert toy.manifest().pending_deletes == []
    assert {e.id for e in toy.manifest().entries} == toy.live_ids()


@pytest.mark.parametrize(
    "order",
    [("bad", "mid", "slow"), ("slow", "mid", "bad")],
    # The SDK raises a failed registration as soon as it awaits that one, which depends on the order
    # of declaration: early (steps still running) or once the others are done (after `mid`, so `after`
    # registers after the failure). Both must end the same way.
    ids=["sdk-raises-while-steps-run", "sdk-raises-after-they-finish"],
)
def test_a_failed_step_lets_running_steps_finish_and_starts_no_other(
    toy: ToyStack, order: tuple[str, ...]
) -> None:
    # Timeline (seconds): bad fails at 0.3 while mid and slow are creating; mid ends at 1.0, which
    # lets `after` register while slow is still running; slow ends at 2.5. The margins are wide
    # because the machine is shared.
    specs = {"bad": res("bad", sleep=0.3, fail_create=True), "mid": res("mid", sleep=1.0),
             "slow": res("slow", sleep=2.5)}
    with pytest.raises(executing.InProcessError, match="Toy bad: RuntimeError") as caught:
        toy.up(*(specs[name] for name in order), res("after", depends_on=["mid"]))

    creates = [c["label"] for c in toy.mutations() if c["call"] == "create"]
    assert sorted(creates) == ["bad", "mid", "slow"]  # `after` is never started
    assert [(s.op, s.name) for s in caught.value.steps] == [("create", "mid"), ("create", "slow")]
    assert {e.name for e in toy.manifest().entries} == {"mid", "slow"}  # both recorded before up raised
    assert {e.id for e in toy.manifest().entries} == toy.live_ids()


def test_down_deletes_pending_copies_too(toy: ToyStack) -> None:
    toy.up(res("a"), res("b", depends_on=["a"]))
    with pytest.raises(executing.InProcessError):
        toy.up(res("a", key="k2"), res("b", depends_on=["a"]), res("z", depends_on=["a"], fail_create=True))
    assert len(toy.live_ids()) == 3  # new a, old a, b

    mark = toy.mark()
    assert toy.down() == 3
    assert toy.live_ids() == set()
    assert not executing.manifest_path(toy.root, toy.name).exists()
    deletes = [c["label"] for c in toy.mutations(mark)]
    assert deletes.index("b") < max(i for i, label in enumerate(deletes) if label == "a")  # dependents first


def test_a_protected_resource_is_never_replaced_or_deleted(toy: ToyStack) -> None:
    toy.up(res("a", protect=True), res("b"))
    a = next(e for e in toy.manifest().entries if e.name == "a")
    before = executing.manifest_path(toy.root, toy.name).read_text()
    mark = toy.mark()

    with pytest.raises(executing.InProcessError) as replaced:
        toy.up(res("a", key="k2", protect=True), res("b", value="changed"))
    message = str(replaced.value)
    assert f'unable to replace resource "{a.urn}"' in message and "protect" in message
    with pytest.raises(executing.InProcessError) as removed:
        toy.up(res("b", value="changed"))
    assert f'resource "{a.urn}" cannot be deleted\nbecause it is protected' in str(removed.value)

    assert toy.mutations(mark) == []  # refused before the first request: b's update did not run either
    assert executing.manifest_path(toy.root, toy.name).read_text() == before
    assert a.id in toy.live_ids()

    # Unprotecting and replacing in one run is allowed, as in the engine (new.Protect && old.Protect).
    deployment = toy.up(res("a", key="k2"), res("b"))
    assert [(s.op, s.name) for s in deployment.steps if s.name == "a"] == [("replace", "a")]
    assert a.id not in toy.live_ids()


@pytest.mark.parametrize(
    ("options", "delete_first"),
    [
        ({"dbr": True}, True),  # the provider's DiffResult asks for it
        ({"delete_before_replace": True}, True),  # the resource option
        # The option, when set, overrides the provider.
        ({"dbr": True, "delete_before_replace": False}, False),
    ],
    ids=["provider", "option", "option-overrides-provider"],
)
def test_delete_before_replace_deletes_the_old_resource_before_creating_the_new_one(
    toy: ToyStack, options: dict[str, bool], delete_first: bool
) -> None:
    toy.up(res("a", **options), res("b"))
    old = next(e for e in toy.manifest().entries if e.name == "a")
    mark = toy.mark()

    toy.up(res("a", key="k2", **options), res("b", value="changed"))

    calls = toy.mutations(mark)
    delete_old = index_of(calls, "delete", label="a")
    assert calls[delete_old]["id"] == old.id
    assert (delete_old < index_of(calls, "create", label="a")) is delete_first
    assert old.id not in toy.live_ids()
    assert toy.manifest().pending_deletes == []


def test_check_failures_of_all_resources_are_reported_before_anything_is_touched(toy: ToyStack) -> None:
    with pytest.raises(executing.InProcessError) as caught:
        toy.up(res("a", invalid="a is wrong"), res("b", upstream="a", invalid="b is wrong"), res("c"))
    message = str(caught.value)
    assert "check refused the inputs of 2 resources" in message
    assert "Toy a: value: a is wrong" in message and "Toy b: value: b is wrong" in message
    assert toy.mutations() == []
    assert not executing.manifest_path(toy.root, toy.name).exists()
    # b's input computed by a was checked as unknown, as the engine delivers it at preview.
    assert {c["upstream"] for c in toy.calls() if c["call"] == "check" and c["label"] == "b"} == {"<unknown>"}


def test_a_check_failure_on_an_existing_stack_stops_updates_too(toy: ToyStack) -> None:
    toy.up(res("a"), res("b"))
    mark = toy.mark()
    with pytest.raises(executing.InProcessError, match="Toy b: value: nope"):
        toy.up(res("a", value="new"), res("b", invalid="nope"))
    assert toy.mutations(mark) == []


def test_preview_plans_every_op_and_touches_nothing(toy: ToyStack) -> None:
    toy.up(res("a"), res("b", upstream="a"), res("c"), res("g", upstream="c"), res("d"), res("e"))
    before = executing.manifest_path(toy.root, toy.name).read_text()
    mark = toy.mark()
    wanted = (res("a", key="k2"), res("b", upstream="a"), res("c", value="x"), res("g", upstream="c"),
              res("d"), res("f"))

    out = io.StringIO()
    steps = toy.preview(*wanted, out=out)

    assert toy.mutations(mark) == []
    assert executing.manifest_path(toy.root, toy.name).read_text() == before
    planned = {(s.op, s.name, s.changed) for s in steps}
    assert planned == {
        ("replace", "a", ("key",)),
        ("update", "b", ("upstream",)),  # a's out is unknown until a is replaced
        ("update", "c", ("value",)),
        ("update", "g", ("upstream",)),  # an updated resource's computed outputs are unknown too
        ("same", "d", ()),
        ("create", "f", ()),
        ("delete", "e", ()),
    }
    text = out.getvalue()
    assert 'key: "k1" => "k2"' in text and "upstream: \"a:v:k1\" => <computed>" in text
    assert "plan: 1 to create, 3 to update, 1 to replace, 1 to delete, 1 unchanged" in text

    # The ops up then takes are the ones planned.
    deployment = toy.up(*wanted)
    assert {(s.op, s.name, s.changed) for s in deployment.steps} == planned


def test_preview_shows_the_pending_deletes_it_would_run_first(toy: ToyStack) -> None:
    toy.up(res("a"))
    with pytest.raises(executing.InProcessError):
        toy.up(res("a", key="k2"), res("z", depends_on=["a"], fail_create=True))
    steps = toy.preview(res("a", key="k2"))
    assert [(s.op, s.name) for s in steps] == [("delete", "a"), ("same", "a")]


def test_refresh_drops_a_resource_deleted_out_of_band_and_the_next_up_recreates_it(toy: ToyStack) -> None:
    toy.up(res("a"), res("b"), res("c"))
    ids = {e.name: e.id for e in toy.manifest().entries}
    toy.world_edit(ids["b"], None)
    toy.world_edit(ids["a"], {"value": "edited by hand"})

    drifts = {d.name: d for d in toy.refresh()}

    assert set(drifts) == {"a", "b"}  # c did not drift
    assert drifts["b"].gone and drifts["b"].changed == {}
    assert not drifts["a"].gone and drifts["a"].changed["value"] == ("v", "edited by hand")
    manifest = toy.manifest()
    assert {e.name for e in manifest.entries} == {"a", "c"}
    assert next(e for e in manifest.entries if e.name == "a").outputs["value"] == "edited by hand"

    mark = toy.mark()
    deployment = toy.up(res("a"), res("b"), res("c"))
    ops = {s.name: s.op for s in deployment.steps}
    assert ops == {"a": "update", "b": "create", "c": "same"}  # the drift is corrected, b made again
    assert {c["label"] for c in toy.mutations(mark) if c["call"] == "create"} == {"b"}
