"""Finding a dataset's transforms, naming them, and telling random ones apart (no torch)."""

from __future__ import annotations

import functools

from plumber.torch.sizes import describe, nbytes_of
from plumber.torch.transforms import find_transforms, is_random, transform_op
from plumber.torch.workerside import TimedTransform


class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


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
