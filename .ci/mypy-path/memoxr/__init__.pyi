# Never read: "." comes first in mypy_path, so memoxr is the checkout's. This file only lets
# mypy accept memoxr/convert here (through the symlink) before an installed copy of memoxr.convert.
