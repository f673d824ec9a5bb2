"""Finding a dataset's transforms, naming them, and telling random ones apart.

The static classification is tested on plain objects and on torchvision's
transforms; the repeat check and both combined on small datasets of PNG
files written to ``tmp_path``, read with PIL as torchvision's ImageFolder
reads them.
"""

from __future__ import annotations

import functools
import itertools
import operator
import random

import numpy as np
import pytest

from plumber.torch.determinism import DETERMINISTIC, RANDOM, UNPROVEN, classify, is_random
from plumber.torch.randomness import decide_randomness
from plumber.torch.repeatability import check_repeatable, same
from plumber.torch.sizes import describe, nbytes_of
from plumber.torch.transforms import find_transforms, transform_op
from plumber.torch.workerside import TimedTransform


class Compose:
    """Stands in for torchvision's Compose, which plumber knows by its module (no torch here)."""

    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


Compose.__module__ = "torchvision.transforms.transforms"


class RandomCrop:
    def __call__(self, x):
        return x


class ColorJitter:
    def __call__(self, x):
        return x


class Normalize:
    def __call__(self, x):
        return x


class Mixup:
    random = True

    def __call__(self, x):
        return x


class Dataset:
    def __init__(self, transform=None, **attributes):
        self.transform = transform
        self.__dict__.update(attributes)


class Subset:
    def __init__(self, dataset):
        self.dataset = dataset


def double(x):
    return 2 * x


def test_compose_on_the_dataset_gives_one_stage_per_callable():
    compose = Compose([RandomCrop(), Normalize()])
    site = find_transforms(Dataset(compose))
    assert site.container is compose
    assert [transform_op(t) for t in site.callables] == ["RandomCrop", "Normalize"]


def test_wrappers_are_looked_through_to_the_wrapped_dataset():
    inner = Dataset(Compose([Normalize()]))
    site = find_transforms(Subset(Subset(inner)))
    assert site.holder is inner and site.attribute == "transform"


def test_a_plain_callable_is_one_transform():
    site = find_transforms(Dataset(double))
    assert site.single and site.callables == (double,)


def test_transforms_attribute_is_used_when_transform_is_absent():
    site = find_transforms(Dataset(None, transforms=[double, Normalize()]))
    assert site.attribute == "transforms" and site.container is None
    assert len(site.callables) == 2


def test_a_dataset_without_transforms_has_no_site():
    assert find_transforms(Dataset(None)) is None
    assert find_transforms(object()) is None


def test_a_cycle_of_dataset_attributes_ends_the_search():
    looped = Subset(None)
    looped.dataset = looped
    assert find_transforms(looped) is None


def test_random_transforms_are_recognised_by_name_or_by_their_own_flag():
    assert is_random(RandomCrop())
    assert is_random(ColorJitter())
    assert is_random(Mixup())
    assert not is_random(Normalize())
    assert not is_random(double)


def test_names_see_through_functions_partials_and_plumbers_wrapper():
    assert transform_op(double) == "double"
    assert transform_op(functools.partial(double)) == "double"
    assert transform_op(TimedTransform(RandomCrop(), "transform_0")) == "RandomCrop"
    assert is_random(TimedTransform(RandomCrop(), "transform_0"))


class FakeImage:
    width, height = 4, 3

    def getbands(self):
        return ("R", "G", "B")


class FakeTensor:
    nbytes = 400
    shape = (10, 10)
    dtype = "torch.float32"


def test_bytes_are_counted_through_containers():
    assert nbytes_of(FakeImage()) == 36
    assert nbytes_of(b"abcd") == 4
    assert nbytes_of([(FakeTensor(), 3), {"x": FakeTensor()}]) == 800
    assert nbytes_of("text") == 0 and nbytes_of(object()) == 0


def test_batches_are_described_in_one_line():
    assert describe((FakeTensor(), [1, 2])) == "(FakeTensor[10, 10] float32, [int, int])"


# -- randomness: what plumber can show from what a transform is ---------------------------


@pytest.fixture
def T():
    """torchvision's transforms (v1)."""
    pytest.importorskip("torch")
    return pytest.importorskip("torchvision.transforms")


@pytest.fixture
def V():
    """torchvision's transforms (v2)."""
    pytest.importorskip("torch")
    return pytest.importorskip("torchvision.transforms.v2")


class ClassificationPresetTrain:
    """torchvision's classification reference: augmentation hidden in a preset class."""

    def __init__(self, T, crop_size, hflip_prob=0.5):
        import torch

        trans = [T.RandomResizedCrop(crop_size), T.RandomHorizontalFlip(hflip_prob)]
        trans += [T.PILToTensor(), T.ConvertImageDtype(torch.float),
                  T.Normalize((0.5, 0.5, 0.5), (0.2, 0.2, 0.2))]
        self.transforms = T.Compose(trans)

    def __call__(self, img):
        return self.transforms(img)


