"""Old home of :mod:`memoxr.estimate.bootstrap`; importing it gives that very module (old imports keep working)."""

import sys

from .estimate import bootstrap as _moved

sys.modules[__name__] = _moved
