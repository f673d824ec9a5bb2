"""Folding successive autotune-model polls, on fake protos (no TensorFlow)."""

from types import SimpleNamespace

from plumber.tf.modelstats import ModelAccumulator


def node(name, inputs, elements, seconds=0.0):
    return SimpleNamespace(
        name=name, inputs=inputs, num_elements=elements, processing_time=int(seconds * 1e9),
        bytes_produced=elements * 10, bytes_consumed=0, ratio=1.0, parameters=[],
        buffered_elements=0,
    )


def proto(nodes):
    return SimpleNamespace(output=1, gap_times=[], nodes=nodes)


def test_counters_keep_their_maximum_across_polls():
    acc = ModelAccumulator()
    acc.fold(proto({1: node("Root", [2], 5), 2: node("Map", [], 5, 1.0)}))
    acc.fold(proto({1: node("Root", [2], 9), 2: node("Map", [], 9, 2.0)}))
    assert acc.nodes[2].elements == 9
    assert acc.nodes[2].processing_time_s == 2.0
    assert acc.root_elements == 9


def test_subtree_dropped_at_end_of_data_is_extrapolated_from_its_surviving_parent():
    acc = ModelAccumulator()
    acc.fold(proto({
        1: node("Root", [2], 6), 2: node("BatchV2", [3], 6), 3: node("Map", [4], 48, 3.0),
        4: node("Range", [], 48),
    }))
    # End of data: batch dropped its input subtree before the final poll.
    acc.fold(proto({1: node("Root", [2], 10), 2: node("BatchV2", [], 10)}))
    acc.extrapolate()
    acc.extrapolate()  # idempotent
    assert acc.nodes[3].elements == 80
    assert acc.nodes[3].processing_time_s == 5.0
    assert acc.nodes[4].elements == 80
    assert acc.nodes[3].extrapolated


def test_finished_cycle_elements_and_repeat_passes_are_not_extrapolated():
    acc = ModelAccumulator()
    acc.fold(proto({
        1: node("Root", [2], 10), 2: node("ParallelInterleaveV4", [3, 4], 10),
        3: node("TensorSlice", [], 1), 4: node("TFRecord", [], 10),
        5: node("FiniteRepeat", [6], 4), 6: node("Range", [], 4),
    }))
    acc.fold(proto({
        1: node("Root", [2], 30), 2: node("ParallelInterleaveV4", [3, 7], 30),
        3: node("TensorSlice", [], 2), 7: node("TFRecord", [], 20),
        5: node("FiniteRepeat", [8], 9), 8: node("Range", [], 5),
    }))
    acc.extrapolate()
    assert acc.nodes[4].elements == 10 and not acc.nodes[4].extrapolated
    assert acc.nodes[6].elements == 4 and not acc.nodes[6].extrapolated
    assert acc.nodes[2].inputs == (3, 4, 7)


def test_an_autotuned_parameter_reads_the_value_the_pipeline_runs_with():
    def param(name, value, state_value):
        return SimpleNamespace(name=name, value=value, state_value=state_value)

    mapped = node("MapAndBatch", [], 16)
    mapped.parameters = [param("parallelism", 1.0, 2.0), param("buffer_size", 2.0, 0.0)]
    acc = ModelAccumulator()
    acc.fold(proto({1: mapped}))
    assert acc.nodes[1].parameters == {"parallelism": 2.0, "buffer_size": 2.0}
