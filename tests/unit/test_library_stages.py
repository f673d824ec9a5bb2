"""Stages a library built (Keras's ``image_dataset_from_directory``, torchvision, ...).

Such a stage is attributed to the user's line that called the library, and
that line has no argument for the stage's knobs. The location names the
library function (``SourceLocation.built_by``), and every edit plumber words
for the stage says the knob lives inside the library and that ``plumber run
--plan`` applies it, instead of an argument edit the user cannot make.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path

import pytest
from synthetic_profiles import make_profile, stage

from plumber.analyzers.diagnose import diagnose
from plumber.analyzers.edits import setting_edits, stage_edits
from plumber.measure import callsite
from plumber.records.plan import StageRef, StageSetting
from plumber.records.profile import Profile, SourceLocation

KERAS_BUILDER = "keras.src.utils.image_dataset_utils.image_dataset_from_directory"

LIBRARY_SOURCE = '''
from plumber.measure.callsite import user_callsite


def make_stage():
    """Where a framework's stage constructor asks for the user's line."""
    return user_callsite(skip=1)


def build_dataset():
    """A library function that builds a stage for its caller."""
    return make_stage()
'''


def _load(folder: Path, module_name: str):
    path = folder / f"{module_name.replace('.', '_')}.py"
    path.write_text(LIBRARY_SOURCE)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def installed(tmp_path, monkeypatch) -> Path:
    """A folder that counts as site-packages: code there is a library's, never the user's."""
    folder = tmp_path / "site-packages"
    folder.mkdir()
    monkeypatch.setattr(callsite, "_installed_dirs", lambda: (str(folder) + os.sep,))
    return folder


def test_a_stage_a_library_function_built_names_that_function_and_the_users_line(installed):
    library = _load(installed, "imagelib.datasets")
    location = library.build_dataset()
    assert location is not None
    assert Path(location.file).name == Path(__file__).name
    assert location.function.startswith("test_a_stage_a_library_function_built")
    assert location.built_by == "imagelib.datasets.build_dataset"


def test_a_framework_stage_call_at_the_users_line_names_no_library(installed):
    framework = _load(installed, "torch.utils.data.fake_stage_api")
    location = framework.build_dataset()
    assert location is not None and Path(location.file).name == Path(__file__).name
    assert location.built_by == ""


def test_a_location_built_by_a_library_reads_with_the_library_function():
    location = SourceLocation("train.py", 36, built_by=KERAS_BUILDER)
    assert location.builder == "keras image_dataset_from_directory"
    assert str(location) == "train.py:36 via keras image_dataset_from_directory"
    assert str(SourceLocation("train.py", 36)) == "train.py:36"


def _keras_map_profile(built_by: str) -> Profile:
    """A map held to one call on 2 cores (the bottleneck), built at train.py:12."""
    profile = make_profile(
        stage("source-0", "source", 1600, 0.01, op="Range"),
        stage("map-0", "map", 1600, 10.0, knobs={"parallelism": 1}, line=12),
        stage("batch-0", "batch", 100, 0.05, knobs={"batch_size": 16}),
        stage("prefetch-0", "prefetch", 100, 0.005, knobs={"buffer_size": 2}),
        wait_s=10.0,
        step_s=0.1,
    )
    (pipeline,) = profile.pipelines
    stages = tuple(
        dataclasses.replace(s, source=dataclasses.replace(s.source, built_by=built_by))
        if s.source is not None else s
        for s in pipeline.stages)
    return dataclasses.replace(profile, pipelines=(dataclasses.replace(pipeline, stages=stages),))


def test_the_builder_survives_a_saved_profile_and_old_profiles_read_without_it(tmp_path):
    profile = _keras_map_profile(KERAS_BUILDER)
    loaded = Profile.load(profile.save(tmp_path / "profile.json"))
    assert loaded.pipelines[0].stage("map-0").source.built_by == KERAS_BUILDER
    old = profile.to_json().replace(f', "built_by": "{KERAS_BUILDER}"', "")
    old = old.replace(f',\n      "built_by": "{KERAS_BUILDER}"', "")
    assert "built_by" not in old
    (tmp_path / "old.json").write_text(old)
    assert Profile.load(tmp_path / "old.json").pipelines[0].stage("map-0").source.built_by == ""


def _setting(**changes) -> StageSetting:
    return StageSetting(stage=StageRef("train.py", 12, "map"), stage_id="map-0", **changes)


def test_a_library_stage_gets_no_argument_edit_but_says_where_the_knob_lives():
    (edit,) = setting_edits(_setting(parallelism=2, cache="memory"), {"parallelism": -1},
                            built_by=KERAS_BUILDER)
    assert edit.old == ""
    assert edit.new == (
        "num_parallel_calls=2, a cache (memory) after it for the map that keras "
        "image_dataset_from_directory builds (no argument at this line sets it; plumber tune "
        "plans it, plumber run --plan applies it)")


def test_a_library_loaders_workers_are_not_an_argument_at_the_line_either():
    setting = StageSetting(stage=StageRef("train.py", 40, "workers"), stage_id="workers",
                           parallelism=2, persistent_workers=True)
    (edit,) = setting_edits(setting, {"num_workers": 0}, loader=True,
                            built_by="lightning.pytorch.core.datamodule.train_dataloader")
    assert edit.old == "" and "num_workers=2, persistent_workers=True" in edit.new
    assert "that lightning train_dataloader builds" in edit.new


def test_stage_edits_read_the_builder_from_the_profiled_stage():
    setting = _setting(parallelism=2)
    library = _keras_map_profile(KERAS_BUILDER).pipelines[0].stage("map-0")
    written = _keras_map_profile("").pipelines[0].stage("map-0")
    assert "image_dataset_from_directory builds" in str(stage_edits(setting, library)[0])
    assert [str(e) for e in stage_edits(setting, written)] == [
        "num_parallel_calls=1 -> num_parallel_calls=2"]
    assert [str(e) for e in stage_edits(setting, None)] == [
        "num_parallel_calls=(as written) -> num_parallel_calls=2"]


def test_the_profiles_recommendation_for_a_library_stage_is_no_argument_edit():
    diagnosis = diagnose(_keras_map_profile(KERAS_BUILDER))
    assert diagnosis.bottleneck_stage == "map-0"
    assert "map-0 (map at train.py:12 via keras image_dataset_from_directory)" in diagnosis.summary
    best = diagnosis.recommendations[0]
    assert best.old == "keras image_dataset_from_directory(...)"
    assert best.new.startswith("num_parallel_calls=2 inside it (no argument at this line")
