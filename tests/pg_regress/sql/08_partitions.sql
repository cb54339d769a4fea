-- A table partitioned by month on its clock: partitions entirely before the
-- cutoff go whole; only the boundary partition is purged row by row.
CREATE TABLE readings (id bigint, taken_at timestamptz NOT NULL, value int, PRIMARY KEY (id, taken_at))
    PARTITION BY RANGE (taken_at);
DO $$
BEGIN
    FOR m IN 1 .. 12 LOOP
        EXECUTE format('CREATE TABLE readings_2024_%s PARTITION OF readings FOR VALUES FROM (%L) TO (%L)',
                       lpad(m::text, 2, '0'),
                       make_date(2024, m, 1)::timestamp AT TIME ZONE 'UTC',
                       (make_date(2024, m, 1) + interval '1 month') AT TIME ZONE 'UTC');
    END LOOP;
END $$;
CREATE TABLE readings_default PARTITION OF readings DEFAULT;
-- One reading a day through 2024, plus one in the default partition.
INSERT INTO readings SELECT d, make_timestamptz(2024, 1, 1, 0, 0, 0, 'UTC') + (d - 1) * interval '1 day', d
  FROM generate_series(1, 366) d;
INSERT INTO readings VALUES (1000, '2023-06-01 00:00+00', 0);

-- The cutoff falls in the middle of June 2024 (12:00 UTC on the 15th).
SELECT retention.create_policy('readings', 'readings', 'taken_at',
                               now() - timestamptz '2024-06-15 12:00+00') > 0 AS created;
SELECT action, due_rows, note FROM retention.preview('readings');

CALL retention.run('readings');
SELECT status, partitions_dropped, rows_purged, note FROM retention.runs WHERE policy = 'readings';
SELECT tableoid::regclass AS partition, count(*), min(taken_at) >= '2024-06-15 12:00+00' AS all_after_cutoff
  FROM readings GROUP BY 1 ORDER BY 1;
SELECT count(*) AS partitions_left FROM pg_inherits WHERE inhparent = 'readings'::regclass;

-- Detaching into an archive schema instead of dropping.
CREATE SCHEMA archive;
CREATE TABLE readings2 (LIKE readings INCLUDING ALL) PARTITION BY RANGE (taken_at);
CREATE TABLE readings2_h1 PARTITION OF readings2 FOR VALUES FROM ('2024-01-01 00:00+00') TO ('2024-07-01 00:00+00');
CREATE TABLE readings2_h2 PARTITION OF readings2 FOR VALUES FROM ('2024-07-01 00:00+00') TO ('2025-01-01 00:00+00');
INSERT INTO readings2 SELECT * FROM readings;
INSERT INTO readings2 VALUES (1, '2024-02-01 00:00+00', 1);
SELECT retention.create_policy('readings2', 'readings2', 'taken_at', now() - timestamptz '2024-08-01 00:00+00',
                               archive_schema => 'archive') > 0 AS created;
CALL retention.run('readings2');
SELECT partitions_dropped, rows_purged FROM retention.runs WHERE policy = 'readings2';
SELECT c.oid::regclass AS archived, c.relispartition FROM pg_class c WHERE c.relnamespace = 'archive'::regnamespace;
SELECT count(*) FROM archive.readings2_h1;

-- A filter needs row-level work: no partition is removed whole.
CREATE TABLE readings3 (LIKE readings INCLUDING ALL) PARTITION BY RANGE (taken_at);
CREATE TABLE readings3_h1 PARTITION OF readings3 FOR VALUES FROM ('2024-01-01 00:00+00') TO ('2024-07-01 00:00+00');
INSERT INTO readings3 VALUES (1, '2024-02-01 00:00+00', 1), (2, '2024-02-02 00:00+00', -1);
SELECT retention.create_policy('readings3', 'readings3', 'taken_at', interval '1 day', filter => 'value > 0') > 0 AS created;
SELECT action FROM retention.preview('readings3');
CALL retention.run('readings3');
SELECT partitions_dropped, rows_purged FROM retention.runs WHERE policy = 'readings3';
SELECT id FROM readings3;

SELECT retention.drop_policy(name) FROM retention.policies WHERE name LIKE 'readings%' ORDER BY name;
DROP TABLE readings, readings2, readings3, archive.readings2_h1;
DROP SCHEMA archive;
