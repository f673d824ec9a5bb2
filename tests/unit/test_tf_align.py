"""Alignment of written stages onto TF's as-run model, on synthetic models.

No TensorFlow needed: written stages and model nodes are built by hand in the
shapes TF 2.21 produces (checked against real runs while writing plumber).
"""

from plumber.tf.align import align
from plumber.tf.modelstats import ModelAccumulator, NodeStats
from plumber.tf.written import WrittenStage, kind_of


def chain(*ops: str) -> WrittenStage:
    """Written stages bottom-up from op names (e.g. "Range", "Map", "BatchV2")."""
    stage = None
    counters: dict[str, int] = {}
    for op in ops:
        kind = kind_of(op)
        n = counters.get(kind, 0)
        counters[kind] = n + 1
        stage = WrittenStage(
            id=f"{kind}-{n}",
            kind=kind,
            op=op,
            dataset=None,
            run_kind=kind,
            inputs=[stage] if stage else [],
        )
    return stage


def model(*nodes: tuple[int, str, list[int], int, float]) -> ModelAccumulator:
    """Nodes as (id, name, inputs, elements, processing seconds); node 1 is Root."""
    acc = ModelAccumulator(output=1)
    for node_id, name, inputs, elements, seconds in nodes:
        acc.nodes[node_id] = NodeStats(
            id=node_id,
            name=name,
            inputs=tuple(inputs),
            elements=elements,
            processing_time_s=seconds,
            ratio=8.0 if name == "MapAndBatch" else 1.0,
            parameters={"parallelism": 2.0} if name.startswith(("Parallel", "MapAnd")) else {},
        )
    return acc


def test_sequential_map_rewritten_to_parallel_map_is_attributed_to_the_written_map():
    written = chain("Range", "Map", "Prefetch")
    acc = model(
        (1, "Root", [2], 10, 0.0),
        (2, "Prefetch", [3], 10, 0.01),
        (3, "ParallelMapV2", [4], 10, 1.5),
        (4, "Range", [], 10, 0.001),
    )
    result = align(written, acc)
    stages = result.stages
    assert result.root == "prefetch-0"
    assert stages["map-0"].as_run == ["ParallelMapV2"]
    assert stages["map-0"].rewrite == "map_parallelization"
    assert stages["map-0"].processing_time_s == 1.5
    assert stages["map-0"].parallelism == 2.0
    assert stages["source-0"].matched


def test_map_and_batch_fusion_gives_the_time_to_the_map_and_keeps_the_batch():
    written = chain("Range", "ParallelMapV2", "BatchV2", "Prefetch")
    acc = model(
        (1, "Root", [2], 5, 0.0),
        (2, "Prefetch", [3], 5, 0.0),
        (3, "MapAndBatch", [4], 5, 2.0),
        (4, "Range", [], 40, 0.0),
    )
    stages = align(written, acc).stages
    assert stages["map-0"].processing_time_s == 2.0
    assert stages["map-0"].elements == 40  # batches x batch size
    assert stages["batch-0"].elements == 5
    assert stages["batch-0"].processing_time_s == 0.0
    assert stages["batch-0"].rewrite == stages["map-0"].rewrite == "map_and_batch_fusion"
    assert "fused into MapAndBatch" in stages["batch-0"].note


def test_prefetch_injected_by_tf_becomes_an_unwritten_stage_above_the_last_one():
    written = chain("Range", "BatchV2")
    acc = model(
        (1, "Root", [2], 4, 0.0),
        (2, "Prefetch", [3], 4, 0.0),
        (3, "BatchV2", [4], 4, 0.1),
        (4, "Range", [], 16, 0.0),
    )
    result = align(written, acc)
    added = result.stages["tf-prefetch-above-batch-0"]
    assert result.root == added.id
    assert not added.written
    assert added.inputs == ["batch-0"]
    assert result.stages["batch-0"].matched


def test_options_stage_is_kept_as_configuration_and_its_input_still_aligns():
    written = chain("Range", "Map", "Options")
    acc = model((1, "Root", [2], 3, 0.0), (2, "Map", [3], 3, 0.2), (3, "Range", [], 3, 0.0))
    stages = align(written, acc).stages
    assert stages["config-0"].note.startswith("configuration only: not a running stage")
    assert stages["config-0"].as_run == []
    assert stages["map-0"].processing_time_s == 0.2


def test_an_options_root_counts_the_elements_its_input_handed_up_and_no_time():
    written = chain("Range", "ParallelMapV2", "BatchV2", "Prefetch", "Options")
    acc = model(
        (1, "Root", [2], 5, 0.0),
        (2, "Prefetch", [3], 5, 0.01),
        (3, "MapAndBatch", [4], 5, 2.0),
        (4, "Range", [], 40, 0.0),
    )
    acc.nodes[2].bytes_produced = 640
    result = align(written, acc)
    root = result.stages[result.root]
    assert result.root == "config-0"
    assert root.matched
    assert root.elements == 5
    assert root.bytes_produced == 640
    assert root.processing_time_s == 0.0
    assert root.inputs == ["prefetch-0"]


