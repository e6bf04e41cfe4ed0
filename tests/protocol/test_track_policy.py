import dataclasses

import pytest

from protocol.canonical import digest
from protocol.errors import ConfigError, RecordError
from protocol.identity import Identity
from protocol.policy import NEW_SWARM_NOISE, PSK_BYTES, SWARM_ID_HEX, Policy, format_swarm_file, parse_swarm_file
from protocol.records import METRICS, sign
from protocol.track import Track, hardware_class

TRACK = Track("nvidia-h100-80gb-hbm3-x1", "seconds", 300, "climbmix", "bpe8192", 1)
PSK = bytes(range(PSK_BYTES))


def test_track_round_trips_through_its_wire_form():
    assert Track.from_wire(TRACK.to_wire()) == TRACK


def test_track_key_is_readable():
    assert TRACK.key == "nvidia-h100-80gb-hbm3-x1/300s/climbmix/bpe8192/eval1"


def test_hardware_class_is_a_slug_of_device_and_count():
    assert hardware_class("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3-x1"
    assert hardware_class("Apple M2 Max", 2) == "apple-m2-max-x2"
    assert hardware_class("???") == "unknown-x1"
    Track(hardware_class("x" * 500, 8), "seconds", 300, "d", "t", 1)  # always a valid track slug


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"hardware": "NVIDIA"}, "slug"),
        ({"dataset": "a b"}, "slug"),
        ({"tokenizer": "x" * 65}, "slug"),
        ({"dataset": 7}, "slug"),
        ({"budget_kind": "minutes"}, "budget kind"),
        ({"budget_kind": ["seconds"]}, "budget kind"),
        ({"budget": 0}, "budget must be a positive integer"),
        ({"budget": True}, "budget must be a positive integer"),
        ({"budget": 300.0}, "budget must be a positive integer"),
        ({"eval_version": -1}, "eval_version"),
    ],
)
def test_a_bad_track_is_rejected(changes, reason):
    with pytest.raises(ConfigError, match=reason):
        Track.from_wire({**TRACK.to_wire(), **changes})


@pytest.mark.parametrize("wire", [None, [], {"hardware": "x"}, {**TRACK.to_wire(), "extra": 1}])
def test_a_track_must_have_exactly_its_fields(wire):
    with pytest.raises(ConfigError, match="exactly the fields"):
        Track.from_wire(wire)


def test_swarm_id_is_a_stable_hash_of_the_whole_policy():
    policy = Policy()
    assert policy.swarm_id == Policy().swarm_id
    assert len(policy.swarm_id) == SWARM_ID_HEX
    assert policy.topic == f"/arnode/{policy.swarm_id}/records/1"
    changed = {"name": "lab", "min_runs": 3, "min_authors": 2, "sigma_floor_ubpb": 1, "budget": 60}
    changed |= {"budget_kind": "tokens", "dataset": "climbmix", "eval_version": 2}
    changed |= {"sigma_prior_df": 4, "clip_floors": 3}  # the noise model names the swarm too
    ids = {dataclasses.replace(policy, **{field: value}).swarm_id for field, value in changed.items()}
    assert len(ids) == len(changed) and policy.swarm_id not in ids


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"min_runs": 0}, "min_runs"),
        ({"min_authors": 3, "min_runs": 2}, "cannot exceed"),
        ({"sigma_floor_ubpb": 1.5}, "sigma_floor_ubpb"),
        ({"budget": True}, "budget"),
        ({"budget_kind": "hours"}, "budget_kind"),
        ({"budget_kind": ["seconds"]}, "budget_kind"),
        ({"dataset": "Not A Slug"}, "slug"),
        ({"sigma_prior_df": -1}, "sigma_prior_df"),
        ({"clip_floors": 1.5}, "clip_floors"),
    ],
)
def test_a_bad_policy_is_rejected(changes, reason):
    with pytest.raises(ConfigError, match=reason):
        Policy(**changes)


def test_policy_admits_only_its_own_budget_data_and_eval():
    policy = Policy(budget=300, dataset="climbmix", eval_version=1)
    assert policy.admits(TRACK)
    assert policy.admits(dataclasses.replace(TRACK, hardware="cpu-x1", tokenizer="bpe4096"))
    assert not policy.admits(dataclasses.replace(TRACK, budget=60))
    assert not policy.admits(dataclasses.replace(TRACK, dataset="shakespeare"))
    assert not policy.admits(dataclasses.replace(TRACK, eval_version=2))


