-- The delivery store: what arrived, what it became, and every try to send it.
BEGIN;

-- One row per accepted webhook notification: the payload as received and the
-- key it was deduplicated under.
CREATE TABLE notifications (
    id          text        PRIMARY KEY,
    route       text        NOT NULL,
    format      text        NOT NULL,
    -- The source's event type (X-GitHub-Event, X-Gitlab-Event), so a stored
    -- payload can be rendered again; empty for alertmanager and generic.
    event       text        NOT NULL DEFAULT '',
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
-- characters. seq orders the queue: per recipient, deliveries go out in seq
-- order, one at a time.
CREATE TABLE deliveries (
    operation_id    text        PRIMARY KEY
                                CHECK (operation_id ~ '^[A-Za-z0-9._-]{1,50}$'),
    seq             bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    notification_id text        NOT NULL REFERENCES notifications (id),
    route           text        NOT NULL,
    conversation    text        NOT NULL,
    recipient       text        NOT NULL,
    subject         text        NOT NULL DEFAULT '',
    importance      text        NOT NULL DEFAULT 'Normal',
    -- The alert group and its status, for supersession (resolved replaces a
    -- firing notification of the same group that was never sent).
    group_key       text        NOT NULL DEFAULT '',
    status          text        NOT NULL DEFAULT '',
    part            integer     NOT NULL DEFAULT 1 CHECK (part >= 1),
    parts           integer     NOT NULL DEFAULT 1 CHECK (parts >= part),
    text            text        NOT NULL,
    state           text        NOT NULL DEFAULT 'pending'
                                CHECK (state IN ('pending', 'sending', 'delivered', 'dead', 'uncertain', 'superseded')),
    -- attempts counts claims (every try); failures counts the tries that
    -- failed for this message's own sake and is what max_attempts caps.
    attempts        integer     NOT NULL DEFAULT 0,
    failures        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    lease_until     timestamptz,
    -- claim_gen is the session generation of the worker that claimed it:
    -- a newer session holder may take over rows of an older one at once.
    claim_gen       bigint      NOT NULL DEFAULT 0,
    -- claim_token names the finish that claimed this delivery as the
    -- recipient's next one, so a retry of that finish (its first answer
    -- lost) gets the same delivery back instead of stranding it.
    claim_token     text,
    -- resend: the next send carries the "(resent)" marker, because an
    -- earlier try may have reached the recipient unconfirmed.
    resend          boolean     NOT NULL DEFAULT false,
    superseded_by   text,
    last_error      text,
    created_at      timestamptz NOT NULL,
    -- queued_at is when the delivery last entered the queue (created, or
    -- redelivered); the age cap counts from it.
    queued_at       timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    delivered_at    timestamptz
);
-- Audit listing: newest first, optionally filtered by one dimension.
CREATE INDEX deliveries_created_at_idx ON deliveries (created_at DESC, operation_id DESC);
CREATE INDEX deliveries_route_idx ON deliveries (route, created_at DESC, operation_id DESC);
CREATE INDEX deliveries_conversation_idx ON deliveries (conversation, created_at DESC, operation_id DESC);
CREATE INDEX deliveries_state_idx ON deliveries (state, created_at DESC, operation_id DESC);
CREATE INDEX deliveries_notification_id_idx ON deliveries (notification_id);
-- The queue: unfinished work only, so the index stays small however long
-- the history; the head of each recipient's line is its lowest seq.
CREATE INDEX deliveries_queue_idx ON deliveries (recipient, seq)
    WHERE state IN ('pending', 'sending');
-- Queued resolved notifications, to find at claim time whether a firing one
-- is superseded.
CREATE INDEX deliveries_resolved_idx ON deliveries (recipient, group_key, seq)
    WHERE state = 'pending' AND status = 'resolved';

-- Which relay replica holds the UCWA session of a bot account. Exactly one
-- holder at a time: a holder renews its lease well before expires_at and
-- stops sending when it cannot; another replica takes over an expired
-- lease, and generation goes up with every change of holder.
CREATE TABLE sessions (
    account     text        PRIMARY KEY,
    holder      text        NOT NULL,
    generation  bigint      NOT NULL,
    acquired_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);

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
