"""Moved to ``launchml.package`` (the package format is shared by train, optimize
and deploy, so it lives below all of them). ``launchml.deploy.package`` stays
importable: it is the same module object, so its names, private ones included,
and monkeypatching keep working.
"""

from __future__ import annotations

import sys

from launchml import package as _package

sys.modules[__name__] = _package
