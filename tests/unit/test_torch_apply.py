"""Plans applied to DataLoaders: at construction (PlanApplier) and to a built loader (optimize).

The PNG dataset and helpers come from ``test_torch_cache`` (module level there,
so spawned workers can import them).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from test_torch_cache import (  # noqa: E402
    SAMPLES,
    PngFolder,
    Stream,
    augmented,
    deterministic,
    epoch,
    fetches,
    same_batches,
    write_pngs,
)
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler  # noqa: E402
from torchvision import transforms as T  # noqa: E402

import plumber  # noqa: E402
from plumber.records.plan import PipelinePlan, Plan, StageRef, StageSetting  # noqa: E402
from plumber.torch.apply import PlanApplier  # noqa: E402
from plumber.torch.cache import CachedDataset  # noqa: E402

HERE = Path(__file__).name
KINDS = {"workers": "workers", "fetch": "source", "pin_memory": "pin_memory"}


def build(dataset, **options) -> DataLoader:
    return DataLoader(dataset, **options)  # the loader line


LOADER_LINE = next(i for i, line in enumerate(Path(__file__).read_text().splitlines(), 1)
                   if line.endswith("# the loader line"))


def setting(stage_id: str, line: int = LOADER_LINE, occurrence: int = 0, **knobs) -> StageSetting:
    kind = KINDS.get(stage_id, "map")
    return StageSetting(StageRef(HERE, line, kind, occurrence), stage_id, **knobs)


def plan_of(*settings: StageSetting, line: int = LOADER_LINE, occurrence: int = 0) -> Plan:
    root = StageRef(HERE, line, "workers", occurrence)
    return Plan(script=__file__, pipelines=(PipelinePlan(root, settings),))


def collate(samples):
    return torch.stack([s[0] for s in samples]), torch.tensor([s[1] for s in samples])


def no_op_worker_init(worker_id: int) -> None:
    """A worker_init_fn the plan must keep."""


@pytest.fixture(scope="module")
def pngs(tmp_path_factory) -> Path:
    return write_pngs(tmp_path_factory.mktemp("pngs"))


@pytest.fixture
def calls(tmp_path) -> Path:
    folder = tmp_path / "calls"
    folder.mkdir()
    return folder


def test_the_planned_loader_gets_workers_prefetch_and_cache_and_keeps_everything_else(pngs):
    dataset = PngFolder(pngs, augmented())
    sampler, generator = SequentialSampler(dataset), torch.Generator()
    plan = plan_of(setting("workers", parallelism=2, prefetch=3, persistent_workers=True),
                   setting("transform_1", cache="memory"))
    original_init = DataLoader.__init__
    with PlanApplier(plan, Path(__file__)) as applier:
        loader = build(dataset, batch_size=4, sampler=sampler, collate_fn=collate, timeout=30,
                       worker_init_fn=no_op_worker_init, generator=generator)
    assert DataLoader.__init__ is original_init
    assert (loader.num_workers, loader.prefetch_factor, loader.persistent_workers) == (2, 3, True)
    assert isinstance(loader.dataset, CachedDataset) and loader.dataset.upto == 1
    assert loader.dataset.dataset is dataset
    assert loader.sampler is sampler and loader.collate_fn is collate
    assert loader.worker_init_fn is no_op_worker_init and loader.generator is generator
    assert (loader.timeout, loader.batch_size) == (30, 4)
    report = {str(stage): applied.changes for stage, applied in applier.applied.items()}
    assert report[f"workers of the DataLoader at {HERE}:{LOADER_LINE}"] == [
        "num_workers=0 -> num_workers=2", "prefetch_factor=None -> prefetch_factor=3",
        "persistent_workers=False -> persistent_workers=True"]
    assert report[f"transform_1 of the DataLoader at {HERE}:{LOADER_LINE}"][0].startswith(
        "cache (memory: /")
    assert applier.unmatched() == []


def test_the_planned_loader_yields_the_elements_of_the_loader_as_written(pngs):
    plan = plan_of(setting("workers", parallelism=2), setting("transform_1", cache="memory"))
    as_written = epoch(build(PngFolder(pngs, T.Compose(deterministic())), batch_size=5))
    with PlanApplier(plan, Path(__file__)):
        planned = build(PngFolder(pngs, T.Compose(deterministic())), batch_size=5)
    assert planned.num_workers == 2
    assert same_batches(epoch(planned), as_written) and same_batches(epoch(planned), as_written)


def test_only_the_planned_occurrence_at_a_line_is_changed(pngs):
    plan = plan_of(setting("workers", occurrence=1, parallelism=2), occurrence=1)
    with PlanApplier(plan, Path(__file__)):
        loaders = [build(PngFolder(pngs)) for _ in range(3)]
    assert [loader.num_workers for loader in loaders] == [0, 2, 0]


def test_settings_for_loaders_or_stages_the_script_does_not_have_are_reported_unmatched(pngs):
    missing_loader = plan_of(setting("workers", line=1, parallelism=2), line=1)
    renamed = plan_of(setting("workers", parallelism=2), setting("transform_9", cache="memory"),
                      setting("decode", cache="memory"))
    with PlanApplier(missing_loader, Path(__file__)) as applier:
        assert build(PngFolder(pngs)).num_workers == 0
    assert [s.stage_id for s in applier.unmatched()] == ["workers"]
    with PlanApplier(renamed, Path(__file__)) as applier:
        loader = build(PngFolder(pngs, augmented()))
    assert loader.num_workers == 2 and not isinstance(loader.dataset, CachedDataset)
    assert [s.stage_id for s in applier.unmatched()] == ["transform_9", "decode"]


def test_moving_to_no_workers_drops_the_options_torch_refuses_without_workers(pngs):
    plan = plan_of(setting("workers", parallelism=0, prefetch=4))
    with PlanApplier(plan, Path(__file__)) as applier:
        loader = build(PngFolder(pngs), num_workers=2, prefetch_factor=4, persistent_workers=True)
    assert (loader.num_workers, loader.prefetch_factor, loader.persistent_workers) == (0, None,
                                                                                       False)
    (applied,) = applier.applied.values()
    assert applied.changes == [
        "num_workers=2 -> num_workers=0",
        "prefetch 4 not set: prefetch_factor needs num_workers > 0",
        "prefetch_factor=4 -> prefetch_factor=None",
        "persistent_workers=True -> persistent_workers=False",
    ]


def test_parallelism_one_keeps_a_loader_without_workers_in_the_main_process(pngs):
    plan = plan_of(setting("workers", parallelism=1, prefetch=-1, threads=2))
    with PlanApplier(plan, Path(__file__)) as applier:
        assert build(PngFolder(pngs)).num_workers == 0
    (applied,) = applier.applied.values()
    assert applied.changes[0] == "threads ignored: a DataLoader has no such setting at workers"


def test_a_cache_on_an_iterable_dataset_is_not_placed_and_the_loader_still_builds():
    plan = plan_of(setting("fetch", cache="memory"))
    with PlanApplier(plan, Path(__file__)) as applier:
        loader = build(Stream(), batch_size=None)
    assert list(loader) == [0, 1, 2]
    (applied,) = applier.applied.values()
    assert applied.changes[0].startswith("cache not placed: CachedDataset caches map-style")


def test_optimize_rebuilds_a_loader_with_the_plan_and_the_same_elements(pngs, calls):
    original = DataLoader(PngFolder(pngs, T.Compose(deterministic()), calls), batch_size=4,
                          collate_fn=collate, drop_last=True)
    plan = plan_of(setting("workers", parallelism=2), setting("transform_1", cache="memory"))
    tuned = plumber.optimize(original, plan)
    assert tuned is not original and original.num_workers == 0
    assert tuned.num_workers == 2 and tuned.dataset.upto == 1
    assert (tuned.batch_size, tuned.drop_last, tuned.collate_fn) == (4, True, collate)
    expected = epoch(DataLoader(PngFolder(pngs, T.Compose(deterministic())), batch_size=4,
                                collate_fn=collate, drop_last=True))
    assert same_batches(epoch(tuned), expected) and same_batches(epoch(tuned), expected)
    assert fetches(calls) == {i: 1 for i in range(SAMPLES)}


def test_optimize_keeps_a_shuffled_loaders_elements(pngs):
    original = DataLoader(PngFolder(pngs), batch_size=None, shuffle=True)
    tuned = plumber.optimize(original, plan_of(setting("workers", parallelism=2)))
    assert tuned.batch_size is None and tuned.sampler is original.sampler
    assert sorted(label for _, label in tuned) == list(range(SAMPLES))


def test_optimize_keeps_an_explicit_batch_sampler_and_reads_a_plan_file(pngs, tmp_path):
    dataset = PngFolder(pngs, T.Compose(deterministic()))
    batches = BatchSampler(SequentialSampler(range(SAMPLES)), 5, drop_last=False)
    original = DataLoader(dataset, batch_sampler=batches)
    path = plan_of(setting("workers", parallelism=2)).save(tmp_path / "plan.json")
    tuned = plumber.optimize(original, str(path))
    assert tuned.batch_sampler is batches and tuned.num_workers == 2
    assert same_batches(epoch(tuned), epoch(original))


def test_optimize_with_spawned_persistent_workers_computes_the_cached_part_once(pngs, calls):
    """Same worker count as written, so the first epoch draws the same random numbers.

    Persistent workers are seeded once, so later epochs draw other (still random) ones.
    """
    original = DataLoader(PngFolder(pngs, augmented(), calls), batch_size=4, num_workers=2,
                          multiprocessing_context="spawn")
    plan = plan_of(setting("workers", parallelism=2, persistent_workers=True),
                   setting("transform_3", cache="memory"))
    tuned = plumber.optimize(original, plan)
    assert tuned.persistent_workers and tuned.multiprocessing_context is not None
    as_written = [epoch(original, seed) for seed in (5, 6)]
    calls_as_written = sum(fetches(calls).values())
    first, second = epoch(tuned, 5), epoch(tuned, 6)
    assert same_batches(first, as_written[0]) and not same_batches(second, first)
    assert [labels for _, labels in second] == [labels for _, labels in as_written[1]]
    assert sum(fetches(calls).values()) == calls_as_written + SAMPLES


def test_optimize_warns_about_stages_the_loader_does_not_have(pngs):
    original = DataLoader(PngFolder(pngs))
    with pytest.warns(UserWarning, match=r"plan stage not found.*\(transform_0\)"):
        tuned = plumber.optimize(original, plan_of(setting("transform_0", cache="memory")))
    assert not isinstance(tuned.dataset, CachedDataset)


def test_optimize_refuses_what_it_cannot_rebuild_with_clear_messages(pngs):
    from plumber.tuner.loader import optimize_loader

    loader = DataLoader(PngFolder(pngs))
    with pytest.raises(TypeError, match="needs a plan"):
        optimize_loader(loader, None)
    two = Plan(script=__file__, pipelines=plan_of(setting("workers")).pipelines * 2)
    with pytest.raises(ValueError, match="exactly one DataLoader"):
        plumber.optimize(loader, two)

    class Custom(DataLoader):
        pass

    with pytest.raises(TypeError, match="subclass"):
        plumber.optimize(Custom(PngFolder(pngs)), plan_of(setting("workers")))


def test_the_plan_modules_import_without_torch():
    code = ("import sys; import plumber.commands.run, plumber.torch.apply, "
            "plumber.torch.settings, plumber.tuner.loader, plumber.tuner.optimize; "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.strip() == "False", result.stderr
