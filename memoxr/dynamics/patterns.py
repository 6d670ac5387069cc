"""File patterns such as ``losses/loss_run{run}_epoch_{epoch}.npy``: parsed once, listed through fsspec.

A pattern can name a local folder or an ``s3://`` bucket (once its filesystem
package is installed); each ``{field}`` becomes a named regex group whose
values are typed (ints, else floats, else strings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import fsspec

from ..errors import MemoxrInputError
from ..io.location import Location, StorageOptions

FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_INT = re.compile(r"[+-]?\d+")


@dataclass
class _Pattern:
    text: str
    fields: list[str]  # in order of first appearance
    fs: fsspec.AbstractFileSystem
    glob: str
    regex: re.Pattern[str]


def parse_pattern(
    pattern: str | Location, *, argument: str = "pattern", storage_options: StorageOptions = None
) -> _Pattern:
    """Turn ``dir/loss_run{run}_epoch_{epoch}.npy`` into a glob and a regex with named fields.

    Examples
    --------
    >>> p = parse_pattern("/data/loss_run{run}_epoch_{epoch}.npy")
    >>> p.fields, p.glob, p.regex.fullmatch("/data/loss_run2_epoch_17.npy").groupdict()
    (['run', 'epoch'], '/data/loss_run*_epoch_*.npy', {'run': '2', 'epoch': '17'})
    """
    location = Location.of(pattern, storage_options)
    text = location.path
    fields: list[str] = []
    tokens = []
    for k, m in enumerate(FIELD.finditer(text)):
        tokens.append((m.group(0), f"MEMOXRFIELD{k}X", m.group(1)))
        if m.group(1) not in fields:
            fields.append(m.group(1))
    if not fields:
        raise MemoxrInputError(
            f"{argument} {text!r}: no {{field}}; expected fields such as {{epoch}}, e.g. "
            "'losses/loss_run{run}_epoch_{epoch}.npy'"
        )
    marked = text
    for field_text, token, _ in tokens:
        marked = marked.replace(field_text, token, 1)
    fs, path = fsspec.core.url_to_fs(marked, **location.storage_options)
    glob = path
    regex = re.escape(path)
    seen: set[str] = set()
    for _, token, name in tokens:
        glob = glob.replace(token, "*", 1)
        group = f"(?P={name})" if name in seen else f"(?P<{name}>[^/]+?)"
        regex = regex.replace(re.escape(token), group, 1)
        seen.add(name)
    return _Pattern(text, fields, fs, glob, re.compile(regex))


def _typed(values: list[str]) -> list[Any]:
    """Field strings to ints, else floats, else strings (the same type for a whole field)."""
    if all(_INT.fullmatch(v) for v in values):
        return [int(v) for v in values]
    try:
        return [float(v) for v in values]
    except ValueError:
        return list(values)


@dataclass
class _Listing:
    """Files matched by one pattern: field values (typed) per file."""

    pattern: _Pattern
    paths: list[str] = field(default_factory=list)
    values: dict[str, list[Any]] = field(default_factory=dict)


def _list(pattern: _Pattern, *, argument: str) -> _Listing:
    paths = sorted(pattern.fs.glob(pattern.glob))
    listing = _Listing(pattern)
    raw: dict[str, list[str]] = {f: [] for f in pattern.fields}
    for p in paths:
        m = pattern.regex.fullmatch(p)
        if m is None:
            continue
        listing.paths.append(p)
        for f in pattern.fields:
            raw[f].append(m.group(f))
    if not listing.paths:
        raise MemoxrInputError(
            f"{argument} {pattern.text!r}: no file matches; expected files like {pattern.glob!r}"
        )
    listing.values = {f: _typed(v) for f, v in raw.items()}
    return listing
