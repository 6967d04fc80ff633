-- Who asked for each redelivery, and the console's sign-ins.
--
-- redeliveries records every redelivery: when, who asked (a console user,
-- or "api-token" for the audit API), through what (console, api, cli), the
-- state the delivery left, and the client's Idempotency-Key, so that the
-- same key answers the first request again instead of sending once more.
-- A key belongs to one delivery: a bulk redelivery may use one key for
-- all of its deliveries. Rows go with their delivery when the retention
-- sweep deletes it (ON DELETE CASCADE; the unique index leads with
-- operation_id, so the cascade finds them).
--
-- console_sessions holds the console's signed-in sessions: the cookie is
-- signed, and a session ends for good when its row goes (sign-out), on
-- every replica at once.
--
-- pg_trgm serves the console's search over alert names and summaries
-- (000005 builds the index). It is a trusted extension: the database's
-- owner may create it.
BEGIN;

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE redeliveries (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operation_id    text        NOT NULL REFERENCES deliveries (operation_id) ON DELETE CASCADE,
    requested_at    timestamptz NOT NULL,
    requested_by    text        NOT NULL,
    via             text        NOT NULL,
    previous_state  text        NOT NULL,
    idempotency_key text,
    UNIQUE (operation_id, idempotency_key)
);

CREATE TABLE console_sessions (
    id         text        PRIMARY KEY,
    user_name  text        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires_at_idx ON console_sessions (expires_at);

COMMIT;
