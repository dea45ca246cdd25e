"""Error hierarchy: every failure ctid reports to a user derives from :class:`CtidError`."""


class CtidError(Exception):
    """Root of all ctid errors; its message is one line fit for a user."""


class ConfigError(CtidError):
    """The configuration (file or environment) is invalid."""


class AmiError(CtidError):
    """Talking to an Asterisk Manager Interface failed (connect, login, action)."""


class AmiProtocolError(AmiError):
    """Bytes received from an AMI peer do not follow the protocol."""


class PolicyError(CtidError):
    """A policy file is invalid."""


class StoreError(CtidError):
    """The database could not be read or written."""


class InputError(CtidError):
    """A file or value given on the command line cannot be used."""
