"""A tf.data pipeline read for a number of epochs; prints each epoch's elements as JSON.

``plumber run --plan PLAN --data-service ADDRESS`` sends the map (the line
marked "the cut") and the source below it to tf.data service workers; the
test compares each epoch's elements with a run as written. With ``--slow``
it reads one element every 20 ms for up to a minute, so a test can take the
service away mid-run.
"""

import json
import sys
import time

import tensorflow as tf

slow = "--slow" in sys.argv
epochs = 1 if slow else 2
dataset = tf.data.Dataset.range(100_000 if slow else 40)
dataset = dataset.map(lambda x: x * 3)  # the cut
dataset = dataset.batch(4)
for epoch in range(epochs):
    elements = []
    for batch in dataset:
        elements.extend(int(v) for v in batch.numpy())
        if slow:
            print(f"read {len(elements)}", flush=True)
            time.sleep(0.02)
    print(json.dumps({"epoch": epoch, "elements": sorted(elements)}), flush=True)
