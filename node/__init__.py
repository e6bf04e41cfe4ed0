"""The arnode daemon: one subpackage per concern, the application on top.

Subpackages (each ``__init__`` maps its files):
    store/      the ledger: signed records in SQLite and the views derived from them
    net/        libp2p: the host, gossip, anti-entropy sync, claims and peer keeping
    research/   the research loop: what to run next, proposers (built-in and LLM), the trainer runner

The application, at this level:
    daemon.py     one nursery owning the swarm, the research workers and the control socket
    ledger_reader.py  the daemon's reads of the ledger (views), on a thread of their own, off the trio thread
    control.py    the local control socket that `arnode status` and `arnode peers` ask
    dashboard.py  the read-only live page (dashboard.html) that `arnode start` serves on 127.0.0.1
    progress.py   the progress picture: every run, and the accepted best over time with its band
    commands/     the `arnode` subcommands, one module per kind, imported only when run
    live.py       log lines and the live view on a terminal
    report.py     the rows `arnode results`, `best` and `export` show
    home.py       where a node keeps its files
    settings.py   config.toml
    keyfile.py    the identity key on disk
    swarmfile.py  the swarm file on disk (private-network key and policy)
    clock.py      the wall clock in record milliseconds
    errors.py     NodeError: one line a user can act on

What may import what (tests/test_architecture.py checks the heavy edges):
    protocol  <-  store  <-  net, research  <-  application  <-  cli
    errors, clock and home are leaves that any layer may use. store never loads trio; research never
    loads libp2p (it reaches the swarm through research.loop.Network); only the application joins them.
"""
