"""The ``arnode`` subcommands, one module per kind, each imported only when its command runs.

``cli.py`` parses the command line and imports the one module the command lives in, so a read
never pays for trio, libp2p, the LLM client, pyarrow or torch (tests/test_architecture.py checks):

    reading.py   results, best, hypotheses, export, plot: the local ledger, opened read-only
    findings.py  findings: what each kind of change did, from the same ledger
    asking.py    status, peers: the running daemon, over its control socket
    swarm.py     swarm new-key, show, invite, revoke, psk: the swarm file and its roster
    running.py   init, start, train: the node itself and one local experiment; `start` checks every
                 flag and file before it loads the daemon stack or opens the network

Each command is ``function(args, home) -> exit code`` and raises NodeError for a user's mistake.
"""
