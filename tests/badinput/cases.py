"""The bad-input corpus: every file in ``corpus/`` with what its error message must say.

A case names a file of the corpus (or one the test writes: ``GENERATED``) and the fragments
the one error line must contain besides the file's name: the key path (``local.max_cpu``) or
the task index, and the problem.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import attrs

CORPUS = Path(__file__).parent / "corpus"


@attrs.frozen
class Case:
    """One malformed file and the fragments its error line must contain."""

    kind: str  # "config" or "tasks"
    name: str
    fragments: tuple[str, ...]
    #: The worker runs task files too; it has no queue, so the message size limit is not its.
    worker: bool = True


def _c(name: str, *fragments: str) -> Case:
    return Case("config", name, fragments)


def _t(name: str, *fragments: str, worker: bool = True) -> Case:
    return Case("tasks", name, fragments, worker)


CONFIG_CASES: tuple[Case, ...] = (
    _c("wrong_type_float_for_int.yml", "local.max_instances", "expected an integer", "2.5"),
    _c("wrong_type_string_for_bool.yml", "local.use_spot", "expected true or false", "'no'"),
    _c("wrong_type_list_for_int.yml", "local.max_cpu", "expected an integer"),
    _c("wrong_type_string_for_number.yml", "local.max_runtime", "'1h'"),
    _c("wrong_type_number_for_list.yml", "local.instance_types", "expected a string or a list"),
    _c("unknown_key.yml", "local.max_instanses", "did you mean max_instances"),
    _c("unknown_section.yml", "lokal", "unknown section", "did you mean local"),
    _c("unknown_provider.yml", "provider", "unknown provider 'azure'"),
    _c("min_greater_than_max.yml", "local.max_cpu", "min_cpu=8 is greater than max_cpu=2"),
    _c(
        "min_greater_than_max_across_sections.yml",
        "run.max_instances",
        "min_instances=5 is greater than max_instances=2",
    ),
    _c("negative_count.yml", "local.max_instances", "must not be negative"),
    _c("nan_price.yml", "local.max_total_cost", "nan"),
    _c("zero_cpus_per_task.yml", "local.cpus_per_task", "greater than 0"),
    _c("bad_job_id_uppercase.yml", "local.job_id", "'MyJob'", "lowercase letter"),
    _c("bad_job_id_too_long.yml", "local.job_id", "the limit is 24"),
    _c("bad_job_id_glob.yml", "local.job_id", "'a*'", "not '*'"),
    _c("bad_job_id_comma.yml", "local.job_id", "'a,b'", "not ','"),
    _c("bad_job_id_quote.yml", "local.job_id", "not '\"'"),
    _c("bad_job_id_path.yml", "local.job_id", "'../x'"),
    _c("bad_queue_name_path.yml", "local.queue_name", "'../../etc/x'"),
    _c("bad_queue_name_glob.yml", "local.queue_name", "'q*'", "not '*'"),
    _c("bad_queue_name_filter.yml", "local.queue_name", "not ' ' '\"' '.' '='"),
    _c("both_startup_script_forms.yml", "local", "startup_script or startup_script_file, not both"),
    _c("missing_startup_script_file.yml", "local.startup_script_file", "not found"),
    _c("startup_script_file_is_a_directory.yml", "local.startup_script_file", "cannot read"),
    _c("top_level_list.yml", "top level", "expected a mapping of sections"),
    _c("section_not_mapping.yml", "local", "expected a mapping of options", "got 5"),
    _c("option_at_top_level.yml", "max_instances", "options belong in a section"),
    _c("provider_option_in_run.yml", "run.job_id", "provider option"),
    _c("aws_option_in_local.yml", "local.access_key", "AWS option"),
    _c("duplicate_key.yml", "line 6", "'max_instances' is given twice"),
    _c("duplicate_key_spellings.yml", "local.max_instances", "given twice"),
    _c("yaml_syntax_error.yml", "line 6", "invalid YAML"),
    _c("bad_regex.yml", "local.instance_types[0]", "not a valid regular expression"),
    _c("zone_region_mismatch.yml", "gcp.zone", "us-central1-a is in region us-central1"),
    _c("python_object_tag.yml", "line 5", "could not determine a constructor"),
    _c("non_string_key.yml", "local", "option name 1 is not a name"),
    _c("empty.yml", "job_id", "--job-id"),
    _c("billion_laughs.yml", "bombs", "unknown section"),
    _c("billion_laughs_in_value.yml", "local.instance_types[0]", "expected a string"),
    _c("binary_garbage.yml", "not UTF-8"),
    _c("deeply_nested.yml", "nested more than 100 levels deep", "line "),
    _c("missing_config.yml", "configuration file not found"),
    _c("too_large.yml", "larger than 1 MB"),
)

TASK_CASES: tuple[Case, ...] = (
    _t("empty.json", "the task file is empty"),
    _t("whitespace_only.json", "the task file is empty"),
    # A list without tasks: run and load_queue refuse it before creating any queue.
    _t("empty_list.json", "holds no tasks", worker=False),
    _t("empty.yaml", "the task file is empty"),
    _t("top_level_object.json", "line 1, column 1", "expected a JSON list", "object"),
    _t("top_level_string.json", "line 1", "expected a JSON list"),
    _t("top_level_mapping.yaml", "line 1", "expected a list of tasks", "mapping"),
    _t("top_level_scalar.yml", "line 1", "expected a list of tasks", "single value"),
    _t("missing_task_id.json", "task index 0", "missing key 'task_id'"),
    _t("missing_data.json", "task index 0", "missing key 'data'"),
    _t("unknown_key.json", "task index 0", "unknown key 'dta'", "did you mean 'data'"),
    _t("non_string_id_number.json", "task index 1", "task_id must be a string", "5"),
    _t("non_string_id_yaml_int.yaml", "task index 1", "line 3", "task_id must be a string"),
    _t("non_string_id_null.json", "task index 0", "task_id must be a string", "null"),
    _t("empty_task_id.json", "task index 0", "task_id must not be empty"),
    _t("data_not_mapping.json", "task index 0", "data must be a mapping", "list"),
    _t("element_not_mapping.json", "task index 1", "expected a mapping"),
    _t("element_null.yaml", "task index 1", "line 3", "got null"),
    _t("duplicate_ids.json", "task index 2", "duplicate task_id 'a'", "task index 0"),
    _t("duplicate_ids.yaml", "task index 1", "line 2", "duplicate task_id 'x'"),
    _t("trailing_comma.json", "task index 0", "trailing comma"),
    _t("truncated.json", "task index 1", "invalid JSON"),
    _t("text_after_list.json", "line 1", "unexpected text after the closing ']'"),
    _t("yaml_syntax_error.yaml", "line 2", "invalid YAML"),
    _t("date_in_data.yaml", "task index 0", "data.when", "is a date"),
    _t("non_string_key_in_data.yaml", "task index 0", "key 1 is not a string"),
    _t("python_object_tag.yaml", "task index 0", "could not determine a constructor"),
    _t("wrong_extension.txt", "unsupported task file extension '.txt'"),
    _t("no_extension", "unsupported task file extension"),
    _t("billion_laughs.yaml", "task index 0", "expands to more than 1000000 values"),
    _t("recursive_alias.yaml", "task index 0", "recursive"),
    _t("binary_garbage.json", "not UTF-8"),
    _t("binary_garbage.yaml", "not UTF-8"),
    _t("utf16.json", "not UTF-8"),
    _t("deeply_nested.json", "task index 0", "nested too deeply"),
    _t("deeply_nested.yaml", "task index 0", "line 2", "nested more than 100 levels deep"),
    _t("missing_tasks.json", "not found"),
    _t("two_megabyte_task.json", "262144-byte message limit", "huge", worker=False),
)


def _two_megabyte_task(path: Path) -> None:
    tasks = [{"task_id": "small", "data": {}}, {"task_id": "huge", "data": {"x": "y" * 2**21}}]
    path.write_text(json.dumps(tasks))


def _too_large_config(path: Path) -> None:
    head = 'provider: local\nlocal:\n  job_id: bad-input\n  startup_script: "exec true"\n'
    path.write_text(head + "# padding\n" * 120_000)


#: Cases written by the test rather than kept in the corpus (too large to keep, or missing on
#: purpose: no writer).
GENERATED: dict[str, Callable[[Path], None] | None] = {
    "two_megabyte_task.json": _two_megabyte_task,
    "too_large.yml": _too_large_config,
    "missing_config.yml": None,
    "missing_tasks.json": None,
}


def materialize(case: Case, directory: Path) -> Path:
    """Put the case's file in ``directory`` (or leave it missing) and return its path."""
    target = directory / case.name
    if case.name in GENERATED:
        writer = GENERATED[case.name]
        if writer is not None:
            writer(target)
        return target
    target.write_bytes((CORPUS / case.kind / case.name).read_bytes())
    return target
