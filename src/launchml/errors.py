"""The one exception tree of launchml.

Every message names the bad value, what is allowed, and the fix.

    LaunchmlError                     base of everything raised on purpose
    ├── ConfigError(ValueError)       a config key or value is wrong
    ├── DataError(ValueError)         a data file, folder or column is wrong
    ├── ModelError(ValueError)        a model family or its weights cannot be built
    ├── PackageError(ValueError)      a model package is missing, damaged or too new
    ├── InputError(ValueError)        a prediction input cannot be read (server: 4xx)
    ├── RunError(RuntimeError)        a run directory is inconsistent (resume, stages)
    └── MissingDependencyError(ImportError)  an optional package is not installed

Each subclasses the matching stdlib type too, so ``except ValueError`` works.
"""

from __future__ import annotations


class LaunchmlError(Exception):
    """Base class of every error launchml raises on purpose."""


class ConfigError(LaunchmlError, ValueError):
    """A config key or value is wrong."""


class DataError(LaunchmlError, ValueError):
    """A data file, folder or column cannot be used."""


class ModelError(LaunchmlError, ValueError):
    """A model family, its options or its pretrained weights cannot be used."""


class PackageError(LaunchmlError, ValueError):
    """A model package is missing, damaged or written by a newer launchml."""


class InputError(LaunchmlError, ValueError):
    """A prediction input (file, upload, array) cannot be turned into model input."""


class RunError(LaunchmlError, RuntimeError):
    """A run directory is inconsistent: a missing stage output, a mismatched resume."""


class MissingDependencyError(LaunchmlError, ImportError):
    """An optional dependency is not installed."""


def missing_dependency(package: str, extra: str, needed_for: str) -> MissingDependencyError:
    """The error for an optional package of the ``extra`` extra, with the pip command."""
    return MissingDependencyError(
        f"{needed_for} needs '{package}', which is not installed. "
        f"Fix: pip install 'launchml[{extra}]'")


__all__ = [
    "ConfigError",
    "DataError",
    "InputError",
    "LaunchmlError",
    "MissingDependencyError",
    "ModelError",
    "PackageError",
    "RunError",
    "missing_dependency",
]
