"""The bodies of the DAGs' tasks: plain functions the DAG files call, and how errors become task
states. With ``hooks/`` and ``local/``, the only part of the product package that may import
Airflow.
"""