def test_an_assert_cardinality_root_under_a_prefetch_tf_injected_keeps_the_stages_below():
    written = chain("Range", "ParallelMapV2", "BatchV2", "Prefetch", "AssertCardinality")
    acc = model(
        (1, "Root", [2], 5, 0.0),
        (2, "Prefetch", [3], 5, 0.001),
        (3, "AssertCardinality", [4], 5, 0.0),
        (4, "Prefetch", [5], 5, 0.01),
        (5, "MapAndBatch", [6], 5, 2.0),
        (6, "Range", [], 40, 0.0),
    )
    result = align(written, acc)
    stages = result.stages
    assert result.root == "tf-prefetch-above-config-0"
    assert stages["config-0"].as_run == ["AssertCardinality"]
    assert stages["prefetch-0"].as_run == ["Prefetch"]
    assert stages["map-0"].processing_time_s == 2.0
    assert stages["batch-0"].rewrite == "map_and_batch_fusion"
    assert not any(sid.startswith("tf-") and sid != result.root for sid in stages)


def test_an_options_root_is_not_taken_for_a_different_configuration_node():
    written = chain("Range", "Map", "AssertCardinality", "Options")
    acc = model(
        (1, "Root", [2], 3, 0.0),
        (2, "AssertCardinality", [3], 3, 0.0),
        (3, "Map", [4], 3, 0.2),
        (4, "Range", [], 3, 0.0),
    )
    stages = align(written, acc).stages
    assert stages["config-0"].as_run == ["AssertCardinality"]
    assert stages["config-1"].as_run == []
    assert stages["config-1"].elements == 3


def test_stacked_configuration_roots_all_pass_the_count_up():
    written = chain("Range", "Map", "MaxIntraOpParallelism", "Options")
    acc = model((1, "Root", [2], 3, 0.0), (2, "Map", [3], 3, 0.2), (3, "Range", [], 3, 0.0))
    stages = align(written, acc).stages
    assert stages["config-0"].elements == 3
    assert stages["config-1"].elements == 3


def test_interleave_cycle_elements_are_summed_into_nested_stages_including_finished_ones():
    written = chain("TensorSlice", "ParallelInterleaveV4")
    acc = model(
        (1, "Root", [2], 30, 0.0),
        (2, "ParallelInterleaveV4", [3, 10, 20], 30, 0.3),
        (3, "TensorSlice", [], 2, 0.0),
        (10, "TFRecord", [], 12, 1.0),  # a finished cycle element, kept from an earlier poll
        (20, "TFRecord", [], 18, 2.0),
    )
    stages = align(written, acc).stages
    nested = stages["interleave-0>TFRecord"]
    assert nested.nested_in == "interleave-0"
    assert nested.elements == 30
    assert nested.processing_time_s == 3.0
    assert stages["source-0"].matched
    assert stages["interleave-0"].processing_time_s == 0.3


def test_zip_aligns_each_input_in_order():
    left, right = chain("Range", "Map"), chain("TensorSlice")
    right.id = "source-1"
    zipped = WrittenStage(
        id="zip-0", kind="zip", op="Zip", dataset=None, run_kind="zip", inputs=[left, right]
    )
    acc = model(
        (1, "Root", [2], 5, 0.0),
        (2, "Zip", [3, 5], 5, 0.01),
        (3, "Map", [4], 5, 0.5),
        (4, "Range", [], 5, 0.0),
        (5, "TensorSlice", [], 5, 0.02),
    )
    stages = align(zipped, acc).stages
    assert stages["map-0"].processing_time_s == 0.5
    assert stages["source-1"].processing_time_s == 0.02
    assert stages["zip-0"].inputs == ["map-0", "source-1"]


def test_a_written_stage_tf_removed_is_kept_with_a_reason():
    written = chain("Range", "Prefetch", "Map")  # pretend TF dropped the inner prefetch
    acc = model((1, "Root", [2], 3, 0.0), (2, "Map", [3], 3, 0.2), (3, "Range", [], 3, 0.0))
    stages = align(written, acc).stages
    assert not stages["prefetch-0"].matched
    assert "removed" in stages["prefetch-0"].note
    assert stages["source-0"].matched


def test_cycle_elements_missed_between_polls_are_extrapolated_from_the_interleave_output():
    written = chain("TensorSlice", "ParallelInterleaveV4")
    acc = model(
        (1, "Root", [2], 30, 0.0), (2, "ParallelInterleaveV4", [3, 10], 30, 0.3),
        (3, "TensorSlice", [], 3, 0.0), (10, "TFRecord", [], 20, 2.0),
    )
    nested = align(written, acc).stages["interleave-0>TFRecord"]
    assert nested.elements == 30
    assert nested.processing_time_s == 3.0
    assert "extrapolated" in nested.note


def test_a_service_read_takes_the_service_node_and_tf_adds_the_uncompressing_map():
    read = WrittenStage(id="source-1", kind="source", op="DataServiceV4", dataset=None,
                        run_kind="source", knobs={"service": "grpc://localhost:5000"})
    written = WrittenStage(id="prefetch-0", kind="prefetch", op="Prefetch", dataset=None,
                           run_kind="prefetch", inputs=[read])
    acc = model(
        (1, "Root", [2], 100, 0.0),
        (2, "Prefetch", [3], 100, 0.02),
        (3, "ParallelMapV2", [4], 102, 0.1),
        (4, "DataService", [], 104, 4.0),
    )
    stages = align(written, acc).stages
    assert stages["source-1"].as_run == ["DataService"]
    assert stages["source-1"].processing_time_s == 4.0
    uncompress = stages["tf-map-above-source-1"]
    assert uncompress.inputs == ["source-1"] and not uncompress.written
    assert "uncompresses the elements the tf.data service sends" in uncompress.note
    assert stages["prefetch-0"].inputs == ["tf-map-above-source-1"]
