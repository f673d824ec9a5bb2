"""A plan never freezes a PyTorch augmentation, even one hidden in a preset class.

torchvision's classification reference wraps its augmentation in a preset
class (``ClassificationPresetTrain``) that the dataset calls as one
transform. The script (pipelines/torch_augment_preset.py) reads an
ImageFolder slowly enough that a sample cache is worth planning, and writes
a digest of each epoch's batches. The plan derived from its profile is
applied with ``plumber run --plan``: with the training preset the cache goes
before the preset and every epoch still sees other crops; with the
deterministic evaluation preset the cache goes after it.
"""

from __future__ import annotations

import pytest
from conftest import PIPELINES

from plumber.analyzers.diagnose import diagnose_all
from plumber.records.profile import Profile
from plumber.tuner.derive import derive_plan

pytestmark = pytest.mark.slow

SCRIPT = PIPELINES / "torch_augment_preset.py"


@pytest.fixture(autouse=True)
def _needs_torchvision():
    pytest.importorskip("torch")
    pytest.importorskip("torchvision")


def profiled_and_planned(plumber_cli, tmp_path, preset):
    """Profile the script, derive its plan, save it; the pipeline and the cache settings."""
    run = plumber_cli("profile", "-o", "out", "--cpu-probe", "0", SCRIPT, "--",
                      "--preset", preset, "--digests", "profiled.txt")
    assert run.returncode == 0, run.stderr[-3000:]
    profile = Profile.load(run.profile_path)
    plan = derive_plan(profile, diagnose_all(profile), SCRIPT)
    plan.save(tmp_path / "plan.json")
    (pipeline,) = profile.pipelines
    caches = [s for p in plan.pipelines for s in p.settings if s.cache]
    return pipeline, caches


def epochs_under_plan(plumber_cli, tmp_path, preset):
    """Run the script with the saved plan: its stderr and each epoch's digest."""
    run = plumber_cli("run", "--plan", tmp_path / "plan.json", SCRIPT, "--",
                      "--preset", preset, "--digests", "planned.txt")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "dataset CachedDataset, 3 epochs" in run.stdout
    return run.stderr, (tmp_path / "planned.txt").read_text().split()


def test_a_preset_class_with_random_crops_gets_no_cache_after_it(plumber_cli, tmp_path):
    pipeline, caches = profiled_and_planned(plumber_cli, tmp_path, "train")
    preset = pipeline.stage("transform_0")
    assert preset.op == "ClassificationPresetTrain"
    assert preset.knobs["random"] is True
    assert preset.knobs["note"] == (
        "random: ClassificationPresetTrain > Compose > RandomResizedCrop: a random transform")
    assert "random" not in pipeline.stage("fetch").knobs
    assert [s.stage_id for s in caches] == ["fetch"]
    stderr, digests = epochs_under_plan(plumber_cli, tmp_path, "train")
    assert "plan applied at fetch of the DataLoader" in stderr and "cache (memory" in stderr
    assert len(digests) == 3 and len(set(digests)) == 3, digests


def test_a_deterministic_preset_is_cached_after_it(plumber_cli, tmp_path):
    pipeline, caches = profiled_and_planned(plumber_cli, tmp_path, "eval")
    preset = pipeline.stage("transform_0")
    assert preset.op == "ClassificationPresetEval" and "random" not in preset.knobs
    assert preset.knobs["note"].startswith(
        "deterministic: no random call found in ClassificationPresetEval")
    assert [s.stage_id for s in caches] == ["transform_0"]
    stderr, digests = epochs_under_plan(plumber_cli, tmp_path, "eval")
    assert "plan applied at transform_0 of the DataLoader" in stderr
    profiled = (tmp_path / "profiled.txt").read_text().split()
    assert digests == profiled and len(set(digests)) == 1
