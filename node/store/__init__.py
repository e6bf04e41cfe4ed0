"""The store: what a node knows, as a grow-only set of signed records.

    ledger.py   SQLite G-Set of records (raw bytes plus indexed columns) and the per-track views
                (leaderboard, best, candidates) derived from it by protocol.acceptance

Imports protocol and node.errors only: no trio, no libp2p, so every layer and every read command can use it.
"""
