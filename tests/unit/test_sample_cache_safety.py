"""The sample cache's folder stays private, and samples of plain types are stored without pickle.

Fast: small in-memory datasets read by index, no DataLoader.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import Dataset  # noqa: E402

from plumber.caching.entrystore import UnsafeCacheFolderError  # noqa: E402
from plumber.torch import samplecodec  # noqa: E402
from plumber.torch.cache import CachedDataset  # noqa: E402


class Samples(Dataset):
    """Returns ``make(index)``; counts the fetches."""

    def __init__(self, make) -> None:
        self.make = make
        self.fetched = 0

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int):
        self.fetched += 1
        return self.make(index)


def nested(index: int):
    return (
        torch.arange(6, dtype=torch.float32).reshape(2, 3) + index,
        index,
        {"mask": np.array([[True, False]]), "name": f"s{index}", "raw": bytes([index, 255]),
         "boxes": [np.arange(4, dtype=np.int16), torch.tensor(index, dtype=torch.bfloat16)]},
        [1.5, float("nan"), None, True, np.int64(index), np.float32(0.25)],
        torch.zeros(0, 4, dtype=torch.int64),
        torch.arange(12).reshape(3, 4).t(),  # not contiguous
    )


def assert_same(a, b) -> None:
    assert type(a) is type(b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, float) and a != a:
        assert b != b
    else:
        assert a == b


def no_pickle(*args, **kwargs):
    raise AssertionError("pickle was used")


def test_tensors_arrays_and_plain_values_round_trip_without_pickle(tmp_path, monkeypatch):
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "dumps", no_pickle)
    dataset = Samples(nested)
    cached = CachedDataset(dataset, location=tmp_path)
    first = [cached[i] for i in range(3)]
    again = [cached[i] for i in range(3)]
    assert dataset.fetched == 3 and cached.cached_entries() == 3
    for index in range(3):
        assert_same(first[index], nested(index))
        assert_same(again[index], nested(index))


class Opaque:
    """A sample type the safe format does not cover."""

    def __init__(self, value: int) -> None:
        self.value = value


def test_other_sample_types_are_still_cached(tmp_path):
    dataset = Samples(lambda i: (Opaque(i), torch.ones(2)))
    cached = CachedDataset(dataset, location=tmp_path)
    assert [cached[i][0].value for i in range(3)] * 2 == [cached[i][0].value for i in (0, 1, 2) * 2]
    assert dataset.fetched == 3


def test_the_cache_makes_its_folders_private(tmp_path):
    cached = CachedDataset(Samples(nested), location=tmp_path / "made")
    assert (tmp_path / "made").stat().st_mode & 0o777 == 0o700
    assert cached.directory.stat().st_mode & 0o777 == 0o700


def test_a_location_others_can_write_is_refused_unless_sticky(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(UnsafeCacheFolderError, match=f"{shared}.*writable by"):
        CachedDataset(Samples(nested), location=shared)
    shared.chmod(0o1777)  # as /tmp: others cannot replace the folder plumber makes in it
    assert CachedDataset(Samples(nested), location=shared).directory.parent == shared


def test_a_cache_folder_made_writable_by_others_is_refused_on_the_next_read(tmp_path):
    cached = CachedDataset(Samples(nested), location=tmp_path)
    cached[0]
    cached.directory.chmod(0o770)
    with pytest.raises(UnsafeCacheFolderError, match=f"{cached.directory}.*writable by"):
        cached[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_cache_folder_given_to_another_user_is_refused_on_the_next_read(tmp_path):
    import pwd

    cached = CachedDataset(Samples(lambda i: Opaque(i)), location=tmp_path)
    cached[0]
    os.chown(cached.directory, pwd.getpwnam("nobody").pw_uid, -1)
    with pytest.raises(UnsafeCacheFolderError, match="owned by"):
        cached[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_an_entry_owned_by_another_user_is_not_read(tmp_path, monkeypatch):
    import pwd

    dataset = Samples(lambda i: Opaque(i))
    cached = CachedDataset(dataset, location=tmp_path)
    cached[0]
    (entry,) = Path(cached.directory).glob("*.entry")
    os.chown(entry, pwd.getpwnam("nobody").pw_uid, -1)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    assert cached[0].value == 0
    assert dataset.fetched == 2


def entry_of(cached: CachedDataset, index: int) -> Path:
    return Path(cached.directory) / f"{index}.entry"


def test_tensor_samples_are_stored_plain_and_other_samples_pickled(tmp_path):
    plain = CachedDataset(Samples(nested), location=tmp_path)
    plain[0]
    opaque = CachedDataset(Samples(lambda i: Opaque(i)), location=tmp_path)
    opaque[0]
    assert entry_of(plain, 0).read_bytes().startswith(samplecodec.PLAIN)
    assert entry_of(opaque, 0).read_bytes().startswith(samplecodec.PICKLED)


def test_a_damaged_entry_is_computed_again_not_served(tmp_path):
    dataset = Samples(nested)
    cached = CachedDataset(dataset, location=tmp_path)
    cached[1]
    entry = entry_of(cached, 1)
    entry.write_bytes(entry.read_bytes()[:-5])
    assert_same(cached[1], nested(1))
    assert dataset.fetched == 2
    assert_same(cached[1], nested(1))
    assert dataset.fetched == 2  # stored anew


def test_a_plain_entry_cannot_name_an_object_dtype():
    payload = samplecodec.dumps(np.array([1, 2], dtype=np.int64))
    forged = payload.replace(b'"<i8"', b'"|O8"')
    assert forged != payload
    with pytest.raises(ValueError, match="not a plain numpy dtype"):
        samplecodec.loads(forged)
