"""The upload pipeline: claim → plan → hash → upload per account → record and summarise.

Each stage is a plain function over the warehouse keyed by the run id, so the DAG, the demo,
the benchmarks and the tests run the same code. Stages read their work from the ledger
(``msads.results``) and the outbox, never from XCom, so any of them can be re-run.
"""

# What every upload imports, worth importing once in a process before it starts or forks the
# processes that upload. The REST SDK is most of it: its package builds all its model classes on
# import, about 2.3 s of CPU (``python -X importtime -c "import openapi_client"``). Preloaded
# by ``make run``'s forkserver and the Celery workers (include/msads_capi/local) and by
# ``run_once``'s upload worker processes (:mod:`.parallel`).
WARM_MODULES = ("openapi_client", "msal", "psycopg", "pandas")
