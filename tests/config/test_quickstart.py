"""The Quick Start's Step 5 configuration loads exactly as the guide promises."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from cloud_tasks.config import load_config

QUICKSTART = Path(__file__).resolve().parents[3] / "shared" / "seed" / "quickstart.rst"

# The guide's text, used when the guide is not next to the repository.
_STEP5_COPY = """\
provider: gcp
gcp:
  job_id: my-processing-job
  startup_script_file: startup_script.sh
  max-instances: 5
  max-cpu: 8
  min-memory-per-cpu: 4  # GB
  max-total-price-per-hour: 1.00  # USD/hour
  instance-types: "n2-"
"""


def _yaml_blocks(rst: str) -> list[str]:
    """The bodies of every ``.. code-block:: yaml`` directive, dedented."""
    blocks = []
    for match in re.finditer(r"^( *)\.\. code-block:: yaml\n\n((?:\1 +.*\n|\n)+)", rst, re.M):
        blocks.append(textwrap.dedent(match.group(2)))
    return blocks


def step5_config() -> str:
    if QUICKSTART.is_file():
        blocks = [b for b in _yaml_blocks(QUICKSTART.read_text()) if "provider:" in b]
        assert len(blocks) == 1, "the Quick Start has one configuration example"
        return blocks[0]
    return _STEP5_COPY


def test_step5_matches_the_inline_copy_when_the_guide_is_present() -> None:
    assert step5_config().strip() == _STEP5_COPY.strip()


def test_step5_config_loads_with_the_promised_values() -> None:
    Path("myconfig.yml").write_text(step5_config())
    Path("startup_script.sh").write_text("#!/bin/bash\npython3 my_worker.py\n")
    config = load_config("myconfig.yml", cli_overrides={})
    assert config.provider == "gcp"
    assert config.provider_options.job_id == "my-processing-job"
    assert config.run.limits.max_instances == 5
    assert config.run.constraints.max_cpu == 8
    assert config.run.constraints.min_memory_per_cpu == 4
    assert config.run.limits.max_total_price_per_hour == 1.0
    assert config.run.constraints.instance_types == ("n2-",)
    assert config.run.startup_script == "#!/bin/bash\npython3 my_worker.py\n"
    assert config.notices == ()
