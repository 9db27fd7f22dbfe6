"""Running the project on Airflow locally: ``make run`` and the airflow_settings.yaml loader.

With ``hooks/``, the only part of the product package that may import Airflow.
"""
