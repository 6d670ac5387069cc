"""``reproduce``: every stage, then tables, figures and report; ``load``: read a finished OUT_DIR."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import xarray as xr

from ..errors import MemoxrInputError, OutputExistsError
from . import stages as st
from .settings import Settings, make_settings
from .tables import TABLE_FILES, Tables, compute_tables

SETTINGS_FILE = "settings.json"
REPORT_FILE = "report.md"
#: Everything ``reproduce`` writes in OUT_DIR (``--overwrite`` removes these, and only these).
OWN_ENTRIES = (SETTINGS_FILE, REPORT_FILE, "fz", "recordings", "tables", "figures", *(f"{s}.zarr" for s in st.STAGES))


@dataclass
class Reproduction:
    """A reproduction's stage stores (in memory), tables and where they are."""

    out_dir: Path
    settings: Settings
    stages: dict[str, xr.Dataset]
    tables: Tables
    written: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def _saved_settings(path: Path) -> Settings:
    """The settings a previous run saved, or one clear error when the file is not one reproduce wrote."""
    try:
        return Settings.from_json(st._read_json(path))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # JSONDecodeError is a ValueError
        raise MemoxrInputError(
            f"OUT_DIR {str(path.parent)!r}: {path.name} is not one `memoxr reproduce` wrote "
            f"({type(exc).__name__}: {exc}); pass --overwrite to start again, or choose another OUT_DIR"
        ) from exc


def _check_out_dir(out: Path, settings: Settings, overwrite: bool) -> None:
    """Create OUT_DIR, resume it, or refuse it (foreign content or other settings without ``overwrite``)."""
    if out.exists() and not out.is_dir():
        raise MemoxrInputError(f"OUT_DIR {str(out)!r} is a file; expected a folder (new, or one reproduce wrote)")
    if not out.exists():
        if not out.parent.is_dir():
            raise MemoxrInputError(f"OUT_DIR {str(out)!r}: parent folder {str(out.parent)!r} does not exist")
        out.mkdir()
    saved_path = out / SETTINGS_FILE
    if overwrite:
        for name in OWN_ENTRIES:
            target = out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
    elif saved_path.is_file():
        saved = _saved_settings(saved_path)
        if saved != settings:
            differ = {k: (v, getattr(settings, k)) for k, v in saved.to_json().items() if getattr(settings, k) != v}
            raise MemoxrInputError(
                f"OUT_DIR {str(out)!r} holds a reproduction with other settings (saved -> requested: "
                + ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in differ.items())
                + "); expected the same settings to resume it: pass --overwrite to start again, or another OUT_DIR"
            )
        return
    elif any(out.iterdir()):
        raise OutputExistsError(str(out))
    st._write_json(saved_path, settings.to_json())


