-- Idle cost in steady state: five policies with nothing due, CALL
-- retention.run() ten times in one session after a warm-up call (unlike the
-- idle row of engine.sql, a single call right after VACUUM ANALYZE).
--   psql -h 127.0.0.1 -p 28815 -U postgres -d postgres -f bench/idle_steady.sql
-- With -v pinned=1 the session first sets TimeZone and the locale settings
-- to the values pg_retention pins, so that no setting has to change.
\set QUIET on
SET client_min_messages = warning;
DROP DATABASE IF EXISTS idlebench;
CREATE DATABASE idlebench;
\c idlebench
SET client_min_messages = warning;
CREATE EXTENSION pg_retention;
DO $$ BEGIN FOR i IN 1..5 LOOP
  EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, at timestamptz NOT NULL)', i);
  EXECUTE format('CREATE INDEX ON t%s (at)', i);
  EXECUTE format('INSERT INTO t%s SELECT g, now() FROM generate_series(1, 1000) g', i);
  PERFORM retention.create_policy('p' || i, ('t' || i)::regclass, 'at', interval '30 days');
END LOOP; END $$;
VACUUM ANALYZE;
\if :{?pinned}
SET TimeZone = 'UTC'; SET lc_time = 'C'; SET lc_numeric = 'C'; SET lc_monetary = 'C';
\endif
CALL retention.run();
\timing on
CALL retention.run();
CALL retention.run();
CALL retention.run();
CALL retention.run();
CALL retention.run();
CALL retention.run();
CALL retention.run();
CALL retention.run();
CALL retention.run();
CALL retention.run();
\timing off
SHOW TimeZone; SHOW lc_time;
