-- Preview and purge: only due rows go, in committed batches, and the run log
-- says what happened.
CREATE TABLE tickets (
    id         bigint PRIMARY KEY,
    subject    text,
    state      text NOT NULL,
    closed_at  timestamptz,
    opened_at  timestamptz NOT NULL
);
CREATE INDEX ON tickets (coalesce(closed_at, opened_at));

-- 1000 tickets, one per day going back; every third one still open.
INSERT INTO tickets
SELECT g, 'subject ' || g,
       CASE WHEN g % 3 = 0 THEN 'open' ELSE 'closed' END,
       CASE WHEN g % 3 = 0 THEN NULL ELSE now() - g * interval '1 day' END,
       now() - (g + 30) * interval '1 day'
  FROM generate_series(1, 1000) g;

-- Closed tickets are kept for 365 days after closing; open ones are not governed.
SELECT retention.create_policy('closed_tickets', 'tickets', 'coalesce(closed_at, opened_at)',
                               interval '365 days', filter => $$state = 'closed'$$,
                               batch_size => 100) > 0 AS created;

-- What is due, and whether an index serves the clock.
SELECT policy, target, action, due_rows, clock_indexed, paused, note,
       cutoff BETWEEN now() - interval '365 days 1 minute' AND now() - interval '364 days 23 hours' AS cutoff_ok
  FROM retention.preview();

-- The preview changed nothing.
SELECT count(*) FROM tickets;

-- A paused policy does nothing.
SELECT retention.pause_policy('closed_tickets');
CALL retention.run('closed_tickets');
CALL retention.run();
SELECT count(*) AS tickets, (SELECT count(*) FROM retention.runs) AS runs FROM tickets;
SELECT retention.resume_policy('closed_tickets');

-- Run it: due rows are deleted in batches of 100, each committed.
CALL retention.run();
SELECT policy, target, status, rows_purged, batches, error_code, error,
       finished_at >= started_at AS finished
  FROM retention.runs WHERE policy = 'closed_tickets';

-- Exactly the due rows are gone: closed tickets older than 365 days.
SELECT state, min(id), max(id), count(*) FROM tickets GROUP BY state ORDER BY state;

-- Nothing is due any more; a second run finds nothing.
SELECT policy, due_rows FROM retention.preview();
CALL retention.run();
SELECT status, rows_purged, batches FROM retention.runs WHERE policy = 'closed_tickets' ORDER BY id;

-- A foreign key without ON DELETE does not fail the purge: the ticket a reply
-- still references is kept and counted as blocked (see 07_references), and
-- the run goes on with the next policy.
CREATE TABLE replies (id int PRIMARY KEY, ticket bigint REFERENCES tickets (id), body text);
INSERT INTO replies VALUES (1, 2, 'secret reply');
SELECT retention.alter_policy('closed_tickets', purge_after => interval '1 day') > 0 AS altered;
CREATE TABLE notes (id int PRIMARY KEY, at date NOT NULL);
INSERT INTO notes VALUES (1, current_date - 10), (2, current_date);
SELECT retention.create_policy('notes_1w', 'notes', 'at', interval '7 days') > 0 AS created;
CALL retention.run();
SELECT policy, status, error_code, error, rows_purged, rows_blocked
  FROM retention.runs WHERE run_id = (SELECT max(run_id) FROM retention.runs) ORDER BY policy;
SELECT id FROM notes;
SELECT id, state FROM tickets WHERE state = 'closed';

-- A trigger's own message may quote row values: it is withheld whatever
-- SQLSTATE the trigger chose, in the run log and in the WARNING.
CREATE TABLE memos (id int PRIMARY KEY, at date NOT NULL, body text);
INSERT INTO memos VALUES (1, current_date - 30, 'secret memo');
CREATE FUNCTION memo_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'cannot delete memo %', OLD.body USING ERRCODE = 'object_not_in_prerequisite_state';
END $$;
CREATE TRIGGER memo_guard BEFORE DELETE ON memos FOR EACH ROW EXECUTE FUNCTION memo_guard();
SELECT retention.create_policy('memos_1w', 'memos', 'at', interval '7 days') > 0 AS created;
CALL retention.run('memos_1w');
SELECT status, error_code, error FROM retention.runs WHERE policy = 'memos_1w';
-- A filter that fails on some row's value: the preview's error withholds it.
SELECT retention.create_policy('memos_cast', 'memos', 'at', interval '7 days', filter => 'body::int > 0') > 0 AS created;
SELECT * FROM retention.preview('memos_cast');

-- The run log holds counts and names only: no ticket subjects, no reply
-- text, no key values from the foreign key error's detail.
SELECT count(*) AS rows_mentioning_data
  FROM retention.run_log l
 WHERE l::text LIKE '%subject%' OR l::text LIKE '%secret%' OR l::text LIKE '%(ticket)=%';

DROP TABLE replies;
SELECT retention.drop_policy(name) FROM retention.policies ORDER BY name;
