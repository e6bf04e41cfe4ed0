"""The ``arnode`` subcommands, one module per kind, each imported only when its command runs.

``cli.py`` parses the command line and imports the one module the command lives in, so a read
never pays for libp2p, the LLM client, pyarrow or torch:

    reading.py   results, best, export, plot: the local ledger, opened read-only
    asking.py    status, peers: the running daemon, over its control socket
    swarm.py     swarm new-key, swarm show, and which swarm a home belongs to
    running.py   init, start, train: the node itself and one local experiment

Each command is ``function(args, home) -> exit code`` and raises NodeError for a user's mistake.
"""