def reproduce(
    out_dir: str | os.PathLike[str],
    *,
    quick: bool = False,
    trials: int | None = None,
    seeds: int | None = None,
    epochs: int | None = None,
    architectures: tuple[str, ...] | None = None,
    overwrite: bool = False,
    figures: bool = True,
    echo: Callable[[str], None] | None = None,
) -> Reproduction:
    """Run the paper's experiments on digits into ``out_dir`` (resuming what is already there).

    Stages (see :mod:`memoxr.reproduce.stages`): FZ memorization from
    ``trials`` models per architecture on random 70% subsets; the dynamics of
    full-data runs (every architecture x ``seeds``); mislabel detection at 1, 2,
    5 and 10% noise; planted duplicates. Then Tables 1–4 and the cost table
    (CSV in ``out_dir/tables``), figures (PNG in ``out_dir/figures``, needs
    matplotlib) and ``report.md``.

    Parameters
    ----------
    out_dir : path
        A new folder, or one an earlier call with the same settings wrote
        (complete stages are reused, interrupted ones resume). A folder with
        other content, or other settings, is refused unless ``overwrite``
        (which removes only what ``reproduce`` writes).
    quick : bool
        Fewer models, epochs and architectures (:data:`memoxr.reproduce.settings.QUICK`).
    trials, seeds, epochs, architectures : optional
        Replace the defaults of the full run or of ``quick``.
    figures : bool
        Also write the PNG figures.
    echo : callable, optional
        Receives one line per step (the CLI passes ``click.echo``); default silent.

    Examples
    --------
    The smallest run (one architecture, 4 models, 3 epochs; a few seconds):

    >>> import tempfile, warnings
    >>> folder = tempfile.mkdtemp()
    >>> with warnings.catch_warnings():  # 4 models leave some samples in every subset: NaN rows, warned
    ...     warnings.simplefilter("ignore")
    ...     result = reproduce(f"{folder}/repro", quick=True, trials=4, seeds=1, epochs=3,
    ...                        architectures=("logreg",), figures=False)
    >>> sorted(result.tables.table2["metric"].unique())
    ['auprc', 'auroc', 'fpr_at_95_tpr', 'precision_at_k']
    >>> [path.name for path in result.written][:2]
    ['table1_fz_agreement.csv', 'table2_mislabel.csv']
    """
    say = echo or (lambda message: None)
    settings = make_settings(quick=quick, trials=trials, seeds=seeds, epochs=epochs, architectures=architectures)
    out = Path(out_dir)
    _check_out_dir(out, settings, overwrite)
    start = time.perf_counter()
    say(f"reproduce into {out}: {'quick' if settings.quick else 'full'} run, {settings.trials} FZ models x "
        f"{len(settings.architectures)} architectures, {settings.seeds} seeds, {settings.epochs} epochs")
    from .training import digits_split

    split = digits_split()
    stages = {
        "fz": st.run_stage(out, "fz", lambda: st.build_fz(out, settings, split, say), say),
        "dynamics": st.run_stage(out, "dynamics", lambda: st.build_dynamics(out, settings, split, say), say),
        "mislabel": st.run_stage(out, "mislabel", lambda: st.build_mislabel(out, settings, say), say),
    }
    stages["duplicates"] = st.run_stage(
        out, "duplicates", lambda: st.build_duplicates(out, settings, split, stages["fz"], say), say
    )
    return _finish(out, settings, stages, figures, say, start)


def _finish(out: Path, settings: Settings, stages: dict[str, xr.Dataset], figures: bool,
            say: Callable[[str], None], start: float) -> Reproduction:
    from .report import render, write_figures, write_report

    tables = compute_tables(stages, settings)
    written = tables.save(out / "tables")
    say(f"[tables] {len(written)} CSV files in {out / 'tables'}")
    if figures:
        try:
            written += write_figures(stages, tables, settings, out / "figures")
            say(f"[figures] PNG files in {out / 'figures'}")
        except ImportError as exc:  # matplotlib is an optional extra: the tables and report still get written
            say(f"[figures] skipped: {exc}")
    seconds = time.perf_counter() - start
    written.append(write_report(render(stages, tables, settings, seconds), out / REPORT_FILE))
    say(f"[report] {out / REPORT_FILE} ({seconds:.1f} s)")
    return Reproduction(out, settings, stages, tables, written, seconds)


def load(out_dir: str | os.PathLike[str]) -> Reproduction:
    """A finished reproduction: its stage stores (loaded) and tables recomputed from them.

    Raises :class:`memoxr.MemoxrInputError` naming the missing stages if ``out_dir``
    is not a complete reproduction.

    Examples
    --------
    >>> import tempfile
    >>> load(tempfile.mkdtemp())
    Traceback (most recent call last):
    memoxr.errors.MemoxrInputError: OUT_DIR '...': no settings.json; expected a folder `memoxr reproduce` wrote
    """
    out = Path(out_dir)
    if not (out / SETTINGS_FILE).is_file():
        raise MemoxrInputError(f"OUT_DIR {str(out)!r}: no {SETTINGS_FILE}; expected a folder `memoxr reproduce` wrote")
    settings = _saved_settings(out / SETTINGS_FILE)
    stages = {name: st.open_stage(out, name) for name in st.STAGES}
    missing = [name for name, ds in stages.items() if ds is None]
    if missing:
        raise MemoxrInputError(
            f"OUT_DIR {str(out)!r}: stages {missing} are not complete; expected all of {list(st.STAGES)} "
            "(rerun `memoxr reproduce` on it to finish them)"
        )
    tables = compute_tables(stages, settings)  # type: ignore[arg-type]
    return Reproduction(out, settings, stages, tables, [out / "tables" / f for f in TABLE_FILES.values()])  # type: ignore[arg-type]
