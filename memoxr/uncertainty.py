"""Old home of :mod:`memoxr.estimate.uncertainty`; importing it gives that very module (old imports keep working)."""

import sys

from .estimate import uncertainty as _moved

sys.modules[__name__] = _moved
