from node.net.peerscore import PeerScore


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_peer_sending_invalid_data_repeatedly_is_banned_for_a_while_and_a_rare_one_never():
    clock = Clock()
    score = PeerScore(burst=5, forgiven_per_s=1.0, ban_s=60, clock=clock)
    for _ in range(20):  # one invalid item every two seconds: always forgiven
        assert not score.penalise("honest")
        clock.now += 2
    started = [score.penalise("flooder") for _ in range(10)]
    assert started.count(True) == 1 and score.banned("flooder")
    clock.now += 61
    assert not score.banned("flooder") and not score.banned("honest")
