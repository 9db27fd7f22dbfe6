"""The "Microsoft CAPI" page in the Airflow UI, without Airflow: what it shows (:mod:`.views`),
what its forms change (:mod:`.forms`), its HTML (:mod:`.page`) and the web app (:mod:`.app`).

The Airflow plugin (``plugins/msads_capi_plugin.py``) mounts the app and supplies who the user
is and what they may do (:mod:`include.msads_capi.hooks.console`)."""
