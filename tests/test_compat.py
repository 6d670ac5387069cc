"""Code written against memoxr 0.x keeps working: every public name its modules defined still
resolves from the old import path (the layout moved the modules, not the API)."""

from __future__ import annotations

import importlib

import pytest

#: The public names each 0.x module defined (read from its source at commit 2c32f2f), except the
#: click commands, which moved to memoxr/cli/ (the command line itself is unchanged).
#: ``compute_proxies``/``PROXIES`` left ``memoxr.dynamics.proxies`` for ``registry.py``; they are
#: where the README always showed them, ``memoxr.dynamics`` (and ``memoxr.compute_proxies``).
OLD_API = {
    'memoxr.plan': ['CostPlan', 'DECODED_COPIES', 'ESTIMATE_TASK_BUDGETS', 'NPZ_RECORD_COPIES', 'RESIDENT_VALUES_PER_SAMPLE', 'count_tasks', 'default_threads', 'plan_calculate', 'plan_estimate', 'plan_ingest', 'plan_pairs'],
    'memoxr.storage': ['CREDENTIALS_KEYS', 'S3_TIMEOUTS', 'atomic_output', 'check_writable', 'connection_failure', 'describe_access_error', 'file_exists', 'is_url', 'open_dataset', 'open_file', 'remove_output', 'remove_stale_partials', 'resolve_storage_options', 'store_output', 'with_timeouts', 'write_dataset'],
    'memoxr.convert.fz_npz': ['ArrayHeader', 'CheckedNpz', 'DEFAULT_SAMPLE_ORDER', 'FZLayout', 'GLOBAL_KEYS', 'ORDER_KEY', 'file_sha256', 'inspect_fz_npz', 'load_npz_arrays', 'open_npz', 'read_npy_body', 'read_npy_header', 'read_npz_headers', 'read_npz_headers_from'],
    'memoxr.estimate': ['DEFAULT_SAMPLE_ORDER', 'DegenerateSampleWarning', 'ESTIMATOR_NAME', 'Records', 'TRIAL', 'TRIAL_VARIABLES', 'class_indices', 'estimate', 'estimate_command', 'estimate_to_zarr', 'open_trials', 'pass_sums_graph', 'read_records', 'records_sums', 'write_estimate', 'write_estimate_store', 'write_fz_npz', 'write_trials'],
    'memoxr.scores': ['PER_CLASS_BLOCK_BYTES', 'ZERO_STD_RULES', 'influence_scores', 'row_statistics'],
    'memoxr.stats': ['SCORE_COLUMNS', 'STAT_COLUMNS', 'class_stats', 'merge_stats_csv'],
    'memoxr.analysis': ['Analysis', 'METHODS', 'analyze', 'rank_agreement', 'score_ranges', 'top_classes', 'top_k'],
    'memoxr.schema': ['COMPLETE_ATTR', 'INFLUENCE_SCHEMA', 'INFLUENCE_VARIABLES', 'SCHEMA_VERSION', 'SCORES_SCHEMA', 'SCORE_NAMES', 'STATISTICS', 'STAT_STEMS', 'check_complete', 'check_influence_dataset', 'check_schema_attrs', 'check_scores_dataset', 'influence_dataset', 'pad_indices'],
    'memoxr.scheduler': ['LOCAL_SCHEDULERS', 'SCHEDULER_ENV', 'current_client', 'use_scheduler'],
    'memoxr.incremental': ['append_estimate'],
    'memoxr.uncertainty': ['CONVERGENCE_COLUMNS', 'DEFAULT_FRACTIONS', 'convergence', 'convergence_command', 'plot_convergence', 'score_errors'],
    'memoxr.high_influence': ['NPZ_KEYS', 'PAIR_COLUMNS', 'Search', 'block_pairs', 'pairs', 'pairs_command', 'plan_search', 'write_pairs'],
    'memoxr.sample_order': ['DIGEST_BYTES', 'HASH_BLOCK_BYTES', 'MAPPING_SUFFIXES', 'OrderAlignment', 'align_order', 'align_order_command', 'content_digests', 'read_samples', 'write_mapping'],
    'memoxr.legacy': ['SEED_KEYS', 'read_seed_npz', 'write_seed_npz'],
    'memoxr.compare': ['DETECTION_COLUMNS', 'compare_command', 'compare_scores', 'open_source'],
    'memoxr.synthetic': ['make_fz_arrays', 'make_fz_npz'],
    'memoxr.workflows': ['DEMO_FILES', 'Result', 'calculate', 'demo', 'demo_facts', 'demo_report', 'load_scores', 'save_scores', 'update_csv'],
    'memoxr.convert': ['COMPRESSOR', 'REMOTE_SHARD_MB', 'convert_npz', 'influence_encoding', 'open_fz_npz'],
}


@pytest.mark.parametrize("module", sorted(OLD_API))
def test_old_public_names_resolve_from_their_old_paths(module):
    old = importlib.import_module(module)
    missing = [name for name in OLD_API[module] if not name.endswith("_command") and not hasattr(old, name)]
    assert missing == []


def test_gathered_old_modules_find_each_name_where_it_lives():
    import memoxr.plan
    from memoxr.dynamics.plan import plan_ingest
    from memoxr.io.location import with_timeouts

    assert memoxr.plan.plan_ingest is plan_ingest
    from memoxr.storage import with_timeouts as old

    assert old is with_timeouts
    with pytest.raises(AttributeError, match="'memoxr.plan' has no attribute 'nope'"):
        memoxr.plan.nope  # noqa: B018


def test_scheduler_is_an_attribute_of_memoxr():
    import subprocess
    import sys

    code = "import memoxr; print(memoxr.scheduler.use_scheduler.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "memoxr.compute.scheduler"