class ClassificationPresetEval:
    def __init__(self, T, size):
        self.transforms = T.Compose([T.Resize(size), T.CenterCrop(size), T.PILToTensor()])

    def __call__(self, img):
        return self.transforms(img)


class OpsInAList:
    def __init__(self, T):
        self.ops = [T.RandomCrop(8), T.ToTensor()]

    def __call__(self, x):
        for op in self.ops:
            x = op(x)
        return x


def apply_to(transform, x):
    return transform(x)


def noisy(x):
    return x + random.random()


def numpy_noisy(x):
    return x + np.random.rand()


def to_tensor(x):
    import torch

    return torch.as_tensor(np.array(x))


def test_a_preset_class_holding_a_random_compose_is_random(T):
    verdict = classify(ClassificationPresetTrain(T, 8))
    assert verdict.kind == RANDOM
    assert verdict.why == (
        "ClassificationPresetTrain > Compose > RandomResizedCrop: a random transform")


def test_a_random_op_in_a_list_attribute_is_found(T):
    assert classify(OpsInAList(T)).why == "OpsInAList > RandomCrop: a random transform"


def test_lambdas_and_partials_wrapping_a_random_op_are_random(T):
    crop = T.RandomCrop(8)
    assert is_random(lambda x: crop(x))
    assert is_random(functools.partial(apply_to, T.RandomCrop(8)))
    assert is_random(T.Lambda(lambda x: x * np.random.rand()))
    default = T.RandomCrop(8)
    assert is_random(lambda x, op=default: op(x))


def test_functions_calling_random_numbers_are_random():
    assert classify(noisy).why == "noisy: calls random"
    assert is_random(numpy_noisy)
    generator = np.random.default_rng(0)
    assert is_random(lambda x: x + generator.integers(3))
    assert is_random(random.random)


def test_user_code_without_random_calls_is_unproven_not_deterministic(T):
    assert classify(to_tensor).kind == UNPROVEN
    assert classify(ClassificationPresetEval(T, 8)).kind == UNPROVEN
    assert classify(double).kind == UNPROVEN


def test_known_torchvision_transforms_and_their_containers_are_deterministic(T, V):
    import torch

    for transform in (T.Compose([T.Resize(8), T.ToTensor(), T.Normalize((0.5,), (0.2,))]),
                      V.Compose([V.ToImage(), V.ToDtype(torch.float32, scale=True)]),
                      torch.nn.Sequential(T.CenterCrop(8), T.Normalize((0.5,), (0.2,))),
                      T.GaussianBlur(3, sigma=2.0)):
        verdict = classify(transform)
        assert (verdict.kind, verdict.evident) == (DETERMINISTIC, True), transform


def test_torchvision_random_transforms_and_sampled_parameters_are_random(T, V):
    for transform in (T.RandomApply([T.ToTensor()]), V.RandomHorizontalFlip(),
                      T.GaussianBlur(3), T.ColorJitter(0.2), V.JPEG((50, 90)),
                      V.Compose([V.ToImage(), V.RandomResizedCrop(8)])):
        assert is_random(transform), transform

    class Jitter(V.Transform):
        def make_params(self, flat_inputs):
            return {"shift": 1}

    class Scale(T.Resize):
        @staticmethod
        def get_params(img):
            return 2

    assert classify(Jitter()).why == "Jitter: samples its parameters (make_params)"
    assert classify(Scale(8)).why == "Scale: samples its parameters (get_params)"


def test_torch_layers_are_unproven_unless_they_draw_random_numbers():
    torch = pytest.importorskip("torch")

    class Smooth(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return self.conv(x)

    assert classify(Smooth()).kind == UNPROVEN
    assert classify(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.Dropout())).why == (
        "Sequential > Dropout: a random transform")
    assert is_random(torch.nn.RReLU())


def test_a_blur_is_random_only_when_it_draws_its_sigma(T):
    assert classify(T.GaussianBlur(3, sigma=(0.1, 2.0))).why == (
        "GaussianBlur: draws its sigma from (0.1, 2.0)")
    assert not is_random(T.GaussianBlur(3, sigma=1.5))


def test_what_plumber_cannot_read_counts_as_random(T):
    assert is_random(operator.itemgetter(0))  # a compiled callable object
    assert classify(T.Lambda(operator.itemgetter(0))).kind == RANDOM


def test_a_generator_held_by_a_transform_makes_it_random():
    class Jitter:
        def __init__(self):
            self.rng = np.random.default_rng(0)

        def __call__(self, x):
            return x + self.rng.standard_normal()

    assert classify(Jitter()).why == "Jitter > Generator: a random number generator"


# -- the repeat check: apply again to the same input, compare ---------------------------


