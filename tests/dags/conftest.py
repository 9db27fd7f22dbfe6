"""Airflow for the DAG tests: a throw-away metadata database and the msads_api pool."""

from __future__ import annotations

from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="session")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


@pytest.fixture(scope="session")
def airflow_db():
    from airflow.models.pool import Pool
    from airflow.utils import db

    db.initdb()
    Pool.create_or_update_pool("msads_api", slots=2, description="tests",
                               include_deferred=False)


@pytest.fixture
def run_dag(airflow_db, dagbag):
    """``dag.test()`` a project DAG with retries off; returns the finished DagRun."""

    def run(dag_id: str, **kwargs):
        dag = dagbag.dags[dag_id]
        for task in dag.tasks:
            task.retries = 0
        # DAG.test() in Airflow 3.3.2 crashes after a successful run of a DAG with a deadline
        # (apache/airflow#73428); `airflow dags test` leaves it out the same way (alerting.py).
        deadline, dag.deadline = dag.deadline, []
        try:
            return dag.test(**kwargs)
        finally:
            dag.deadline = deadline

    return run


def task_states(dag_run) -> dict:
    return {(ti.task_id, ti.map_index): ti.state for ti in dag_run.get_task_instances()}
