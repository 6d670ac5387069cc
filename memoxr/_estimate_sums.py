"""Old home of :mod:`memoxr.estimate.sums`; importing it gives that very module (old imports keep working)."""

import sys

from .estimate import sums as _moved

sys.modules[__name__] = _moved
