"""A plan derived from a profile is applied whole: every setting finds its stage.

For each script in ``examples/`` and ``benchmarks/`` that runs in seconds
(and two planted ones: a ``zip`` at the root, options at the root), the
script is profiled with a step bound, the plan is derived from that profile
exactly as ``plumber tune`` does, and the script runs again, with the same
bound, under the appliers ``plumber run --plan`` uses. No setting may be
left unmatched ("plan stage not found"): derive must plan only what the
appliers can apply.

One driver process does this for every script in turn, as ``tune`` runs
its repeats in one process, so TensorFlow is imported once, not once per
script; the torch scripts go first, since torchvision cannot be imported
after TensorFlow in one process (``tests/conftest.py``). Each script's
outcome, or the error that ended it, is a line of its own, and each script
is a test of its own that reads its line.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

#: For each (script, args) in the JSON list of argv[1]: profiles, derives, applies; prints
#: one line per script: ROUNDTRIP {"index": i, "exit_statuses": [profiled, applied],
#: "settings": [...], "unmatched": [...], "notes": [...]}, or {"index": i, "error": traceback}
#: when that script's round trip raised.
DRIVER = '''
import contextlib, json, sys, traceback
from pathlib import Path
from plumber.analyzers.diagnose import diagnose_all
from plumber.capture.session import SessionOptions, profile_script
from plumber.tuner.appliers import applying
from plumber.tuner.derive import derive_plan

bounds = dict(steps=12, duration_s=30.0)


def round_trip(script, args):
    profiled = profile_script(script, args, SessionOptions(cpu_probe_s=1.0, net_probe_s=0.5,
                                                           **bounds))
    profile = profiled.profile
    plan = derive_plan(profile, diagnose_all(profile), script)
    entered = []

    @contextlib.contextmanager
    def applied():
        with applying(plan, script) as appliers:
            entered.extend(appliers)
            yield

    # The applied run only has to build the pipelines: no probes after it.
    rerun = profile_script(script, args, SessionOptions(cpu_probe_s=0.0, net_probe_s=0.0,
                                                        around_script=applied, **bounds))
    return {
        "exit_statuses": [profiled.outcome.exit_status, rerun.outcome.exit_status],
        "settings": [f"{s.stage} ({s.stage_id})" for p in plan.pipelines for s in p.settings],
        "unmatched": [f"{s.stage} ({s.stage_id})" for a in entered for s in a.unmatched()],
        "notes": list(plan.notes),
    }


for index, (script, args) in enumerate(json.loads(sys.argv[1])):
    try:
        result = round_trip(Path(script), args)
    except BaseException:
        result = {"error": traceback.format_exc()[-3000:]}
    print("ROUNDTRIP " + json.dumps({"index": index, **result}), flush=True)
'''

ZIP_ROOT = '''
import tensorflow as tf


def expensive(x):
    def body(i, acc):
        return i + 1, acc + tf.reduce_sum(tf.sin(acc[:64] + tf.cast(i, tf.float32)))

    _, acc = tf.while_loop(lambda i, acc: i < 200, body, (0, tf.ones([256])))
    return tf.cast(x, tf.float32) + acc[0] * 0.0


left = tf.data.Dataset.range(400).map(expensive, num_parallel_calls=1).batch(4)
right = tf.data.Dataset.range(400).map(lambda x: x * 2).batch(4)
dataset = tf.data.Dataset.zip((left, right))
'''

OPTIONS_ROOT = ZIP_ROOT + '''
options = tf.data.Options()
options.deterministic = True
dataset = dataset.with_options(options)
'''

LOOP = '''
total = 0.0
for a, b in dataset:
    total += float(tf.reduce_sum(a)) + float(tf.reduce_sum(b))
print("done", total)
'''

OBJECTSTORE = ["--images", "32", "--batch-size", "8", "--latency", "5ms", "--steps", "12"]

#: (script, its arguments, the modules it needs beyond tensorflow); the driver runs those
#: that need torch first (see the module)
SCRIPTS = [
    ("benchmarks/tuning/misconfigured_map.py", [], ()),
    ("benchmarks/tuning/multi_epoch.py", [], ()),
    ("benchmarks/tuning/well_tuned.py", [], ()),
    ("benchmarks/tuning/remote_read.py", [], ()),
    ("benchmarks/workloads/cpu_map.py", [], ()),
    ("benchmarks/workloads/image_decode.py", [], ()),
    ("benchmarks/workloads/tiny_steps.py", [], ()),
    ("benchmarks/torch/expensive_transform.py", [], ("torch", "torchvision")),
    ("benchmarks/torch/slow_fetch.py", [], ("torch", "torchvision")),
    ("examples/tf_images.py", ["--epochs", "1", "--images", "96", "--batch-size", "8"], ()),
    ("examples/objectstore/tf_s3_images.py", OBJECTSTORE, ("moto.server",)),
    ("examples/objectstore/torch_s3_images.py", OBJECTSTORE,
     ("moto.server", "torch", "torchvision")),
]

#: The planted scripts, by test id.
PLANTED = {"zip": ZIP_ROOT, "with_options": OPTIONS_ROOT}


def installed(modules) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


@pytest.fixture(scope="module")
def round_trips(tmp_path_factory) -> dict[str, dict]:
    """Each runnable script's round trip, by its path (the planted ones by their test id)."""
    pytest.importorskip("tensorflow")
    folder = tmp_path_factory.mktemp("round_trips")
    runs = []
    for script, args, needs in sorted(SCRIPTS, key=lambda s: "torch" not in s[2]):
        if installed(needs):
            if script == "examples/tf_images.py":
                args = [*args, "--data-dir", str(folder / "images")]
            runs.append((script, str(REPO / script), args))
    for name, body in PLANTED.items():
        planted = folder / f"{name}.py"
        planted.write_text(body + LOOP)
        runs.append((name, str(planted), []))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1",
           "PLUMBER_CACHE_DIR": str(folder / "cache")}
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps([[path, args] for _, path, args in runs])],
        cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    lines = [json.loads(line.removeprefix("ROUNDTRIP ")) for line in proc.stdout.splitlines()
             if line.startswith("ROUNDTRIP ")]
    found = {runs[line.pop("index")][0]: line for line in lines}
    ended = f"the driver ended with exit status {proc.returncode}: {proc.stderr[-3000:]}"
    return {name: found.get(name, {"error": ended}) for name, _, _ in runs}


@pytest.mark.parametrize(("script", "args", "needs"), SCRIPTS, ids=[s[0] for s in SCRIPTS])
def test_every_setting_derived_for_a_repository_script_finds_its_stage(
        round_trips, script, args, needs):
    for module in needs:
        pytest.importorskip(module)
    result = round_trips[script]
    assert "error" not in result, result["error"]
    assert result["exit_statuses"] == [0, 0], result
    assert result["unmatched"] == [], result


@pytest.mark.parametrize("name", list(PLANTED))
def test_a_zip_or_options_at_the_root_get_only_settings_that_apply(round_trips, name):
    result = round_trips[name]
    assert "error" not in result, result["error"]
    assert result["exit_statuses"] == [0, 0], result
    assert result["unmatched"] == [], result
    assert any("(map-0)" in s for s in result["settings"]), result
    if name == "zip":
        assert not any("zip at" in s for s in result["settings"]), result
        assert any("ends in zip-0 (zip)" in note for note in result["notes"]), result
