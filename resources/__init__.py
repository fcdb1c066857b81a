"""What the Dagster assets and the asset checks share: the run's resources (the parsed config and the
warehouse with its run lock), the IO manager that carries typed values between steps through the
run's staging schema, the step values it carries, and the UI metadata helpers.

`assets/` and `data_checks/` both import from here and never from each other.
"""
