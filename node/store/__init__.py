"""The store: what a node knows, as a grow-only set of signed records.

    gate.py     the one way in for every record (gossip, sync, the CLI, ours): judged once by the
                intake, decided once against the roster and the members' limits, then stored
    intake.py   judging untrusted bytes (size, decode, signature, policy), large batches on worker
                processes; each invalid record gets its kind (oversized, unsigned, forged, ...)
    members.py  who counts and each member's share: records per minute and bytes per day of the
                records' own timestamps, the same on every path and every node
    ledger.py   SQLite G-Set of records (raw bytes plus indexed columns) that only stores, and the
                per-track views (leaderboard, best, candidates) derived from it by protocol.acceptance
    views.py    those views kept per track until its runs or the roster change, and the config
                derivations every view and config resolution share

Imports protocol and node.errors only: no trio, no libp2p, so every layer and every read command can use it.
"""