class ImageFiles:
    """Reads PNG files with PIL and applies ``transform``, as torchvision's ImageFolder does."""

    def __init__(self, paths, transform):
        self.paths = paths
        self.transform = transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        from PIL import Image

        with Image.open(self.paths[index]) as image:
            image = image.convert("RGB")
        return self.transform(image), index % 2


@pytest.fixture
def pngs(tmp_path):
    pytest.importorskip("torch")
    from PIL import Image

    paths = []
    for i in range(4):
        pixels = np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(pixels).save(paths[-1])
    return paths


def test_outputs_are_compared_by_value():
    torch = pytest.importorskip("torch")
    from PIL import Image

    nan = torch.tensor([1.0, float("nan")])
    assert same((nan, {"y": np.arange(3)}), (nan.clone(), {"y": np.arange(3)}))
    assert not same(torch.zeros(2), torch.zeros(2, dtype=torch.float64))
    assert same(Image.new("RGB", (2, 2)), Image.new("RGB", (2, 2)))
    assert not same(Image.new("RGB", (2, 2)), Image.new("RGB", (2, 2), "red"))
    assert not same(object(), object())  # cannot be compared: different
    assert not same([1, 2], (1, 2))


def test_the_repeat_check_catches_randomness_the_code_does_not_show(pngs, T):
    counter = itertools.count()
    hidden = T.Lambda(lambda x: x + next(counter))  # no random name, still differs per call
    assert classify(hidden).kind == UNPROVEN
    dataset = ImageFiles(pngs, T.Compose([T.ToTensor(), hidden, T.Normalize((0.5,), (0.2,))]))
    check = check_repeatable(dataset, find_transforms(dataset))
    assert check.fetch is True and check.transforms == (True, False, True)
    assert check.samples == 2


def test_the_repeat_check_catches_a_user_function_drawing_random_numbers(pngs, T):
    dataset = ImageFiles(pngs, T.Compose([T.ToTensor(), noisy]))
    assert check_repeatable(dataset, find_transforms(dataset)).transforms == (True, False)


def test_the_repeat_check_keeps_the_scripts_random_numbers_and_the_dataset(pngs, T):
    torch = pytest.importorskip("torch")
    compose = T.Compose([T.RandomCrop(8), T.ToTensor()])
    dataset = ImageFiles(pngs, compose)
    states = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    check = check_repeatable(dataset, find_transforms(dataset))
    assert check.transforms[0] is False
    assert random.getstate() == states[0]
    assert (np.random.get_state()[1] == states[1]).all()
    assert torch.equal(torch.get_rng_state(), states[2])
    assert dataset.transform is compose and len(compose.transforms) == 2


def test_a_dataset_that_raises_is_not_checked_and_counts_as_random(pngs, T):
    class Broken(ImageFiles):
        def __getitem__(self, index):
            raise OSError("gone")

    decided = decide_randomness(Broken(pngs, T.ToTensor()), indexable=True)
    assert decided.fetch_random and "OSError: gone" in decided.fetch_note
    (info,) = decided.transforms
    assert info.random and info.note.startswith("treated as random: ")


# -- both checks: a stage is cacheable only when both say deterministic -------------------


def test_a_deterministic_compose_stays_cacheable_without_notes(pngs, T):
    transform = T.Compose([T.Resize(8), T.ToTensor(), T.Normalize((0.5,) * 3, (0.2,) * 3)])
    decided = decide_randomness(ImageFiles(pngs, transform), indexable=True)
    assert not decided.fetch_random and decided.fetch_note == ""
    assert [tuple(t) for t in decided.transforms] == [
        ("Resize", False, ""), ("ToTensor", False, ""), ("Normalize", False, "")]


def test_the_preset_class_pattern_is_one_random_stage(pngs, T):
    decided = decide_randomness(ImageFiles(pngs, ClassificationPresetTrain(T, 8)), True)
    (info,) = decided.transforms
    assert info.op == "ClassificationPresetTrain" and info.random
    assert info.note == ("random: ClassificationPresetTrain > Compose > RandomResizedCrop: "
                         "a random transform")
    assert not decided.fetch_random


def test_user_code_is_deterministic_only_when_the_repeat_check_agrees(pngs, T):
    counter = itertools.count()
    stateful = T.Lambda(lambda x: x * next(counter))
    decided = decide_randomness(ImageFiles(pngs, T.Compose([to_tensor, stateful])), True)
    first, second = decided.transforms
    assert not first.random and first.note.startswith("deterministic: no random call found")
    assert second.random and second.note.startswith("random: applied 3 times")


def test_without_an_index_nothing_is_read_and_only_random_stays_unmarked(pngs, T):
    decided = decide_randomness(ImageFiles(pngs, T.Compose([T.ToTensor()])), indexable=False)
    (info,) = decided.transforms
    assert info.random and "no index" in info.note
    assert not decided.fetch_random
