from node.net.claims import ClaimBook
from protocol import announce
from protocol.identity import Identity

ALICE = Identity.from_seed(b"\x0a" * 32)
TRACK, CONFIG = "cpu-x1/2steps/shakespeare/bpe4096/eval1", "a" * 64


def claim(ts_ms: int, ttl_ms: int) -> announce.Claim:
    return announce.decode(announce.sign_claim(ALICE, TRACK, CONFIG, ts_ms, ttl_ms), ts_ms)


def test_a_claim_lives_until_it_expires():
    book = ClaimBook()
    book.add(claim(1_000, 60_000), 1_000)
    assert [c.config for c in book.live(30_000)] == [CONFIG]
    assert book.live(61_000) == []


def test_a_newer_momentary_claim_releases_the_running_one_and_an_older_one_cannot_revive_it():
    book = ClaimBook()
    book.add(claim(1_000, 60_000), 1_000)
    book.add(claim(5_000, 1), 5_000)  # what Swarm.release_claim sends
    assert book.live(5_001) == [] and book.mine(ALICE.peer_id, 5_001) == []
    book.add(claim(1_000, 60_000), 6_000)  # a late duplicate of the first claim
    assert book.live(6_000) == []


def test_a_member_flooding_claims_keeps_only_its_newest_and_others_keep_theirs():
    from node.net.claims import MAX_CLAIMS_PER_AUTHOR

    book = ClaimBook()
    bob = Identity.from_seed(b"\x0b" * 32)
    book.add(announce.decode(announce.sign_claim(bob, TRACK, "b" * 64, 1_000, 60_000), 1_000), 1_000)
    for n in range(MAX_CLAIMS_PER_AUTHOR * 3):
        config = f"{n:064x}"
        book.add(announce.decode(announce.sign_claim(ALICE, TRACK, config, 2_000 + n, 60_000), 2_000 + n), 2_000 + n)
    assert len(book.mine(ALICE.peer_id, 3_000)) == MAX_CLAIMS_PER_AUTHOR
    assert min(c.ts_ms for c in book.mine(ALICE.peer_id, 3_000)) == 2_000 + MAX_CLAIMS_PER_AUTHOR * 2
    assert [c.config for c in book.mine(bob.peer_id, 3_000)] == ["b" * 64]
