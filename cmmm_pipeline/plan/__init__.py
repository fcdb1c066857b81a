"""Forecasts and budget plans inside the data's support: the fitted response curves and their
bootstrap draws (`model`), a weekly plan's predicted KPI and incremental KPI (`forecast`), the
allocation of a budget across channels (`optimise`), and the plan file with its rules (`spec`)."""
