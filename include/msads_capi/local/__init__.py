"""Local tooling: ``make run`` (Airflow on this machine), ``make demo`` and the loader of
``airflow_settings.yaml``. Nothing here runs inside a DAG.
"""
