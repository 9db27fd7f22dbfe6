-- The rotating Microsoft refresh token of each connection (Microsoft profile), encrypted with
-- the Fernet key, so the integration outlives the 90-day token life and every worker uses the
-- newest token. Rows are locked FOR UPDATE while a refresh is in flight.
CREATE TABLE msads.oauth_tokens (
    conn_id               text PRIMARY KEY,
    refresh_token_enc     text,
    seed_fingerprint      text,          -- sha256 of the connection's own refresh token, if any
    access_token_enc      text,
    access_expires_at     timestamptz,
    refreshed_at          timestamptz,   -- last successful refresh
    refresh_token_issued_at timestamptz, -- when the stored refresh token was issued
    profile               text,          -- who signed in (name or e-mail), for `msads auth status`
    last_error            text,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
