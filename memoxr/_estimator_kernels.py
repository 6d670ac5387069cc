"""Old home of :mod:`memoxr.estimate.kernels`; importing it gives that very module (old imports keep working)."""

import sys

from .estimate import kernels as _moved

sys.modules[__name__] = _moved