def test_swarm_file_round_trips():
    policy = Policy(name='lab "north"\n', min_runs=3, min_authors=2, dataset="climbmix")
    assert parse_swarm_file(format_swarm_file(PSK, policy)) == (PSK, policy)


GOOD_FILE = format_swarm_file(PSK, Policy(min_runs=2))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not toml at all [",
        GOOD_FILE.replace(PSK.hex(), "zz" * PSK_BYTES),
        GOOD_FILE.replace(PSK.hex(), PSK.hex()[:-2]),
        GOOD_FILE.replace("psk =", "key ="),
        GOOD_FILE.replace("[policy]", "[rules]"),
        GOOD_FILE.replace("min_runs = 2", "min_runs = 0"),
        GOOD_FILE.replace("min_runs = 2", 'min_runs = "2"'),
        GOOD_FILE + "surprise = 1\n",
        GOOD_FILE.replace(f'psk = "{PSK.hex()}"', "psk = 5"),
        'psk = "00"\npolicy = 3\n',
    ],
    ids=[
        "empty",
        "not toml",
        "psk not hex",
        "psk too short",
        "psk missing",
        "policy missing",
        "policy invalid",
        "wrong type",
        "unknown field",
        "psk not text",
        "policy not a table",
    ],
)
def test_a_corrupt_swarm_file_is_a_config_error_on_one_line(text):
    with pytest.raises(ConfigError) as caught:
        parse_swarm_file(text)
    assert "\n" not in str(caught.value)


def test_a_swarm_file_from_before_rosters_keeps_its_swarm_id_and_loads_as_an_open_swarm():
    old_text = "\n".join(format_swarm_file(bytes(32), Policy(name="old")).splitlines()[:12]) + "\n"
    assert "admins" not in old_text and parse_swarm_file(old_text)[1].admins == ()
    first_fields = {f.name: getattr(Policy(name="old"), f.name) for f in dataclasses.fields(Policy)[:8]}
    assert Policy(name="old").swarm_id == digest(b"arnode/policy/1\n", first_fields)[:SWARM_ID_HEX]  # as before rosters
    founder = Identity.from_seed(b"\x07" * 32).peer_id
    with_roster = Policy(name="old", admins=(founder,), created_ms=1)
    assert with_roster.swarm_id != Policy(name="old").swarm_id
    assert parse_swarm_file(format_swarm_file(bytes(32), with_roster)) == (bytes(32), with_roster)


def test_a_swarm_without_the_noise_model_keeps_its_id_and_a_new_one_gets_it():
    old = Policy(name="old", created_ms=1)
    new = Policy(name="old", created_ms=1, **NEW_SWARM_NOISE)
    assert (old.sigma_prior_df, old.clip_floors) == (0, 0)  # a hard floor and raw runs, as before
    assert new.sigma_prior_df > 0 and new.clip_floors > 0 and new.swarm_id != old.swarm_id
    named = {f.name: getattr(old, f.name) for f in dataclasses.fields(Policy)[:8]} | {"created_ms": 1}
    assert old.swarm_id == digest(b"arnode/policy/1\n", named)[:SWARM_ID_HEX]  # the noise fields left out
    assert parse_swarm_file(format_swarm_file(bytes(32), new)) == (bytes(32), new)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [("val_bpb", 50_000, "outside this swarm's range"), ("val_bpb", 25_000_000, "outside"), ("ts", 0, "before")],
)
def test_implausible_results_are_refused(field, value, reason):
    policy = Policy(created_ms=1_700_000_000_000)
    track = Track("cpu-x1", policy.budget_kind, policy.budget, policy.dataset, "bpe8192", policy.eval_version)
    body = {
        "track": track.to_wire(), "parent": "0" * 64, "diff": {}, "config": "0" * 64, "seed": 0, "outcome": "ok",
        "val_bpb": value if field == "val_bpb" else 1_000_000, "metrics": dict.fromkeys(METRICS, 1),
        "hypothesis": "", "proposer": "builtin", "code": "0" * 64, "log": "0" * 64, "error": "", "replicates": None,
    }  # fmt: skip
    record = sign(Identity.from_seed(b"\x08" * 32), "result", body, value if field == "ts" else 1_700_000_000_000)
    with pytest.raises(RecordError, match=reason):
        policy.check(record)
