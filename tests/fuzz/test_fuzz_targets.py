"""The short form of ``make fuzz``: every fuzz target of tests/fuzz/targets.py under hypothesis,
with random bytes and with its valid seeds mutated (bytes flipped, cut, inserted), for a few
seconds in all. Each input must end in a result or one of the project's own errors; any other
exception fails the test with the input that caused it.
"""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apdu.sam import Mac2Invalid
from fuzz.targets import TARGETS, check

SHORT = settings(
    max_examples=100,
    deadline=2000,  # ms: an input that takes longer is a hang
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@functools.cache
def seeds(name: str) -> tuple[bytes, ...]:
    return tuple(TARGETS[name].seeds())


@st.composite
def mutated(draw: st.DrawFn, name: str) -> bytes:
    """A seed with a few bytes flipped, a piece cut out or random bytes inserted."""
    data = bytearray(draw(st.sampled_from(seeds(name))))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(data)))
        how = draw(st.sampled_from(("flip", "cut", "insert", "truncate")))
        if how == "flip" and where < len(data):
            data[where] = draw(st.integers(0, 255))
        elif how == "cut":
            del data[where : where + draw(st.integers(1, 16))]
        elif how == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[where:]
    return bytes(data)


@pytest.mark.parametrize("name", sorted(set(TARGETS) - {"purse"}))
def test_every_seed_runs_to_a_result(name: str) -> None:
    for seed in seeds(name):
        TARGETS[name].run(seed)  # no error at all: the fuzzers start from inputs that get through


def test_the_purse_seed_runs_up_to_the_mac2_check() -> None:
    # the recorded card answers cannot know this PSAM's session: the replay ends at MAC2
    with pytest.raises(Mac2Invalid):
        TARGETS["purse"].run(seeds("purse")[0])


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_random_and_mutated_inputs_end_in_a_result_or_a_project_error(name: str) -> None:
    @SHORT
    @given(st.one_of(st.binary(max_size=300), mutated(name), mutated(name)))
    def run(data: bytes) -> None:
        check(name, data)

    run()
