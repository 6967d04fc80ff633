-- The delivery store: what arrived, what it became, and every try to send it.
BEGIN;

-- One row per accepted webhook notification: the payload as received and the
-- key it was deduplicated under.
CREATE TABLE notifications (
    id          text        PRIMARY KEY,
    route       text        NOT NULL,
    format      text        NOT NULL,
    dedup_key   text        NOT NULL,
    payload     jsonb       NOT NULL,
    received_at timestamptz NOT NULL
);
CREATE INDEX notifications_dedup_key_idx ON notifications (dedup_key);

-- The deduplication window. One row per content key; it points at the
-- notification that opened the window and remembers its operationIds, so a
-- retry or an HA twin inside the window is answered with the original ids.
-- A row whose window has passed is taken over by the next notification with
-- the same content (a repeat reminder); expired rows are swept.
CREATE TABLE dedup_keys (
    key             text        PRIMARY KEY,
    notification_id text        NOT NULL,
    operation_ids   text[]      NOT NULL,
    expires_at      timestamptz NOT NULL
);
CREATE INDEX dedup_keys_expires_at_idx ON dedup_keys (expires_at);

-- Every duplicate received (Alertmanager retries, HA peers), for the audit.
CREATE TABLE duplicates (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id text        NOT NULL REFERENCES notifications (id),
    received_at     timestamptz NOT NULL
);
CREATE INDEX duplicates_notification_id_idx ON duplicates (notification_id, received_at);

-- One row per message to send: a notification rendered for one conversation
-- (one part of it, when the text had to be split). operation_id is the
-- stable id the audit and the API use; UCWA limits operationIds to 50 ASCII
-- characters.
CREATE TABLE deliveries (
    operation_id    text        PRIMARY KEY
                                CHECK (operation_id ~ '^[A-Za-z0-9._-]{1,50}$'),
    notification_id text        NOT NULL REFERENCES notifications (id),
    route           text        NOT NULL,
    conversation    text        NOT NULL,
    recipient       text        NOT NULL,
    subject         text        NOT NULL DEFAULT '',
    importance      text        NOT NULL DEFAULT 'Normal',
    part            integer     NOT NULL DEFAULT 1 CHECK (part >= 1),
    parts           integer     NOT NULL DEFAULT 1 CHECK (parts >= part),
    text            text        NOT NULL,
    state           text        NOT NULL DEFAULT 'pending'
                                CHECK (state IN ('pending', 'sending', 'delivered', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    lease_until     timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    delivered_at    timestamptz
);
-- Audit listing: newest first, optionally filtered by one dimension.
CREATE INDEX deliveries_created_at_idx ON deliveries (created_at DESC, operation_id DESC);
CREATE INDEX deliveries_route_idx ON deliveries (route, created_at DESC, operation_id DESC);
CREATE INDEX deliveries_conversation_idx ON deliveries (conversation, created_at DESC, operation_id DESC);
CREATE INDEX deliveries_state_idx ON deliveries (state, created_at DESC, operation_id DESC);
CREATE INDEX deliveries_notification_id_idx ON deliveries (notification_id);
-- The queue: due work only, so the index stays small however long the history.
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at, operation_id)
    WHERE state IN ('pending', 'sending');

-- One row per try to send a delivery, kept for the audit trail.
CREATE TABLE attempts (
    id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operation_id      text        NOT NULL REFERENCES deliveries (operation_id),
    attempt           integer     NOT NULL,
    ucwa_operation_id text        NOT NULL,
    outcome           text        NOT NULL,
    pool              text        NOT NULL DEFAULT '',
    http_status       integer,
    ucwa_code         text        NOT NULL DEFAULT '',
    ucwa_subcode      text        NOT NULL DEFAULT '',
    reason            text        NOT NULL DEFAULT '',
    error             text        NOT NULL DEFAULT '',
    latency_ms        double precision NOT NULL DEFAULT 0,
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz NOT NULL,
    UNIQUE (operation_id, attempt)
);

COMMIT;
