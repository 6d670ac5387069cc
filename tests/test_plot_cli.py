"""``memoxr plot`` and write_score_figures: inputs (influence, scores, npz), kinds, formats, file or folder."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import xarray as xr
from click.testing import CliRunner

import memoxr
from memoxr import plot as mp
from memoxr.plot.scores import column_text

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAGIC = {"png": PNG_MAGIC, "svg": b"<?xml", "pdf": b"%PDF"}


def run(*args):
    from memoxr.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_folder_of_the_four_default_pngs(tmp_path, ragged_npz):
    out = tmp_path / "figures"
    result = run("plot", ragged_npz, out, "--class", 3, "--score", "critical_sample_score", "-q")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(mp.FIGURE_FILES)
    for name in mp.FIGURE_FILES:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
        assert f"wrote {out / name}" in result.output
    # Complete or absent: an existing folder is replaced only with --overwrite.
    result = run("plot", ragged_npz, out, "-q")
    assert result.exit_code == 2 and "already exists" in result.output
    assert run("plot", ragged_npz, out, "--overwrite", "-q").exit_code == 0


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_one_file_named_by_its_suffix(tmp_path, ragged_store, fmt):
    out = tmp_path / f"violins.{fmt}"
    result = run("plot", ragged_store, out, "--kind", "violin", "--scale", "symlog", "--sort", "nonzero", "-q")
    assert result.exit_code == 0, result.output
    assert out.is_file() and out.read_bytes()[: len(MAGIC[fmt])] == MAGIC[fmt]
    assert {p.name for p in tmp_path.iterdir()} == {out.name, "ragged.npz", "ragged.zarr"}  # no folder, no partial
    assert result.output.strip() == f"wrote {out}"


def test_folder_in_another_format_with_chosen_kinds(tmp_path, ragged_store):
    out = tmp_path / "figs"
    result = run("plot", ragged_store, out, "--kind", "agreement", "--kind", "box", "--format", "svg", "-q")
    assert result.exit_code == 0, result.output
    assert [line.split("/")[-1] for line in result.output.split()[1::2]] == [
        "method_agreement.svg", "score_distributions.svg"]
    assert sorted(p.name for p in out.iterdir()) == ["method_agreement.svg", "score_distributions.svg"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["figs.png"], "output 'OUT/figs.png' names one png file, so it takes exactly one kind (--kind, one of"
                       " ['box', 'violin', 'scatter', 'agreement', 'top-k']); received none"),
        (["figs.pdf", "--kind", "box", "--kind", "scatter"], "takes exactly one kind"),
        (["figs.png", "--kind", "box", "--format", "svg"], "format is 'svg' but output 'OUT/figs.png' ends in .png"),
        (["figs", "--score", "nope"], "score must be a (class, train_sample) score variable"),
        (["figs", "--class", 42], "class must be one of the store's classes"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, ragged_npz, args, message):
    out, *options = args
    result = run("plot", ragged_npz, tmp_path / out, *options, "-q")
    assert result.exit_code == 2, result.output
    assert message.replace("OUT", str(tmp_path)) in " ".join(result.output.split())
    assert list(tmp_path.iterdir()) == [tmp_path / "ragged.npz"]


def test_scores_store_is_drawn_as_computed(tmp_path, ragged_npz, monkeypatch):
    """Scores from calculate with non-default weights are plotted as stored, not recomputed."""
    store = tmp_path / "scores.zarr"
    assert run("calculate", "--input", ragged_npz, "--output", store, "--alpha", "0.2", "--beta", "0.8",
               "-q").exit_code == 0
    stored = memoxr.workflows.load_scores(store).compute()
    assert stored.attrs["alpha"] == 0.2
    expected = memoxr.top_k(stored, 1, k=1, by="weighted_combination")["weighted_combination"].to_numpy()
    fresh = memoxr.influence_scores(memoxr.open_influence(ragged_npz)).compute()
    default = memoxr.top_k(fresh, 1, k=1, by="weighted_combination")["weighted_combination"].to_numpy()
    assert column_text(expected) != column_text(default)  # the weights show in the table
    monkeypatch.setitem(matplotlib.rcParams, "svg.fonttype", "none")  # text stays text in the svg
    out = tmp_path / "table.svg"
    result = run("plot", store, out, "--kind", "top-k", "--class", 1, "--score", "weighted_combination", "-q")
    assert result.exit_code == 0, result.output
    svg = out.read_text()
    assert f">{column_text(expected)[0]}<" in svg and f">{column_text(default)[0]}<" not in svg
    assert "expected 'memoxr.influence'" not in result.output


def test_seed_layout_scores_npz(tmp_path, ragged_npz):
    seed = tmp_path / "seed_scores.npz"
    assert run("calculate", "--input", ragged_npz, "--output", seed, "-q").exit_code == 0
    result = run("plot", seed, tmp_path / "box.png", "--kind", "box", "--allow-pickle", "-q")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "box.png").read_bytes()[:8] == PNG_MAGIC


def test_a_store_of_another_kind_is_refused(tmp_path):
    xr.Dataset(attrs={"schema": "something.else", "memoxr_complete": True}).to_zarr(tmp_path / "other.zarr")
    result = run("plot", tmp_path / "other.zarr", tmp_path / "figs", "-q")
    assert result.exit_code == 2
    assert "expected 'memoxr.scores' or 'memoxr.influence'" in result.output


def test_missing_input_exits_2(tmp_path):
    result = run("plot", tmp_path / "missing.zarr", tmp_path / "figures", "-q")
    assert result.exit_code == 2 and "does not exist" in result.output


def test_help_states_the_output_rules():
    result = run("plot", "--help")
    text = " ".join(result.output.split())
    assert "ending in .png, .svg or .pdf: that one file" in text and "exactly one --kind" in text
    for option in ("--kind", "--scale", "--sort", "--format", "--class"):
        assert option in text


def test_figures_must_be_local(tmp_path):
    with pytest.raises(memoxr.MemoxrInputError, match="output: figures are written to a local file or folder; "
                       "received the URL 's3://bucket/figs'"):
        mp.write_score_figures(memoxr.sample_path(), "s3://bucket/figs")


def test_write_score_figures_from_a_dataset(tmp_path):
    scores = memoxr.influence_scores(memoxr.open_influence(memoxr.sample_path()))
    written = mp.write_score_figures(scores, tmp_path / "figs", kinds=["violin", "scatter"], fmt="pdf",
                                     sort_by="median", scale="log")
    assert written == [tmp_path / "figs" / "score_violins.pdf", tmp_path / "figs" / "memorization_vs_influence.pdf"]
    assert all(path.read_bytes()[:4] == b"%PDF" for path in written)
