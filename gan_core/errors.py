"""Errors the engine raises for problems a user can fix (bad config, missing data, bad checkpoint).

The CLI and the app catch `GanError` and show its message as one line; anything else is a bug.
"""


class GanError(Exception):
    """Base class for every user-facing error of the engine."""


class ConfigError(GanError, ValueError):
    """A configuration value is invalid; the message names the field and the allowed range."""


class DataUnavailable(GanError):
    """A dataset cannot be loaded (not downloaded and offline, corrupt, empty folder...)."""


class CheckpointError(GanError):
    """A checkpoint is missing, truncated, foreign or does not fit the model it describes."""


class EvaluatorError(GanError):
    """The bundled evaluator (metrics) file is missing, corrupt or does not match its checksum."""


class ImageError(GanError):
    """A drawn or uploaded picture cannot be used: not an image, too big, far from square, or empty."""
