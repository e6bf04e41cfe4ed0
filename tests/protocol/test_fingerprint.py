"""Range fingerprints depend only on the IDs inside the range; splits cover a range exactly."""

from hypothesis import given
from hypothesis import strategies as st

from protocol.fingerprint import HIGHEST, LOWEST, RangeIndex, separator

keys = st.lists(st.tuples(st.integers(0, 5), st.binary(min_size=32, max_size=32)), unique=True, max_size=80).map(sorted)


@given(inside=keys, outside=keys, cut=st.integers(0, 6))
def test_a_range_fingerprint_ignores_everything_outside_it(inside, outside, cut):
    # the same keys below the cut, different keys above it: the fingerprints below agree
    low = [key for key in inside if key[0] < cut]
    one, two = RangeIndex(sorted(set(inside))), RangeIndex(sorted(set(low) | {k for k in outside if k[0] >= cut}))
    bound = (cut, b"")
    assert one.fingerprint(0, one.position(bound)) == two.fingerprint(0, two.position(bound))


@given(items=keys)
def test_different_sets_get_different_fingerprints(items):
    index = RangeIndex(items)
    fingerprints = {index.fingerprint(0, stop) for stop in range(len(items) + 1)}
    assert len(fingerprints) == len(items) + 1


@given(
    pair=st.lists(
        st.tuples(st.integers(0, 3), st.binary(min_size=32, max_size=32)), min_size=2, max_size=2, unique=True
    )
)
def test_a_separator_lies_between_two_keys(pair):
    below, above = sorted(pair)
    bound = separator(below, above)
    assert below < bound <= above and len(bound[1]) <= 32


@given(items=keys.filter(lambda k: len(k) >= 16), parts=st.integers(2, 16))
def test_a_split_covers_the_range_in_order_with_every_part_filled(items, parts):
    index = RangeIndex(items)
    pieces = index.split(LOWEST, HIGHEST, 0, len(items), parts)
    assert pieces[0][0] == LOWEST and pieces[-1][1] == HIGHEST
    for (lower, upper, start, stop), following in zip(pieces, [*pieces[1:], None], strict=True):
        assert lower < upper and stop > start
        assert (index.position(lower), index.position(upper)) == (start, stop)
        if following:
            assert following[0] == upper and following[2] == stop
