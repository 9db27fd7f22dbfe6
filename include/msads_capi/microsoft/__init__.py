"""The Microsoft Advertising client: bingads (SOAP) for the API, msal for tokens. No Airflow."""
