"""Figures written to files (``memoxr plot``): one file, or a folder of several, complete or absent."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..compute.progress import compute, deprecated_show_progress
from ..errors import MemoxrInputError
from ..influence.analysis import METHODS
from ..io.location import Location, StorageOptions
from ..io.schema import CLASS, check_scores_dataset
from ._style import (
    SCALES,
    Scale,
    check_choice,
    check_k,
    check_score_name,
    class_position,
    distribution_size,
)
from .distributions import SORTS, SortBy, score_distributions
from .scores import memorization_vs_influence, method_agreement, table_size, top_k_table

#: Figure kinds of ``memoxr plot --kind``, each with the stem of its file.
KINDS = {
    "box": "score_distributions",
    "violin": "score_violins",
    "scatter": "memorization_vs_influence",
    "agreement": "method_agreement",
    "top-k": "top_k_table",
}
#: Kinds drawn when none are chosen.
DEFAULT_KINDS = ("box", "scatter", "agreement", "top-k")
FORMATS = ("png", "svg", "pdf")
#: Files :func:`write_score_figures` writes into a folder by default, in order.
FIGURE_FILES = tuple(f"{KINDS[kind]}.png" for kind in DEFAULT_KINDS)


def output_plan(output: str | os.PathLike[str], kinds: Sequence[str] | None, fmt: str | None) -> tuple[bool, list[str], str]:
    """Whether ``output`` is one file, the kinds to draw and the file format, checked before any work.

    An ``output`` ending in ``.png``, ``.svg`` or ``.pdf`` is one figure file,
    so exactly one kind must be chosen; its format is the suffix (a different
    ``fmt`` is refused). Any other ``output`` is a folder holding
    ``<stem>.<fmt>`` per kind (``fmt`` default ``png``).

    Examples
    --------
    >>> output_plan("figures/scatter.svg", ["scatter"], None)
    (True, ['scatter'], 'svg')
    >>> output_plan("figures", None, None)
    (False, ['box', 'scatter', 'agreement', 'top-k'], 'png')
    """
    if fmt is not None:
        check_choice("format", fmt, FORMATS)
    chosen = list(dict.fromkeys(kinds)) if kinds else None
    for kind in chosen or ():
        check_choice("kind", kind, tuple(KINDS))
    suffix = Path(str(output)).suffix.lower().lstrip(".")
    if suffix in FORMATS:
        if chosen is None or len(chosen) != 1:
            received = "none" if chosen is None else f"{len(chosen)} ({', '.join(chosen)})"
            raise MemoxrInputError(
                f"output {str(output)!r} names one {suffix} file, so it takes exactly one kind "
                f"(--kind, one of {list(KINDS)}); received {received}. For several figures name a folder"
            )
        if fmt is not None and fmt != suffix:
            raise MemoxrInputError(
                f"format is {fmt!r} but output {str(output)!r} ends in .{suffix}; expected them to agree "
                "(or leave --format out)"
            )
        return True, chosen, suffix
    return False, chosen or list(DEFAULT_KINDS), fmt or "png"


def _drawers(scores: xr.Dataset, class_label: Any, score: str, k: int, scale: Scale, sort_by: SortBy | None) -> dict[
        str, tuple[tuple[float, float], Callable[[Axes], Axes]]]:
    by = score if score in METHODS else "original_memo"
    size = distribution_size(scores.sizes[CLASS])
    return {
        "box": (size, lambda ax: score_distributions(scores, score, kind="box", sort_by=sort_by, scale=scale, ax=ax)),
        "violin": (size, lambda ax: score_distributions(scores, score, kind="violin", sort_by=sort_by, scale=scale,
                                                        ax=ax)),
        "scatter": ((7.0, 5.5), lambda ax: memorization_vs_influence(scores, highlight_class=class_label, scale=scale,
                                                                     ax=ax)),
        "agreement": ((7.0, 6.0), lambda ax: method_agreement(scores, ax=ax)),
        "top-k": (table_size(k), lambda ax: top_k_table(scores, class_label, k=k, by=by, ax=ax)),
    }


def write_score_figures(
    source: str | os.PathLike[str] | xr.Dataset,
    output: str | os.PathLike[str],
    *,
    kinds: Sequence[str] | None = None,
    class_label: Any = None,
    score: str = "original_memo",
    k: int = 10,
    scale: str = "auto",
    sort_by: str | None = "mean",
    fmt: str | None = None,
    overwrite: bool = False,
    allow_pickle: bool = False,
    show_progress: bool | None = None,
    dpi: int = 150,
    storage_options: StorageOptions = None,
) -> list[Path]:
    """Write scores figures to one file or into a new folder (``memoxr plot``).

    ``source`` is a scores store (``memoxr calculate --output``, any
    ``--alpha``/``--beta``), a seed-layout scores ``.npz`` (needs
    ``allow_pickle``), an influence store or FZ ``.npz`` (scored with
    :func:`memoxr.influence_scores` defaults), or a scores Dataset. The scores
    are computed once, then each kind in :data:`KINDS` is drawn: ``"box"``
    and ``"violin"`` are :func:`score_distributions` of ``score`` (with
    ``scale`` and ``sort_by``), ``"scatter"`` :func:`memorization_vs_influence`
    highlighting ``class_label`` (with ``scale``), ``"agreement"``
    :func:`method_agreement`, ``"top-k"`` :func:`top_k_table` of
    ``class_label`` ranked by ``score`` (by ``original_memo`` when ``score`` is
    not one of the five methods). ``class_label`` defaults to the first class.

    ``output`` ending in ``.png``, ``.svg`` or ``.pdf`` is one file, written
    in that format; it takes exactly one kind. Any other ``output`` is a
    folder holding ``<stem>.<fmt>`` per kind (stems in :data:`KINDS`;
    default kinds :data:`DEFAULT_KINDS`, default format png). Either is
    complete or absent: written beside ``output`` and moved into place at the
    end; an existing one is replaced only with ``overwrite``.

    Returns
    -------
    list of pathlib.Path
        The files written, in the order of ``kinds``.

    Raises
    ------
    MemoxrInputError
        Unknown kind, format, score, class, scale or sort; a file ``output``
        with other than one kind or a disagreeing ``fmt``; a URL ``output``.

    Examples
    --------
    >>> import tempfile, memoxr
    >>> folder = tempfile.mkdtemp()
    >>> [path.name for path in write_score_figures(memoxr.sample_path(), f"{folder}/top.png", kinds=["top-k"])]
    ['top.png']
    """
    from ..io.location import is_url
    from ..io.storage import atomic_output

    if is_url(output):
        raise MemoxrInputError(
            f"output: figures are written to a local file or folder; received the URL {str(output)!r} "
            "(write locally, then upload)"
        )
    one_file, kinds, fmt = output_plan(output, kinds, fmt)
    check_choice("scale", scale, SCALES)
    check_choice("sort", sort_by, (*SORTS, None))
    check_k(k)
    if isinstance(source, xr.Dataset):
        scores = source
    else:
        from ..workflows import load_scores

        scores = load_scores(Location.of(source, storage_options), allow_pickle=allow_pickle)
    check_scores_dataset(scores)
    check_score_name(scores, score, argument="score")
    if class_label is None:
        class_label = scores[CLASS].values.tolist()[0]
    class_position(scores, class_label, "class")

    target = Path(output)
    names = [target] if one_file else [target / f"{KINDS[kind]}.{fmt}" for kind in kinds]
    with atomic_output(target, overwrite=overwrite) as tmp:
        with deprecated_show_progress(show_progress, "write_figures"):
            (scores,) = compute(scores)
        # Both were checked against SCALES and SORTS above.
        drawers = _drawers(scores, class_label, score, k, cast(Scale, scale), cast("SortBy | None", sort_by))
        if not one_file:
            tmp.mkdir()
        for kind, name in zip(kinds, names, strict=True):
            size, draw = drawers[kind]
            # A bare Figure: no pyplot state, no GUI backend, nothing left open.
            figure = Figure(figsize=size, layout="constrained")
            draw(figure.add_subplot())
            figure.savefig(tmp if one_file else tmp / name.name, format=fmt, dpi=dpi)
    return names
