-- Partitioned tables without a primary key (time-partitioned events, as
-- pg_partman makes them): expired partitions go whole, the boundary
-- partition is purged by batches that find rows by partition and row id,
-- and a table partitioned by something else than the clock is purged and
-- marked across its partitions.
SET client_min_messages = warning;
CREATE SCHEMA kp;
CREATE TABLE kp.events (at timestamptz NOT NULL, payload text) PARTITION BY RANGE (at);
CREATE TABLE kp.events_old1 PARTITION OF kp.events FOR VALUES FROM ('2020-01-01') TO ('2020-02-01');
CREATE TABLE kp.events_old2 PARTITION OF kp.events FOR VALUES FROM ('2020-02-01') TO ('2020-03-01');
CREATE TABLE kp.events_now PARTITION OF kp.events FOR VALUES FROM ('2020-03-01') TO (MAXVALUE);
INSERT INTO kp.events SELECT timestamptz '2020-01-01' + g * interval '1 hour', 'e' || g FROM generate_series(0, 2999) g;
-- Cutoff inside events_now, just after 2020-03-20 00:00: events up to it go.
SELECT count(*) FILTER (WHERE at <= '2020-03-20') AS due, count(*) AS total FROM kp.events;
SELECT retention.create_policy('kp_events', 'kp.events', 'at', now() - timestamptz '2020-03-20',
                               batch_size => 100, batch_target => NULL) > 0 AS created;
SELECT action, due_rows, note FROM retention.preview('kp_events') ORDER BY 1;
CALL retention.run('kp_events');
SELECT status, rows_purged, partitions_dropped, batches > 1 AS batched FROM retention.runs WHERE policy = 'kp_events';
SELECT count(*) AS left_up_to_cutoff FROM kp.events WHERE at <= '2020-03-20';
SELECT count(*) AS kept FROM kp.events;
SELECT relname FROM pg_class WHERE relname LIKE 'events\_%' AND relnamespace = 'kp'::regnamespace ORDER BY 1;

-- Partitioned by region, not by the clock: row ids repeat across the
-- partitions, and each batch changes exactly the rows it selected.
CREATE TABLE kp.visits (region text NOT NULL, seen_at timestamptz NOT NULL, note text, flagged_at timestamptz)
    PARTITION BY LIST (region);
CREATE TABLE kp.visits_eu PARTITION OF kp.visits FOR VALUES IN ('eu');
CREATE TABLE kp.visits_us PARTITION OF kp.visits FOR VALUES IN ('us');
INSERT INTO kp.visits SELECT CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, now() - (g % 40) * interval '1 day', 'v' || g
  FROM generate_series(1, 2000) g;
-- The same row ids in both partitions.
SELECT count(*) AS shared_row_ids FROM kp.visits_eu e JOIN kp.visits_us u ON e.ctid = u.ctid;
-- A list-partitioned table (with a key, too) is not clock-partitioned: no
-- partition is dropped, its rows are batched.
SELECT count(*) FILTER (WHERE seen_at < now() - interval '30 days') AS due_purge,
       count(*) FILTER (WHERE seen_at < now() - interval '10 days' AND seen_at >= now() - interval '30 days') AS due_mark
  FROM kp.visits;
SELECT retention.create_policy('kp_visits', 'kp.visits', 'seen_at', interval '30 days',
                               batch_size => 150, batch_target => NULL) > 0 AS created;
SELECT retention.add_stage('kp_visits', interval '10 days', 'mark', column_name => 'flagged_at') > 0 AS staged;
CALL retention.run('kp_visits');
SELECT status, rows_purged, rows_marked FROM retention.runs WHERE policy = 'kp_visits';
SELECT count(*) FILTER (WHERE seen_at < now() - interval '30 days') AS old_left,
       count(*) FILTER (WHERE flagged_at IS NOT NULL) AS flagged,
       count(*) FILTER (WHERE flagged_at IS NOT NULL AND seen_at >= now() - interval '10 days') AS flagged_too_young,
       count(*) AS kept
  FROM kp.visits;

-- Clean up.
SELECT retention.drop_policy('kp_events');
SELECT retention.drop_policy('kp_visits');
DROP SCHEMA kp CASCADE;
