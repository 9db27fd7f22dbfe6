"""The only part of the product package that imports Airflow: hooks and connection lookups."""
