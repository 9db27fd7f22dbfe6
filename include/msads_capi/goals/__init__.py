"""Goal refresh: which accounts to refresh, each account's status and offline goals as Microsoft
lists them (``refresh``), and how they are recorded with what changed (``records``).
"""
