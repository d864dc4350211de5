"""The configuration loader: sections, strict types, precedence, checks, and its messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloud_tasks.config import MAX_CONFIG_BYTES, load_config
from cloud_tasks.domain.options import JobConfig
from cloud_tasks.exceptions import ConfigError


def _load(text: str, name: str = "c.yml", **kwargs: Any) -> JobConfig:
    Path(name).parent.mkdir(parents=True, exist_ok=True)
    Path(name).write_text(text, encoding="utf-8")
    return load_config(name, **kwargs)


def _error(text: str, name: str = "c.yml", **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        _load(text, name, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- every malformed case names the exact path and the file ------------------------------

BAD_CASES = [
    ("gcp:\n  max_instances: 2.5\n", "gcp.max_instances: expected an integer, got 2.5 (c.yml)"),
    ("gcp:\n  max_instance: 5\n", "gcp.max_instance: unknown option; did you mean max_instances?"),
    ("run:\n  use_spot: 'no'\n", "run.use_spot: expected true or false, got 'no' (c.yml)"),
    ("run:\n  use_spot: no\n", "run.use_spot: expected true or false, got 'no' (c.yml)"),
    ("run:\n  use-spot: yes\n", "run.use_spot: expected true or false, got 'yes' (c.yml)"),
    ("run:\n  max_instances: true\n", "run.max_instances: expected an integer, got true"),
    ("run:\n  max_instances: '5'\n", "run.max_instances: expected an integer, got '5'"),
    ("run:\n  max_instances: null\n", "run.max_instances: expected an integer, got null"),
    ("run:\n  max_runtime: fast\n", "run.max_runtime: expected a number, got 'fast'"),
    ("run:\n  max_runtime: .nan\n", "run.max_runtime: expected a finite number, got nan"),
    ("run:\n  image: 5\n", "run.image: expected a string, got 5 (c.yml)"),
    ("run:\n  image: ''\n", "run.image: must not be empty (c.yml)"),
    ("aws:\n  instance_types: [m5, 3]\n", "aws.instance_types[1]: expected a string, got 3"),
    ("aws:\n  instance_types: {a: 1}\n", "aws.instance_types: expected a string or a list"),
    ("aws:\n  instance_types: ['n2-(']\n", "aws.instance_types[0]: 'n2-(' is not a valid regular"),
    ("run:\n  architecture: amd64\n", "run.architecture: 'amd64' is not one of x86_64, arm64"),
    (
        "run:\n  max-instances: 1\n  max_instances: 2\n",
        "run.max_instances: given twice (as max-instances and max_instances); keep one (c.yml)",
    ),
    ("run:\n  max_cpu: 1\n  max_cpu: 2\n", "c.yml, line 3, column 3: invalid YAML: key 'max_cpu'"),
    ("run:\n  max_cpu: [1\n", "c.yml, line 3, column 1: invalid YAML:"),
    ("gcp: [1, 2\n", "c.yml, line 2, column 1: invalid YAML:"),
    ("- a\n- b\n", "top level: expected a mapping of sections (provider, run, aws, gcp"),
    ("max_instances: 5\n", "max_instances: options belong in a section: put it under run:"),
    ("gpc:\n  zone: x\n", "gpc: unknown section; did you mean gcp? (sections: provider, run"),
    ("run: 5\n", "run: expected a mapping of options, got 5 (c.yml)"),
    ("run:\n  3: x\n", "run: option name 3 is not a name (c.yml)"),
    ("provider: gpc\n", "provider: unknown provider 'gpc'; did you mean gcp? (providers: aws"),
    ("provider: [aws]\n", "provider: expected a provider name, got ['aws'] (c.yml)"),
    ("run:\n  job_id: abc\n", "run.job_id: job_id is a provider option, not a run option"),
    ("gcp:\n  access_key: K\n", "gcp.access_key: access_key is an AWS option; move it to the aws:"),
    ("aws:\n  project_id: p\n", "aws.project_id: project_id is a GCP option; move it to the gcp:"),
    ("local:\n  credentials_file: f\n", "local.credentials_file: credentials_file is a GCP option"),
    ("gcp:\n  catalog: aws\n", "gcp.catalog: catalog is a memory option; move it to the memory:"),
    ("run:\n  secret_key: s\n", "run.secret_key: secret_key is a provider option"),
    ("gcp:\n  job_id: MyJob\n", "gcp.job_id: 'MyJob' must start with a lowercase letter (c.yml)"),
    ("gcp:\n  job_id: 1job\n", "gcp.job_id: '1job' must start with a lowercase letter"),
    ("gcp:\n  job_id: my_job\n", "gcp.job_id: 'my_job' may contain only lowercase letters, digits"),
    (
        "gcp:\n  job_id: abcdefghijklmnopqrstuvwxy\n",
        "gcp.job_id: 'abcdefghijklmnopqrstuvwxy' is 25 characters long; the limit is 24",
    ),
    ("gcp:\n  job_id: ''\n", "gcp.job_id: must not be empty (c.yml)"),
    (
        "run:\n  max_total_price_per_hour: -1\n",
        "run.max_total_price_per_hour: must not be negative",
    ),
    ("aws:\n  min_instances: -2\n", "aws.min_instances: must not be negative, got -2 (c.yml)"),
    (
        "run:\n  cpus_per_task: 0\n",
        "run.cpus_per_task: must be from 0.01 to 10000 vCPUs, got 0 (c.yml)",
    ),
    (
        "run:\n  min_cpu: 8\n  max_cpu: 4\n",
        "run.max_cpu: min_cpu=8 is greater than max_cpu=4 (min_cpu from run.min_cpu) (c.yml)",
    ),
    (
        "provider: gcp\nrun:\n  min_cpu: 8\ngcp:\n  max_cpu: 4\n",
        "gcp.max_cpu: min_cpu=8 is greater than max_cpu=4 (min_cpu from run.min_cpu) (c.yml)",
    ),
    (
        "run:\n  min_instances: 20\n",
        "run.min_instances: min_instances=20 is greater than max_instances=10 "
        "(max_instances from the default) (c.yml)",
    ),
    (
        "run:\n  min_total_price_per_hour: 5\n  max_total_price_per_hour: 2\n",
        "run.max_total_price_per_hour: min_total_price_per_hour=5.0 is greater than",
    ),
    (
        "provider: gcp\ngcp:\n  region: us-east1\n  zone: us-central1-a\n",
        "gcp.zone: zone us-central1-a is in region us-central1, not in region us-east1 "
        "(gcp.region); fix one or drop region (c.yml)",
    ),
    (
        "provider: aws\naws:\n  region: us-west-2\n  zone: us-east-1a\n",
        "aws.zone: zone us-east-1a is in region us-east-1, not in region us-west-2",
    ),
    (
        "gcp:\n  startup_script: echo\n  startup_script_file: s.sh\n",
        "gcp: give startup_script or startup_script_file, not both (c.yml)",
    ),
    (
        "provider: gcp\ngcp:\n  startup_script_file: nothere.sh\n",
        "gcp.startup_script_file: file ",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CASES)
def test_bad_configuration_names_path_and_file(text: str, expected: str) -> None:
    assert expected in _error(text)


def test_missing_startup_script_file_names_the_resolved_path() -> None:
    message = _error("provider: gcp\ngcp:\n  startup_script_file: nothere.sh\n", "sub/c.yml")
    expected = Path("sub/nothere.sh").resolve()
    assert message == f"gcp.startup_script_file: file {expected} not found (sub/c.yml)"


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match=r"^nope\.yml: configuration file not found"):
        load_config("nope.yml")


def test_directory_is_not_a_file() -> None:
    Path("d.yml").mkdir()
    with pytest.raises(ConfigError, match=r"^d\.yml: is a directory"):
        load_config("d.yml")


def test_file_larger_than_the_cap_is_refused() -> None:
    Path("big.yml").write_text("# " + "x" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match=r"^big\.yml: configuration file is larger than 1 MB"):
        load_config("big.yml")


def test_binary_file_is_refused() -> None:
    Path("bin.yml").write_bytes(b"\xff\xfe\x00garbage\x80")
    with pytest.raises(ConfigError, match=r"^bin\.yml: not UTF-8 text"):
        load_config("bin.yml")


def _bomb(levels: int = 9) -> list[str]:
    """YAML anchors whose full expansion has 10**levels strings ("billion laughs")."""
    lines = ["  - &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"  - &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return lines


def test_alias_bomb_in_an_option_gives_a_short_error() -> None:
    text = "run:\n  instance_types:\n" + "\n".join(_bomb()) + "\n"
    message = _error(text)
    assert message.startswith("run.instance_types[0]: expected a string, got [")
    assert len(message) < 300


def test_alias_bomb_where_a_scalar_is_expected_gives_a_short_error() -> None:
    text = "run:\n  cpu_family:\n" + "\n".join(_bomb()) + "\n"
    message = _error(text)
    assert message.startswith("run.cpu_family: expected a string, got [[")
    assert len(message) < 300


# --- values, sections and defaults -------------------------------------------------------


def test_empty_file_gives_defaults() -> None:
    config = _load("")
    assert config.provider == "local"
    assert config.run.limits.max_instances == 10
    assert config.run.limits.max_total_price_per_hour == 10.0
    assert config.run.retry.max_attempts == 5
    assert config.notices == ()
    assert config.source == "c.yml"


def test_no_file_gives_defaults() -> None:
    config = load_config(None)
    assert config.provider == "local"
    assert config.source is None
    assert config.section == "local"


def test_comment_only_file_gives_defaults() -> None:
    assert _load("# nothing yet\n").run.constraints.architecture == "x86_64"


def test_flat_keys_reach_their_sub_objects() -> None:
    config = _load(
        "run:\n"
        "  max_instances: 3\n"
        "  min_cpu: 2\n"
        "  retry_on_exit: true\n"
        "  max_runtime: 10\n"
        "  instance_types: [n2-, ^e2-]\n"
        "  boot_disk_types: pd-ssd\n"
        "  max_total_price_per_hour: null\n"
    )
    assert config.run.limits.max_instances == 3
    assert config.run.constraints.min_cpu == 2
    assert config.run.retry.retry_on_exit is True
    assert config.run.max_runtime == 10.0
    assert isinstance(config.run.max_runtime, float)
    assert config.run.constraints.instance_types == ("n2-", "^e2-")
    assert config.run.constraints.boot_disk_types == ("pd-ssd",)
    assert config.run.limits.max_total_price_per_hour is None


def test_dashes_and_underscores_are_the_same_key() -> None:
    config = _load("run:\n  max-instances: 4\n  retry-on-timeout: TRUE\n")
    assert config.run.limits.max_instances == 4
    assert config.run.retry.retry_on_timeout is True


def test_provider_name_is_case_insensitive() -> None:
    assert _load("provider: GCP\n").provider == "gcp"
    assert _load("provider: gcp\n", provider_override="AWS").provider == "aws"


def test_precedence_and_one_notice_per_override() -> None:
    config = _load(
        "provider: gcp\nrun:\n  min_cpu: 2\n  max_cpu: 16\n  max_instances: 3\n"
        "gcp:\n  min_cpu: 8\n  max_cpu: 8\naws:\n  min_cpu: 1\n",
        cli_overrides={"max_cpu": 12, "use_spot": True},
    )
    assert config.run.constraints.min_cpu == 8
    assert config.run.constraints.max_cpu == 12
    assert config.run.limits.max_instances == 3
    assert config.run.constraints.use_spot is True
    assert config.notices == (
        "gcp.min_cpu=8 overrides run.min_cpu=2",
        "gcp.max_cpu=8 overrides run.max_cpu=16",
        "--max-cpu=12 overrides gcp.max_cpu=8",
    )


def test_a_flag_not_passed_never_overrides() -> None:
    config = _load("run:\n  max_instances: 3\n", cli_overrides={})
    assert config.run.limits.max_instances == 3
    assert config.notices == ()


def test_same_value_is_not_reported_as_override() -> None:
    config = _load("run:\n  max_cpu: 4\nlocal:\n  max_cpu: 4\n", cli_overrides={"max_cpu": 4})
    assert config.notices == ()


def test_other_provider_sections_are_validated_but_not_used() -> None:
    config = _load("provider: aws\ngcp:\n  max_instances: 2\n")
    assert config.run.limits.max_instances == 10
    assert "gcp.max_instances: expected an integer" in _error(
        "provider: aws\ngcp:\n  max_instances: x\n"
    )


def test_cli_override_errors_name_the_flag_without_the_file() -> None:
    message = _error("", cli_overrides={"max_instances": -1})
    assert message == "--max-instances: must not be negative, got -1"
    message = _error("", cli_overrides={"max_instances": 2.5})
    assert message == "--max-instances: expected an integer, got 2.5"


def test_cli_min_max_conflict_blames_the_flag() -> None:
    message = _error("run:\n  min_cpu: 8\n", cli_overrides={"max_cpu": 4})
    assert message == "--max-cpu: min_cpu=8 is greater than max_cpu=4 (min_cpu from run.min_cpu)"


def test_cli_provider_option_for_another_provider_is_an_error() -> None:
    message = _error("provider: aws\n", cli_overrides={"project_id": "p"})
    assert message == (
        "--project-id: applies only to the GCP provider (this configuration uses the aws: section)"
    )


def test_unknown_cli_override_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="not_an_option"):
        load_config(None, cli_overrides={"not_an_option": 1})


def test_unknown_provider_override() -> None:
    with pytest.raises(ConfigError, match=r"^--provider: unknown provider 'azure'"):
        load_config(None, provider_override="azure")


def test_provider_override_notice() -> None:
    config = _load("provider: gcp\n", provider_override="aws")
    assert config.provider == "aws"
    assert config.notices == ("--provider=aws overrides provider=gcp",)


def test_memory_stands_in_for_the_configured_cloud() -> None:
    config = _load(
        "provider: gcp\ngcp:\n  job_id: plan\n  project_id: p\n  max_instances: 7\n"
        "memory:\n  max_instances: 1\n",
        provider_override="memory",
    )
    assert config.provider == "memory"
    assert config.section == "gcp"
    assert config.run.limits.max_instances == 7
    assert config.provider_options.project_id == "p"
    assert config.provider_options.catalog == "gcp"
    assert config.notices[0].startswith("--provider=memory overrides provider=gcp")


def test_memory_on_its_own_uses_its_section_and_all_catalogs() -> None:
    config = _load("provider: memory\nmemory:\n  max_instances: 1\n")
    assert config.section == "memory"
    assert config.run.limits.max_instances == 1
    assert config.provider_options.catalog == "all"


def test_memory_catalog_file_is_relative_to_the_config_file() -> None:
    Path("conf").mkdir()
    Path("conf/cat.json").write_text("[]")
    config = _load("provider: memory\nmemory:\n  catalog: cat.json\n", "conf/c.yml")
    assert config.provider_options.catalog == str(Path("conf/cat.json").resolve())
    message = _error("provider: memory\nmemory:\n  catalog: nope.json\n", "conf/c.yml")
    assert message.startswith("memory.catalog: 'nope.json' is neither aws, gcp, all nor an")


def test_region_is_derived_from_zone() -> None:
    gcp = _load("provider: gcp\ngcp:\n  zone: us-central1-a\n")
    assert gcp.provider_options.region == "us-central1"
    aws = _load("provider: aws\naws:\n  zone: us-east-1b\n")
    assert aws.provider_options.region == "us-east-1"
    same = _load("provider: aws\naws:\n  zone: us-west-2a\n  region: us-west-2\n")
    assert same.provider_options.region == "us-west-2"


def test_provider_specific_keys_in_their_sections() -> None:
    config = _load(
        "provider: aws\naws:\n  access_key: AK\n  secret_key: SK\n"
        "gcp:\n  project_id: p\n  service_account: sa@p\n"
    )
    assert config.provider_options.access_key == "AK"
    assert config.provider_options.project_id is None
    assert "SK" not in repr(config)


def test_db_file_defaults_to_job_id() -> None:
    assert _load("local:\n  job_id: abc\n").run.db_file == "abc.db"
    assert _load("local:\n  job_id: abc\n  db_file: x.db\n").run.db_file == "x.db"


# --- startup script ----------------------------------------------------------------------


def test_startup_script_file_is_read_relative_to_the_config_file() -> None:
    Path("proj").mkdir()
    Path("proj/start.sh").write_text("#!/bin/bash\necho hi\n")
    config = _load("provider: gcp\ngcp:\n  startup_script_file: start.sh\n", "proj/c.yml")
    assert config.run.startup_script == "#!/bin/bash\necho hi\n"
    assert config.run.startup_script_file == str(Path("proj/start.sh").resolve())


def test_startup_script_file_flag_is_relative_to_the_working_directory() -> None:
    Path("proj").mkdir()
    Path("here.sh").write_text("echo here\n")
    config = _load("", "proj/c.yml", cli_overrides={"startup_script_file": "here.sh"})
    assert config.run.startup_script == "echo here\n"


def test_startup_script_in_a_higher_section_replaces_the_other_form() -> None:
    Path("s.sh").write_text("echo file\n")
    config = _load(
        "run:\n  startup_script: echo inline\ngcp:\n  startup_script_file: s.sh\nprovider: gcp\n"
    )
    assert config.run.startup_script == "echo file\n"
    assert config.notices == ("gcp.startup_script_file overrides run.startup_script",)
    config = _load("run:\n  startup_script_file: s.sh\nlocal:\n  startup_script: echo x\n")
    assert config.run.startup_script == "echo x"
    assert config.run.startup_script_file is None


def test_unreadable_startup_script_file() -> None:
    Path("dir.sh").mkdir()
    message = _error("run:\n  startup_script_file: dir.sh\n")
    assert message.startswith("run.startup_script_file: cannot read ")
    assert message.endswith("(c.yml)")


def test_binary_startup_script_file() -> None:
    Path("s.sh").write_bytes(b"\xff\xfe\x00\x81")
    message = _error("run:\n  startup_script_file: s.sh\n")
    assert message.startswith("run.startup_script_file: ")
    assert "is not UTF-8 text" in message


def test_credentials_file_is_relative_to_the_config_file() -> None:
    Path("conf").mkdir()
    config = _load("provider: gcp\ngcp:\n  credentials_file: key.json\n", "conf/c.yml")
    assert config.provider_options.credentials_file == str(Path("conf/key.json").resolve())
