"""Old home of :mod:`memoxr.estimate.incremental`; importing it gives that very module (old imports keep working)."""

import sys

from .estimate import incremental as _moved

sys.modules[__name__] = _moved
