"""docs/kpis.md is the catalogue's own words: regenerate it with `make kpi-docs` when a definition changes."""

from __future__ import annotations

from dev.kpi_docs import PAGE, render
from services.queries.kpis import CATALOGUE, FAMILIES


def test_the_kpi_page_says_what_the_catalogue_says() -> None:
    assert PAGE.read_text(encoding="utf-8") == render(), "docs/kpis.md is behind the catalogue: run make kpi-docs"


def test_every_kpi_has_a_definition_a_family_and_a_drill_down_or_counts_stock() -> None:
    for kpi in CATALOGUE.values():
        assert len(kpi.definition) > 40, kpi.id
        family = FAMILIES[kpi.family]
        assert kpi.id in family.drill or kpi.group == "stock", kpi.id
