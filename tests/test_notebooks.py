"""Every notebook in notebooks/ runs top to bottom without error, and is committed with its outputs.

The committed outputs must be what a fresh run prints: text outputs (``text/plain``
and streams) are compared after timings, paths, addresses and memory addresses
are masked, numbers within a relative 1e-3; images only need to be there. A cell tagged
``timings`` (wall times) is compared by its layout only, not its numbers.

To refresh the committed outputs after changing a notebook or the library::

    python tests/test_notebooks.py                 # every notebook
    python tests/test_notebooks.py notebooks/x.ipynb
"""

from __future__ import annotations

import json
import math
import re
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
TIMEOUT = 300

# Masked before comparing: what legitimately differs between two runs.
_MASKS = [
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<address>"),  # memory addresses in reprs
    (re.compile(r"\b(?:tcp|tls|inproc)://\S+"), "<scheduler>"),
    (re.compile(r"\bhttps?://(?:127\.0\.0\.1|localhost|\[::1\]|[\d.]+):\d+\S*"), "<url>"),
    (re.compile(r"\b(?:127\.0\.0\.1|localhost):\d+"), "<host:port>"),
    (re.compile(r"(?<![\w.])(?:/[\w.+@-]+)+/?"), "<path>"),  # absolute paths (temporary folders)
    # durations: "0.83 s", "12 ms", "1.2 seconds", "in 3.4s"
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:s|ms|µs|us|sec|seconds|minutes|min)\b"), "<time>"),
]
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
_RTOL = 1e-3


def kernel_spec(folder: Path) -> str:
    """A kernel spec for this interpreter under ``folder``, so notebooks run in this environment."""
    spec = folder / "kernels" / "memoxr-test"
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "memoxr-test", "language": "python"}))
    return "memoxr-test"


def execute(path: Path, workdir: Path) -> nbformat.NotebookNode:
    """Run the notebook at ``path`` with ``workdir`` as its current folder; return the executed copy."""
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=TIMEOUT, kernel_name="memoxr-test", resources={"metadata": {"path": str(workdir)}}
    ).execute()
    return notebook


def _text(value) -> str:
    return value if isinstance(value, str) else "".join(value)


def normalized(text: str) -> tuple[str, list[float]]:
    """``text`` with varying parts masked and numbers taken out: (skeleton, numbers)."""
    for pattern, mask in _MASKS:
        text = pattern.sub(mask, text)
    numbers = [float(n) for n in _NUMBER.findall(text)]
    skeleton = _NUMBER.sub("#", text)
    return " ".join(skeleton.split()), numbers


def comparable(output: dict) -> tuple[str, str, tuple[str, list[float]] | None]:
    """What must agree between two runs for one output: its kind, and its text, normalized."""
    kind = output["output_type"]
    if kind == "stream":
        return kind, output["name"], normalized(_text(output["text"]))
    if kind in ("execute_result", "display_data"):
        data = output.get("data", {})
        mimes = ",".join(sorted(m for m in data if m.startswith("image/") or m == "text/plain"))
        plain = data.get("text/plain")
        # An image's alt text ("<Figure size 640x480 with 1 Axes>") is compared like any text.
        return kind, mimes, normalized(_text(plain)) if plain is not None else None
    return kind, output.get("ename", ""), None


def _numbers_close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=_RTOL, abs_tol=1e-9) for x, y in zip(a, b, strict=True))


def _stream_merged(outputs: list[dict]) -> list[dict]:
    """Consecutive stream outputs of one name joined (how they split depends on timing)."""
    merged: list[dict] = []
    for output in outputs:
        last = merged[-1] if merged else None
        if output["output_type"] == "stream" and last and last["output_type"] == "stream" and last["name"] == output["name"]:
            merged[-1] = {**last, "text": _text(last["text"]) + _text(output["text"])}
        else:
            merged.append(dict(output))
    return merged


