"""Hostile numbers and shapes in one host's profile: the multi-host report never crashes.

The campaign of ``test_hostile_profiles`` (every field, object and list set
to every hostile value) applied to one of two hosts' profiles: each result
is refused on loading, refused as another job, or compared and rendered
(page and terminal lines) without an exception.
"""

from __future__ import annotations

import json

import pytest
from test_hostile_profiles import (
    HOSTILE_VALUES,
    containers,
    leaves,
    replaced,
    tf_profile,
    torch_profile,
)

from plumber.analyzers.hosts import DifferentJobsError, compare_hosts
from plumber.records.profile import Profile, ProfileFormatError, ProfileVersionError
from plumber.reports.hosts import hosts_summary, render_hosts_html


@pytest.mark.parametrize("profile", [tf_profile(), torch_profile()], ids=["tf", "torch"])
def test_every_field_of_one_host_set_to_every_hostile_value_is_refused_or_compared(profile):
    data = profile.to_dict()
    crashes, compared = [], 0
    for path in [*leaves(data), *containers(data)]:
        for name, value in HOSTILE_VALUES.items():
            try:
                loaded = Profile.from_dict(json.loads(json.dumps(replaced(data, path, value))))
            except (ProfileFormatError, ProfileVersionError):
                continue
            try:
                comparison = compare_hosts(["intact", "hostile"], [profile, loaded])
                render_hosts_html(comparison)
                hosts_summary(comparison)
                compared += 1
            except DifferentJobsError:
                continue
            except Exception as exc:  # noqa: BLE001 - collected to name every crash at once
                crashes.append(f"{'.'.join(map(str, path))}={name}: {type(exc).__name__}: {exc}")
    assert crashes == []
    assert compared > 0
