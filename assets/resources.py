"""Resources shared by the assets: where the config lives and where outputs go."""


from pathlib import Path

from dagster import ConfigurableResource

from cmmm_pipeline.config import PipelineConfig, load_config


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