def differences(committed: nbformat.NotebookNode, fresh: nbformat.NotebookNode) -> list[str]:
    """Where the committed outputs are missing or differ from a fresh run's, one line each."""
    problems = []
    code = [(c, f) for c, f in zip(committed.cells, fresh.cells, strict=True) if c.cell_type == "code"]
    for number, (old, new) in enumerate(code, 1):
        where = f"code cell {number} ({_text(old.source).strip().splitlines()[0][:60] if old.source.strip() else 'empty'!r})"
        if old.get("execution_count") is None and old.source.strip():
            problems.append(f"{where}: never executed in the committed notebook")
            continue
        a, b = _stream_merged(old.get("outputs", [])), _stream_merged(new.get("outputs", []))
        if len(a) != len(b):
            problems.append(f"{where}: {len(a)} committed outputs, {len(b)} on a fresh run")
            continue
        timings = "timings" in old.get("metadata", {}).get("tags", [])  # wall times: layout only
        for x, y in zip(a, b, strict=True):
            (kind_a, sub_a, text_a), (kind_b, sub_b, text_b) = comparable(x), comparable(y)
            if timings and text_a is not None and text_b is not None:
                text_a, text_b = (text_a[0], []), (text_b[0], [])
            if (kind_a, sub_a) != (kind_b, sub_b):
                problems.append(f"{where}: committed {kind_a} {sub_a}, fresh {kind_b} {sub_b}")
            elif (text_a is None) != (text_b is None) or (
                text_a is not None and (text_a[0] != text_b[0] or not _numbers_close(text_a[1], text_b[1]))
            ):
                problems.append(f"{where}: {kind_a} text differs from a fresh run:\n  committed: {text_a}\n  fresh:     {text_b}")
    return problems


@pytest.fixture
def kernel_name(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return kernel_spec(tmp_path / "jupyter")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_and_its_committed_outputs_are_current(path, kernel_name, tmp_path):
    committed = nbformat.read(path, as_version=4)
    fresh = execute(path, tmp_path)
    errors = [o for cell in fresh.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    problems = differences(committed, fresh)
    assert not problems, (
        f"{path.name}: committed outputs are missing or stale; refresh with `python tests/test_notebooks.py "
        f"{path.relative_to(path.parent.parent)}`:\n" + "\n".join(problems)
    )


def test_there_are_notebooks():
    assert any(p.name == "quickstart.ipynb" for p in NOTEBOOKS)


def test_staleness_check_sees_changed_missing_and_ignores_timings():
    def notebook(*outputs, count=1):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("print(x)", execution_count=count, outputs=list(outputs))]
        return nb

    def stream(text):
        return nbformat.v4.new_output("stream", name="stdout", text=text)

    def result(text, png=False):
        data = {"text/plain": text, **({"image/png": "iVBORw0K"} if png else {})}
        return nbformat.v4.new_output("execute_result", data=data, execution_count=1)

    base = notebook(stream("AUROC 0.9871 on 1797 samples in 1.23 s, /tmp/abc123/x.zarr at 0x7f00aa\n"))
    same = notebook(stream("AUROC 0.98712 on 1797 samples in 4.5 s, /tmp/zz9/x.zarr at 0x7f11bb\n"))
    assert differences(base, same) == []
    assert differences(base, notebook(stream("AUROC 0.9771 on 1797 samples in 1.23 s\n")))  # a number moved
    assert differences(base, notebook(stream("AUPRC 0.9871 on 1797 samples in 1.23 s\n")))  # a word changed
    assert differences(notebook(count=None), notebook(stream("x\n")))  # never executed
    assert differences(notebook(count=1), notebook(stream("x\n")))  # outputs missing
    # Images: present or not; their bytes are not compared.
    assert differences(notebook(result("<Figure>", png=True)), notebook(result("<Figure>", png=True))) == []
    assert differences(notebook(result("<Figure>")), notebook(result("<Figure>", png=True)))
    # A stream split in two on one run and in one piece on the other is the same output.
    assert differences(notebook(stream("a 1\n"), stream("b 2\n")), notebook(stream("a 1\nb 2\n"))) == []


def main(paths: list[str]) -> None:
    """Execute notebooks and save them with their outputs (what the test above compares against)."""
    import os

    targets = [Path(p) for p in paths] or NOTEBOOKS
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["JUPYTER_PATH"] = str(Path(tmp) / "jupyter")
        kernel_spec(Path(tmp) / "jupyter")
        for path in targets:
            work = Path(tmp) / path.stem
            work.mkdir()
            notebook = execute(path, work)
            nbformat.write(notebook, path)
            size = path.stat().st_size / 1024
            print(f"executed {path} ({size:.0f} kB)")


if __name__ == "__main__":
    main(sys.argv[1:])
