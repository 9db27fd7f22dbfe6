"""The Microsoft Advertising client: the msads REST SDK for the API, msal for tokens. No Airflow."""
