"""The one IO manager: every step's value goes to the run's own staging schema in the DuckDB
warehouse, and comes back as the same type for the steps (and checks) downstream.

- A DataFrame is the table named after its asset (`raw_spend`).
- A step value (a frozen dataclass from `resources.values`) stores each DataFrame field as the
  table named after the field (`transformed_media`, `transform_parameters`, ...), so the warehouse
  tables the report, the CSVs and the docs name are the values themselves; its other fields
  (ChannelTransforms, networkx graphs, effect specs) are one typed JSON document (`resources.codec`).

An input whose asset this run did not materialise (a partial run launched from the UI) is read from
`published`, i.e. from the last run that passed every gate.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, Any

from dagster import ConfigurableIOManager, DagsterInvariantViolationError, InputContext, OutputContext

from cmmm_pipeline.core.errors import CmmmError
from cmmm_pipeline.data.markets import market_warehouse
from resources.settings import PARTITION_TAG, connect

if TYPE_CHECKING:
    import pandas as pd

DATAFRAME = "pandas.DataFrame"


def _type_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def split_value(step: str, value: Any) -> tuple[dict[str, pd.DataFrame], str, str]:
    """(tables, value type, document) for a step's value."""
    import pandas as pd

    from resources import codec

    if isinstance(value, pd.DataFrame):
        return {step: value}, DATAFRAME, ""
    if not (dataclasses.is_dataclass(value) and not isinstance(value, type)):
        raise TypeError(f"step {step!r} returned a {type(value).__name__}: return a DataFrame or a step value")
    tables = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)
              if isinstance(getattr(value, f.name), pd.DataFrame)}
    rest = {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.name not in tables}
    return tables, _type_name(type(value)), codec.dumps(rest)


def join_value(con: Any, schema: str, step: str, value_type: str, document: str) -> Any:
    """Inverse of `split_value`, reading the tables from `schema`."""
    from cmmm_pipeline.data import warehouse
    from resources import codec

    if value_type == DATAFRAME:
        return warehouse.read_table(con, step, schema)
    module, _, name = value_type.partition(":")
    if not module.startswith(codec.TRUSTED_MODULES):
        raise TypeError(f"refusing to rebuild {value_type!r}: not a class of this project")
    cls = getattr(importlib.import_module(module), name)
    fields = codec.loads(document)
    stored = set(warehouse.table_names(con, schema))
    for f in dataclasses.fields(cls):
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        if f.name not in fields and (f.name in stored or not has_default):
            fields[f.name] = warehouse.read_table(con, f.name, schema)
    return cls(**fields)  # a field added since the value was stored (published by an older run) takes its default


class StagingIOManager(ConfigurableIOManager):
    """Typed step values in the run's staging schema of the warehouse (`staging_<run id prefix>`)."""

    database: str

    def _path(self, context: InputContext | OutputContext) -> str:
        """The run's warehouse file: the market's own in a partitioned run (as WarehouseResource.path)."""
        try:
            market = context.step_context.dagster_run.tags.get(PARTITION_TAG)
        except DagsterInvariantViolationError:  # a context built outside a run (a direct call)
            market = None
        return str(market_warehouse(self.database, market)) if market else self.database

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        from cmmm_pipeline.data import warehouse

        if obj is None:  # an asset that only reports (MaterializeResult) stores nothing
            return
        step = context.asset_key.path[-1]
        tables, value_type, document = split_value(step, obj)
        with connect(self._path(context)) as con:
            warehouse.write_step(con, warehouse.staging_schema(context.run_id), step, tables, value_type, document)

    def load_input(self, context: InputContext) -> Any:
        import duckdb

        from cmmm_pipeline.data import warehouse

        step = context.asset_key.path[-1]
        upstream = context.upstream_output
        schemas = [warehouse.staging_schema(upstream.run_id)] if upstream is not None and _has_run(upstream) else []
        database = self._path(context)
        with connect(database) as con:
            for schema in [*schemas, warehouse.PUBLISHED]:
                stored = warehouse.read_step(con, schema, step)
                if stored is None:
                    continue
                try:
                    return join_value(con, schema, step, *stored)
                except (TypeError, KeyError, ValueError, duckdb.Error) as exc:  # written by an older version
                    raise CmmmError("step-input-missing", f"{database} {schema} step '{step}'",
                                    f"holds a value this version cannot read ({type(exc).__name__}).",
                                    "materialise the whole job once (the schedule or `cmmm run`), so every step "
                                    "is written by this version.") from exc
        raise CmmmError("step-input-missing", f"{database} step '{step}'",
                        "this run did not materialise it and no published run holds it.",
                        "materialise the whole job once (the schedule or `cmmm run`), then partial runs can "
                        "build on it.")


def _has_run(output: OutputContext) -> bool:
    try:
        return bool(output.run_id)
    except DagsterInvariantViolationError:  # raised when the output context carries no run id
        return False
