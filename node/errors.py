"""Errors a user can fix: the message is one line naming the file or the cause and what to do."""


class NodeError(Exception):
    """A problem with the node's files, settings or environment."""
