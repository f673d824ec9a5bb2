"""A plan derived from a profile is applied whole: every setting finds its stage.

For each script in ``examples/`` and ``benchmarks/`` that runs in seconds
(and two planted ones: a ``zip`` at the root, options at the root), a
subprocess profiles the script with a step bound, derives the plan from
that profile exactly as ``plumber tune`` does, and runs the script again,
with the same bound, under the appliers ``plumber run --plan`` uses. No
setting may be left unmatched ("plan stage not found"): derive must plan
only what the appliers can apply.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

#: Profiles, derives, applies; prints one line: ROUNDTRIP {"settings": [...], "unmatched": [...]}
DRIVER = '''
import contextlib, json, sys
from pathlib import Path
from plumber.analyzers.diagnose import diagnose_all
from plumber.capture.session import SessionOptions, profile_script
from plumber.tuner.appliers import applying
from plumber.tuner.derive import derive_plan

script, args = Path(sys.argv[1]), sys.argv[2:]
bounds = dict(steps=12, duration_s=30.0)
profile = profile_script(script, args,
                         SessionOptions(cpu_probe_s=1.0, net_probe_s=0.5, **bounds)).profile
plan = derive_plan(profile, diagnose_all(profile), script)
entered = []

@contextlib.contextmanager
def applied():
    with applying(plan, script) as appliers:
        entered.extend(appliers)
        yield

# The applied run only has to build the pipelines: no probes after it.
profile_script(script, args,
               SessionOptions(cpu_probe_s=0.0, net_probe_s=0.0, around_script=applied, **bounds))
print("ROUNDTRIP " + json.dumps({
    "settings": [f"{s.stage} ({s.stage_id})" for p in plan.pipelines for s in p.settings],
    "unmatched": [f"{s.stage} ({s.stage_id})" for a in entered for s in a.unmatched()],
    "notes": list(plan.notes),
}))
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

#: (script, its arguments, the module it needs beyond tensorflow)
SCRIPTS = [
    ("benchmarks/tuning/misconfigured_map.py", [], None),
    ("benchmarks/tuning/multi_epoch.py", [], None),
    ("benchmarks/tuning/well_tuned.py", [], None),
    ("benchmarks/tuning/remote_read.py", [], None),
    ("benchmarks/workloads/cpu_map.py", [], None),
    ("benchmarks/workloads/image_decode.py", [], None),
    ("benchmarks/workloads/tiny_steps.py", [], None),
    ("benchmarks/torch/expensive_transform.py", [], "torch"),
    ("benchmarks/torch/slow_fetch.py", [], "torch"),
    ("examples/tf_images.py", ["--epochs", "1", "--images", "96", "--batch-size", "8"], None),
    ("examples/objectstore/tf_s3_images.py", OBJECTSTORE, "moto.server"),
    ("examples/objectstore/torch_s3_images.py", OBJECTSTORE, "moto.server"),
]


def round_trip(script: Path, args: list[str], cwd: Path) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1",
           "PLUMBER_CACHE_DIR": str(cwd / "cache")}
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(script), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("ROUNDTRIP "))
    return json.loads(line.removeprefix("ROUNDTRIP "))


@pytest.mark.parametrize(("script", "args", "needs"), SCRIPTS, ids=[s[0] for s in SCRIPTS])
def test_every_setting_derived_for_a_repository_script_finds_its_stage(
        tmp_path, script, args, needs):
    pytest.importorskip("tensorflow")
    if needs is not None:
        pytest.importorskip(needs)
    if script == "examples/tf_images.py":
        args = [*args, "--data-dir", str(tmp_path / "images")]
    result = round_trip(REPO / script, args, tmp_path)
    assert result["unmatched"] == [], result


@pytest.mark.parametrize("body", [ZIP_ROOT, OPTIONS_ROOT], ids=["zip", "with_options"])
def test_a_zip_or_options_at_the_root_get_only_settings_that_apply(tmp_path, body):
    pytest.importorskip("tensorflow")
    script = tmp_path / "zipped.py"
    script.write_text(body + LOOP)
    result = round_trip(script, [], tmp_path)
    assert result["unmatched"] == [], result
    assert any("(map-0)" in s for s in result["settings"]), result
    if body is ZIP_ROOT:
        assert not any("zip at" in s for s in result["settings"]), result
        assert any("ends in zip-0 (zip)" in note for note in result["notes"]), result
