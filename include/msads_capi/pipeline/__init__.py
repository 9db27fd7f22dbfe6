"""The upload pipeline: claim → plan → hash → upload per account → record and summarise.

Each stage is a plain function over the warehouse keyed by the run id, so the DAG, the demo,
the benchmarks and the tests run the same code. Stages read their work from the ledger
(``msads.results``) and the outbox, never from XCom, so any of them can be re-run.
"""
