"""The one exception type the protocol core raises for bad input."""


class ProtocolError(ValueError):
    """Untrusted input was rejected; ``str(err)`` is a one-line reason."""


class RecordError(ProtocolError):
    """A record's bytes were rejected."""


class ConfigError(ProtocolError):
    """A config, diff, track or policy was rejected."""
