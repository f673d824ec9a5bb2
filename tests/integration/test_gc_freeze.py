"""A profiled torch script runs with plumber's objects frozen out of garbage collection
from its torch import on; a TensorFlow script with nothing frozen (plumber/capture/gcfreeze.py
says why)."""

from __future__ import annotations

import textwrap

import pytest

pytestmark = pytest.mark.slow


def _frozen_seen(plumber_cli, tmp_path, imports: str) -> tuple[int, int]:
    """The frozen object counts a script run by ``plumber profile`` saw before and after
    ``imports``."""
    seen = tmp_path / "seen.txt"
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(f"""
        import gc
        before = gc.get_freeze_count()
        {imports}
        open({str(seen)!r}, "w").write(f"{{before}} {{gc.get_freeze_count()}}")
    """))
    run = plumber_cli("profile", "-o", "out", "--cpu-probe", "0", script)
    assert run.returncode == 0, run.stderr[-3000:]
    before, after = seen.read_text().split()
    return int(before), int(after)


def test_a_torch_script_runs_with_plumbers_objects_frozen_from_its_torch_import(
    plumber_cli, tmp_path
):
    pytest.importorskip("torch")
    before, after = _frozen_seen(plumber_cli, tmp_path, "import torch")
    assert before == 0 and after > 1000


def test_a_tensorflow_script_runs_with_nothing_frozen(plumber_cli, tmp_path):
    pytest.importorskip("tensorflow")
    before, after = _frozen_seen(plumber_cli, tmp_path, "import tensorflow")
    assert before == 0 and after == 0


def test_the_notebook_api_freezes_nothing(tmp_path):
    torch = pytest.importorskip("torch")
    import gc

    import plumber

    seen = []

    class Watching(torch.utils.data.Dataset):
        def __len__(self):
            return 64

        def __getitem__(self, index):
            seen.append(gc.get_freeze_count())
            return index

    loader = torch.utils.data.DataLoader(Watching(), batch_size=8)
    before = gc.get_freeze_count()
    plumber.profile(loader, cpu_probe=0)
    # the notebook's own objects are the user's: none is frozen while the loader runs
    assert seen and set(seen) == {before}
