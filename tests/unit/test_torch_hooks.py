"""DataLoader hooks in this process: what they record, the bounds, nothing left patched."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from torch.utils.data import DataLoader, Dataset  # noqa: E402
from torch.utils.data import dataloader as dataloader_module  # noqa: E402
from torch.utils.data._utils import pin_memory as pin_memory_module  # noqa: E402
from torchvision.transforms import Compose  # noqa: E402

from plumber.measure.runbounds import BoundReached, RunBounds  # noqa: E402
from plumber.torch.hooks import TorchHooks  # noqa: E402


def scale(x):
    return x * 2.0


class Squares(Dataset):
    def __init__(self, n: int = 16) -> None:
        self.n = n
        self.transform = Compose([torch.as_tensor, scale])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        return self.transform(float(index * index))


def patched_attributes():
    return {
        "init": dataloader_module.DataLoader.__dict__["__init__"],
        "get_iterator": dataloader_module.DataLoader.__dict__["_get_iterator"],
        "next": dataloader_module._BaseDataLoaderIter.__dict__["__next__"],
        "pin": pin_memory_module.__dict__["pin_memory"],
        "create_fetcher": dataloader_module._DatasetKind.__dict__["create_fetcher"],
    }


def test_a_main_process_loader_is_recorded_with_its_source_and_chain():
    with TorchHooks() as hooks:
        loader = DataLoader(Squares(), batch_size=4)
        for _ in range(2):
            batches = [batch for batch in loader]
    assert len(batches) == 4
    (pipeline,) = hooks.pipelines()
    assert [s.id for s in pipeline.stages] == [
        "workers", "fetch", "transform_0", "transform_1", "collate"]
    assert pipeline.stage("transform_1").op == "scale"
    assert pipeline.stage("fetch").stats.elements == 32
    assert pipeline.stage("workers").stats.elements == 8
    assert pipeline.stage("workers").knobs["start_method"] == "main"
    assert pipeline.stage("workers").knobs["cardinality"] == 16
    assert pipeline.consumer.steps == 8
    assert pipeline.element_spec == "Tensor[4] float32"
    source = pipeline.stage("workers").source
    assert source.file == __file__ and source.function.startswith("test_a_main")


def test_nothing_stays_patched_after_the_hooks_exit():
    before = patched_attributes()
    dataset = Squares()
    transforms = dataset.transform.transforms

    def user_init(worker_id: int) -> None:
        pass

    loader = DataLoader(dataset, batch_size=8, num_workers=1, worker_init_fn=user_init)
    with TorchHooks():
        list(DataLoader(dataset, batch_size=8))
        list(loader)
        assert patched_attributes()["next"] is not before["next"]
    assert patched_attributes() == before
    assert dataset.transform.transforms is transforms
    assert loader.worker_init_fn is user_init


def test_worker_statistics_come_back_from_the_worker_processes():
    with TorchHooks() as hooks:
        list(DataLoader(Squares(), batch_size=2, num_workers=2))
    (pipeline,) = hooks.pipelines()
    assert pipeline.stage("fetch").stats.elements == 16
    assert pipeline.stage("workers").stats.elements == 8
    assert sorted(w.worker for w in pipeline.workers) == [0, 1]
    assert all(w.rss_peak_bytes >= w.rss_start_bytes > 0 for w in pipeline.workers)


def test_the_step_bound_stops_the_loop_at_the_next_request():
    seen = 0
    with TorchHooks(RunBounds(steps=3)) as hooks:
        with pytest.raises(BoundReached):
            for _ in DataLoader(Squares(), batch_size=1):
                seen += 1
    assert seen == 3 and hooks.bound_reached == "steps"
    assert hooks.pipelines()[0].consumer.steps == 3


def test_loaders_iterated_outside_the_hooks_are_not_recorded():
    loader = DataLoader(Squares(), batch_size=4)
    with TorchHooks() as hooks:
        pass
    list(loader)
    assert hooks.pipelines() == ()


def test_instrumented_installs_torch_hooks_on_import_and_never_loads_tensorflow():
    code = textwrap.dedent("""
        import sys
        from plumber.capture.session import SessionOptions, instrumented
        meta_path = list(sys.meta_path)
        with instrumented(SessionOptions()) as capture:
            assert capture.hooks.torch is None
            import torch.utils.data
            assert capture.hooks.torch is not None
            list(torch.utils.data.DataLoader(list(range(8)), batch_size=4))
        assert sys.meta_path == meta_path
        print("tensorflow" in sys.modules, len(capture.hooks.torch.pipelines()))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "1"]


def test_pinning_is_timed_as_its_own_stage_when_the_loader_pins(monkeypatch):
    # No accelerator here: make torch believe there is one, with pinning a no-op.
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)
    monkeypatch.setattr(pin_memory_module, "pin_memory", lambda data, device=None: data)
    with TorchHooks() as hooks:
        list(DataLoader(Squares(), batch_size=4, pin_memory=True))
    (pipeline,) = hooks.pipelines()
    assert pipeline.root == "pin_memory"
    pin = pipeline.stage("pin_memory")
    assert pin.inputs == ("workers",) and pin.stats.elements == 4
    assert pipeline.stage("workers").knobs["pin_memory"] is True


def test_a_batch_is_pinned_once_although_pin_memory_recurses_into_its_parts(monkeypatch):
    # torch's pin_memory calls itself for each part of a (images, labels) batch.
    def recursive_pin(data, device=None):
        if isinstance(data, (tuple, list)):
            return type(data)(pin_memory_module.pin_memory(part, device) for part in data)
        return data

    monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)
    monkeypatch.setattr(pin_memory_module, "pin_memory", recursive_pin)
    pairs = [(torch.tensor(float(i)), i % 2) for i in range(16)]
    with TorchHooks() as hooks:
        batches = list(DataLoader(pairs, batch_size=4, pin_memory=True))
    (pipeline,) = hooks.pipelines()
    assert len(batches) == 4
    assert pipeline.stage("pin_memory").stats.elements == 4


def test_each_pass_over_a_loader_is_counted_and_a_break_leaves_it_partial():
    with TorchHooks() as hooks:
        loader = DataLoader(Squares(), batch_size=4)
        for _ in range(2):
            for _batch in loader:
                pass
        for seen, _batch in enumerate(loader, 1):
            if seen == 3:
                break
    (pipeline,) = hooks.pipelines()
    assert [(p.elements, p.complete) for p in pipeline.passes] == [
        (4, True), (4, True), (3, False)]


def test_persistent_workers_reuse_one_iterator_and_still_count_every_pass():
    with TorchHooks() as hooks:
        loader = DataLoader(Squares(), batch_size=4, num_workers=1, persistent_workers=True)
        for _batch in loader:
            break
        for _ in range(2):
            for _batch in loader:
                pass
        del loader
    (pipeline,) = hooks.pipelines()
    assert [(p.elements, p.complete) for p in pipeline.passes] == [
        (1, False), (4, True), (4, True)]
