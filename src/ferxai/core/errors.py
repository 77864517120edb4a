"""User-facing errors: the CLI prints their message (no traceback) and exits with status 2."""


class FerxaiError(Exception):
    """A problem the user can fix. The message names the file or setting, the problem and the fix."""


class ConfigError(FerxaiError):
    """Invalid configuration (unknown key, wrong type, out-of-range value, missing weights...)."""


class DataError(FerxaiError):
    """Invalid input data (unreadable image, empty class, path outside the data root...)."""
