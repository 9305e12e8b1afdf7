"""docs/configuration.md and the Settings model agree: its table is the one maas_local.config_doc generates."""

from __future__ import annotations

from pathlib import Path

from maas_core.training_jobs import TrainingSettings
from maas_local import config_doc

ROOT = Path(__file__).resolve().parents[2]


def test_the_pages_table_is_generated_from_settings_and_the_template() -> None:
    """Given docs/configuration.md, then its settings table is exactly what Settings, TrainingSettings and
    template.yaml give today (run python -m maas_local.config_doc --write after changing either)."""
    assert config_doc.page_table(config_doc.PAGE.read_text(encoding="utf-8")) == config_doc.render()
    assert config_doc.main(["--check"]) == 0


def test_every_setting_has_its_row() -> None:
    """Given every field of the settings models, then the page has a row naming its variable, with the
    parameter that sets it when the template sets it from one."""
    table = config_doc.page_table((ROOT / "docs" / "configuration.md").read_text(encoding="utf-8"))
    rows = {line.split("|")[1].strip(" `"): line for line in table.splitlines()[2:]}
    assert set(rows) == {config_doc.env_var(name) for name in TrainingSettings.model_fields}
    assert "parameter `MaxRecordsPerRequest`" in rows["MAAS_MAX_RECORDS"]
    assert "parameter `AuthMode`" in rows["MAAS_AUTH_MODE"]
    assert "the code's default" in rows["MAAS_DEADLINE_MARGIN_MS"] and "≤ 10000" in rows["MAAS_DEADLINE_MARGIN_MS"]


def test_a_stale_table_is_found() -> None:
    """Given a table that misses a row, then --check's comparison finds it (the test above can fail)."""
    table = config_doc.render()
    stale = "\n".join(line for line in table.splitlines() if "MAAS_ORT_THREADS" not in line)
    page = f"# Configuration\n\n{config_doc.BEGIN}\n{stale}\n{config_doc.END}\n"
    assert config_doc.page_table(page) != table
