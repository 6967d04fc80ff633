-- Fills a relay database with realistic finished history, fast: plain
-- INSERT ... SELECT over generate_series, no client round trips.
--
--   psql "$DATABASE_URL" -v deliveries=5000000 -v days=30 -f deploy/bench/fill-history.sql
--
-- deliveries: how many deliveries (two per notification, one attempt each;
-- one notification in ten has a duplicate). They are spread evenly over
-- `days` days ending `ago` days before now (default 0), oldest first, and
-- have all finished: 98% delivered, 1% dead, 0.5% uncertain, 0.5%
-- superseded. `tag` (default hist) prefixes their ids, so the script can
-- run more than once on one database with different tags. Payloads are Alertmanager webhook
-- bodies of about 1 KB. The schema must be migrated (relay migrate up).
\set ON_ERROR_STOP on
\if :{?deliveries}
\else
\set deliveries 1000000
\endif
\if :{?days}
\else
\set days 30
\endif
\if :{?ago}
\else
\set ago 0
\endif
\if :{?tag}
\else
\set tag hist
\endif

BEGIN;
CREATE TEMP TABLE fill_params AS
SELECT (:deliveries / 2)::bigint AS n, (:days * interval '1 day') AS span,
       clock_timestamp() - :ago * interval '1 day' AS t0, :'tag'::text AS tag;

INSERT INTO notifications (id, route, format, event, dedup_key, body, received_at)
SELECT p.tag || lpad(g::text, 10, '0'), 'prod', 'alertmanager', '', md5(p.tag || g),
       convert_to(format(
'{"receiver":"relay-prod","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"%s","instance":"db-%s.prod:9100","job":"node","severity":"%s","team":"dba"},"annotations":{"summary":"%s on db-%s","description":"The filesystem /var/lib/postgresql on db-%s has less than 5%% space left (currently 3.2%%). At the current rate it fills up in about 4 hours.","runbook_url":"https://runbooks.example.com/disk-full"},"startsAt":"%s","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus.prod:9090/graph?g0.expr=node_filesystem_avail_bytes&g0.tab=1","fingerprint":"%s"}],"groupLabels":{"alertname":"%s"},"commonLabels":{"alertname":"%s","instance":"db-%s.prod:9100","job":"node","severity":"%s","team":"dba"},"commonAnnotations":{"summary":"%s on db-%s"},"externalURL":"http://alertmanager.prod:9093","version":"4","groupKey":"{}/{team=\"dba\"}:{alertname=\"%s\"}","truncatedAlerts":0}',
         a.name, g % 97, a.sev, a.name, g % 97, g % 97, to_char(t.at, 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
         substr(md5(g::text), 1, 16), a.name, a.name, g % 97, a.sev, a.name, g % 97, a.name), 'UTF8'),
       t.at
FROM fill_params p, generate_series(1, p.n) g,
     LATERAL (SELECT p.t0 - p.span * (1 - g::float8 / p.n) AS at) t,
     LATERAL (SELECT (ARRAY['DiskFull','HighLatency','InstanceDown','ReplicationLag','CertExpiring'])[1 + g % 5] AS name,
                     (ARRAY['critical','warning'])[1 + g % 2] AS sev) a;

INSERT INTO deliveries (operation_id, notification_id, route, conversation, recipient, subject, importance,
                        group_key, status, part, parts, text, state, attempts, failures, next_attempt_at,
                        created_at, queued_at, updated_at, delivered_at, last_error, alertname, group_status, receiver)
SELECT n.id || '-' || c, n.id, 'prod', conv, 'sip:' || conv || '@contoso.com', 'Production alerts', 'Normal',
       '{}/{team="dba"}:{alertname="' || a.name || '"}', 'firing', 1, 1,
       '[FIRING:1] ' || a.name || E'\n' || a.name || ' on db-' || (g % 97) || E'\nseverity: critical, instance: db-' || (g % 97) || '.prod:9100',
       st.state, 1, CASE WHEN st.state = 'dead' THEN 1 ELSE 0 END, n.received_at,
       n.received_at, n.received_at, n.received_at + interval '40 ms',
       CASE WHEN st.state = 'delivered' THEN n.received_at + interval '40 ms' END,
       CASE WHEN st.state = 'dead' THEN 'permanent: 403 Forbidden DeclinedByRecipient' END,
       a.name, 'firing', 'relay-prod'
FROM fill_params p CROSS JOIN generate_series(1, p.n) g
JOIN notifications n ON n.id = p.tag || lpad(g::text, 10, '0'),
     LATERAL (VALUES (1, 'oncall'), (2, 'dba')) AS cv(c, conv),
     LATERAL (SELECT (ARRAY['DiskFull','HighLatency','InstanceDown','ReplicationLag','CertExpiring'])[1 + g % 5] AS name) a,
     LATERAL (SELECT CASE WHEN (g * 2 + c) % 200 = 0 THEN 'dead' WHEN (g * 2 + c) % 200 = 1 THEN 'dead'
                          WHEN (g * 2 + c) % 200 = 2 THEN 'uncertain' WHEN (g * 2 + c) % 200 = 3 THEN 'superseded'
                          ELSE 'delivered' END AS state) st
ORDER BY g, c;

INSERT INTO attempts (operation_id, attempt, ucwa_operation_id, outcome, pool, http_status, latency_ms, started_at, finished_at)
SELECT d.operation_id, 1, d.operation_id, CASE WHEN d.state = 'dead' THEN 'permanent' ELSE 'sent' END,
       'pool1.contoso.com', CASE WHEN d.state = 'dead' THEN 403 ELSE 201 END, 38.5, d.created_at, d.updated_at
FROM deliveries d, fill_params p WHERE d.operation_id LIKE p.tag || '%';

INSERT INTO duplicates (notification_id, received_at)
SELECT id, received_at + interval '30 s' FROM notifications, fill_params p
WHERE id LIKE p.tag || '%' AND right(id, 1) = '7';
COMMIT;

VACUUM ANALYZE notifications;
VACUUM ANALYZE deliveries;
VACUUM ANALYZE attempts;
VACUUM ANALYZE duplicates;
