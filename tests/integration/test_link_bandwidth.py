"""``--link-bandwidth`` reaches the profile, where the offload what-if reads it
(tests/unit/test_analyzers_offload.py covers what it changes there)."""

from __future__ import annotations

import pytest

from plumber.records.profile import Profile

pytestmark = pytest.mark.slow


def test_the_link_rate_given_is_recorded_with_the_machine(plumber_cli, tmp_path):
    script = tmp_path / "train.py"
    script.write_text("print('trained')\n")
    given = plumber_cli("profile", "-o", "out", "--cpu-probe", "0", script,
                        "--link-bandwidth", "10Gb/s")
    assert given.returncode == 0, given.stderr[-3000:]
    assert Profile.load(given.profile_path).machine.link_bps == pytest.approx(1.25e9)
    plain = plumber_cli("profile", "-o", "out", "--cpu-probe", "0", script)
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert Profile.load(plain.profile_path).machine.link_bps is None


def test_plumber_profile_records_the_link_rate_given_in_a_notebook():
    tf = pytest.importorskip("tensorflow")
    import plumber

    dataset = tf.data.Dataset.range(64).map(lambda x: x * 2).batch(8)
    given = plumber.profile(dataset, cpu_probe=0, link_bandwidth="100Mbit/s")
    assert given.profile.machine.link_bps == pytest.approx(12.5e6)
    assert plumber.profile(dataset, cpu_probe=0).profile.machine.link_bps is None
