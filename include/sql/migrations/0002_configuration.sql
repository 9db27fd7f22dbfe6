-- Configuration owned by the pipeline, edited with `msads space|capi|account|map`.
CREATE TABLE msads.spaces (
    space_id      text PRIMARY KEY CHECK (space_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    name          text NOT NULL,
    currency_code char(3) NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    phone_region  char(2) NOT NULL CHECK (phone_region ~ '^[A-Z]{2}$'),
    capi_enabled  boolean NOT NULL DEFAULT false,
    capi_changed_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- A Microsoft Advertising ad account linked to one Space.
CREATE TABLE msads.accounts (
    account_id    bigint PRIMARY KEY CHECK (account_id > 0),
    customer_id   bigint NOT NULL CHECK (customer_id > 0),
    space_id      text NOT NULL REFERENCES msads.spaces (space_id),
    conn_id       text NOT NULL DEFAULT 'msads_default',
    name          text,
    number        text,
    status        text NOT NULL DEFAULT 'active'
                  CHECK (status IN ('active', 'paused', 'auth_failed', 'not_found')),
    status_reason text,
    status_changed_at timestamptz NOT NULL DEFAULT now(),
    goals_fetched_at  timestamptz,
    linked_at     timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounts_space_idx ON msads.accounts (space_id);

-- Offline conversion goals as last fetched from Microsoft (or created with `msads goal add`).
CREATE TABLE msads.goals (
    account_id      bigint NOT NULL REFERENCES msads.accounts (account_id) ON DELETE CASCADE,
    goal_id         bigint NOT NULL,
    name            text NOT NULL,
    status          text,
    scope           text,
    count_type      text,
    window_minutes  integer,
    revenue_type    text,
    revenue_value   numeric,
    revenue_currency char(3),
    created_at      timestamptz,          -- known only for goals we created; drives the 2-hour rule
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    missing_since   timestamptz,          -- set when a refresh no longer finds the goal
    PRIMARY KEY (account_id, goal_id)
);
CREATE INDEX goals_name_idx ON msads.goals (account_id, lower(name));

-- Which events go to which goal, and under which send rule.
CREATE TABLE msads.mappings (
    mapping_id  bigserial PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES msads.accounts (account_id),
    goal_id     bigint NOT NULL CHECK (goal_id > 0),
    goal_name   text,                     -- the goal's name when mapped (or last refreshed)
    event_name  text NOT NULL CHECK (length(event_name) BETWEEN 1 AND 200),
    send_rule   text NOT NULL DEFAULT 'all' CHECK (send_rule IN ('all', 'attributed_only')),
    enabled     boolean NOT NULL DEFAULT true,
    broken_reason text,                   -- set by the goal refresh when the goal vanished
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, goal_id, event_name)
);
CREATE INDEX mappings_event_idx ON msads.mappings (event_name);
