-- Foreign keys referencing a policy's target. Rows still referenced through
-- ON DELETE RESTRICT / NO ACTION are kept (and counted as blocked) instead of
-- failing the purge; CASCADE, SET NULL and SET DEFAULT do what they say.
CREATE TABLE members (id int PRIMARY KEY, left_at timestamptz NOT NULL);
CREATE TABLE invoices (id int PRIMARY KEY, member int REFERENCES members ON DELETE RESTRICT);
CREATE TABLE logins (id int PRIMARY KEY, member int REFERENCES members ON DELETE CASCADE);
CREATE TABLE remarks (id int PRIMARY KEY, member int REFERENCES members ON DELETE SET NULL);
INSERT INTO members SELECT g, now() - interval '5 years' FROM generate_series(1, 10) g;
INSERT INTO members VALUES (11, now());
INSERT INTO invoices VALUES (1, 1), (2, 2), (3, 11);
INSERT INTO logins VALUES (1, 3), (2, 3), (3, 4);
INSERT INTO remarks VALUES (1, 5);

-- Declaring the policy lists every referencing table.
SELECT retention.create_policy('members', 'members', 'left_at', interval '3 years') > 0 AS created;

-- The preview counts what the keys will do.
SELECT action, due_rows, note FROM retention.preview('members');

CALL retention.run('members');
SELECT status, rows_purged, rows_blocked, error FROM retention.runs WHERE policy = 'members';
SELECT id FROM members ORDER BY id;
SELECT * FROM logins ORDER BY id;
SELECT * FROM remarks ORDER BY id;

-- Once the invoices are gone (their own, longer policy), the next run
-- purges the members they held.
DELETE FROM invoices WHERE member IN (1, 2);
CALL retention.run('members');
SELECT rows_purged, rows_blocked FROM retention.runs WHERE policy = 'members' ORDER BY id DESC LIMIT 1;
SELECT id FROM members ORDER BY id;

-- A run orders policies children first: a child table's policy runs before
-- its parent's, so rows it purges no longer block the parent in the same run.
INSERT INTO members VALUES (20, now() - interval '5 years');
CREATE TABLE visits (id int PRIMARY KEY, member int REFERENCES members ON DELETE NO ACTION, at timestamptz NOT NULL);
INSERT INTO visits VALUES (1, 20, now() - interval '5 years');
SELECT retention.create_policy('z_visits', 'visits', 'at', interval '1 year') > 0 AS created;
CALL retention.run();
SELECT policy, rows_purged, rows_blocked FROM retention.runs WHERE run_id = (SELECT max(run_id) FROM retention.runs) ORDER BY id;
SELECT count(*) AS member_20_left FROM members WHERE id = 20;

SELECT retention.drop_policy('members');
SELECT retention.drop_policy('z_visits');
DROP TABLE visits, remarks, logins, invoices, members;
