from node.net.addresses import shareable_addrs


def test_a_wildcard_listen_address_is_shared_as_this_machines_addresses_loopback_last():
    shared = shareable_addrs("/ip4/0.0.0.0/tcp/4001/p2p/12D3KooW")
    assert shared[-1] == "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW"
    assert not any("0.0.0.0" in addr for addr in shared)
    assert all(addr.startswith("/ip4/") and addr.endswith("/tcp/4001/p2p/12D3KooW") for addr in shared)


def test_a_specific_address_is_shared_as_it_is():
    assert shareable_addrs("/ip4/192.0.2.7/tcp/4001") == ["/ip4/192.0.2.7/tcp/4001"]
    assert shareable_addrs("/ip6/::/tcp/4001")[-1] == "/ip6/::1/tcp/4001"


def test_only_public_private_and_loopback_ips_are_ordinary_addresses():
    from node.net.addresses import ordinary_addr

    ordinary = ["/ip4/127.0.0.1/tcp/1", "/ip4/10.1.2.3/tcp/1", "/ip4/8.8.8.8/tcp/4001", "/ip6/::1/tcp/1"]
    odd = ["/dns4/example.com/tcp/1", "/ip4/169.254.1.1/tcp/1", "/ip4/224.0.0.1/tcp/1", "/ip4/0.0.0.0/tcp/1"]
    odd += ["/ip4/240.0.0.1/tcp/1", "/ip6/fe80::1/tcp/1", "/unix/tmp/x"]
    assert all(ordinary_addr(addr) for addr in ordinary)
    assert not any(ordinary_addr(addr) for addr in odd)
