"""Resources shared by the assets: where the config lives and where outputs go."""


from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster import ConfigurableResource
from dagster_duckdb import DuckDBResource

from cmmm_pipeline.core.config import PipelineConfig
from cmmm_pipeline.core.loading import load_config


class CmmmSettings(ConfigurableResource):
    """The run's config file and output folder (report.html, estimates.csv, ...)."""

    config_path: str
    output_dir: str

    def load(self) -> PipelineConfig:
        return load_config(self.config_path)

    def output_path(self) -> Path:
        path = Path(self.output_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path


class WarehouseResource(DuckDBResource):
    """The DuckDB warehouse; its folder is created on first use (a fresh checkout has no cmmm_output/)."""

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self.database not in ("", ":memory:") and not self.database.startswith("md:"):
            Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        with super().get_connection() as con:
            yield con
