-- Legal holds and statutory minimums against scheduled policies.
CREATE TABLE bookings (id int PRIMARY KEY, booked_at timestamptz NOT NULL, guest text, audited boolean NOT NULL DEFAULT false);
INSERT INTO bookings SELECT g, now() - interval '3 years', 'guest ' || g, g <= 3 FROM generate_series(1, 10) g;
SELECT retention.create_policy('bookings', 'bookings', 'booked_at', interval '2 years') > 0 AS created;

-- A tax audit holds the audited bookings: they survive the run, counted and named.
SELECT retention.place_hold('tax audit 2026', target => 'bookings', filter => 'audited') AS audit_hold \gset
CALL retention.run('bookings');
SELECT status, rows_purged, rows_held, note FROM retention.runs WHERE policy = 'bookings' ORDER BY id DESC LIMIT 1;
SELECT id FROM bookings ORDER BY id;

-- A hold on the whole table stops the policy.
SELECT retention.place_hold('lawsuit 12 O 345/26', target => 'bookings') AS lawsuit_hold \gset
INSERT INTO bookings VALUES (20, now() - interval '3 years', 'guest 20', false);
CALL retention.run('bookings');
SELECT status, rows_purged, regexp_replace(note, '[0-9]+$', 'N') AS note FROM retention.runs WHERE policy = 'bookings' ORDER BY id DESC LIMIT 1;
SELECT count(*) FROM bookings;

-- Released holds no longer protect anything.
SELECT retention.release_hold(:lawsuit_hold), retention.release_hold(:audit_hold), retention.release_hold(:audit_hold);
CALL retention.run('bookings');
SELECT rows_purged, rows_held FROM retention.runs WHERE policy = 'bookings' ORDER BY id DESC LIMIT 1;
SELECT count(*) FROM bookings;

-- A hold that ends by itself.
SELECT retention.place_hold('expired hold', target => 'bookings', until => now() - interval '1 day') > 0 AS placed;
INSERT INTO bookings VALUES (30, now() - interval '3 years', 'guest 30', false);
CALL retention.run('bookings');
SELECT count(*) FROM bookings;

-- A hold on a subject also protects the subject's rows from policies, in the
-- root table of its kind and in tables that reference the root id.
CREATE TABLE club_members (id int PRIMARY KEY, left_at timestamptz NOT NULL);
CREATE TABLE club_visits (id int PRIMARY KEY, member int REFERENCES club_members ON DELETE CASCADE, at timestamptz NOT NULL);
INSERT INTO club_members SELECT g, now() - interval '3 years' FROM generate_series(1, 5) g;
INSERT INTO club_visits SELECT g, g, now() - interval '3 years' FROM generate_series(1, 5) g;
SELECT retention.register_subject('member', 'club_members', 'id');
SELECT retention.place_hold('dispute with member 3', kind => 'member', subject_id => '3') > 0 AS held;
SELECT retention.create_policy('club_visits', 'club_visits', 'at', interval '1 year') > 0 AS created;
SELECT retention.create_policy('club_members', 'club_members', 'left_at', interval '1 year') > 0 AS created;
CALL retention.run();
SELECT policy, rows_purged, rows_held FROM retention.runs WHERE policy LIKE 'club%' ORDER BY id;
SELECT (SELECT string_agg(id::text, ',') FROM club_members) AS members_left,
       (SELECT string_agg(member::text, ',') FROM club_visits) AS visits_left;
-- A hold on a whole table also holds the rows below it in the subject map:
-- erasing member 6 while the member register is held keeps the visits too.
INSERT INTO club_members VALUES (6, now());
INSERT INTO club_visits VALUES (6, 6, now());
SELECT retention.place_hold('inspection of the member register', target => 'club_members') AS register_hold \gset
SELECT retention.request_erasure('member', '6') AS req \gset
CALL retention.process_erasures();
SELECT t ->> 'table' AS "table", (t ->> 'purged')::int AS purged, (t ->> 'held')::int AS held
  FROM jsonb_array_elements(retention.erasure_certificate(:req) -> 'tables') t;
SELECT (SELECT count(*) FROM club_members WHERE id = 6) AS member_kept, (SELECT count(*) FROM club_visits WHERE member = 6) AS visit_kept;
SELECT retention.release_hold(:register_hold);
SELECT retention.drop_policy('club_visits'), retention.drop_policy('club_members'), retention.drop_subject('member');
DROP TABLE club_visits, club_members;

-- Statutory minimums: a purge earlier than the minimum is refused.
CREATE TABLE ledger (id int PRIMARY KEY, booked_on date NOT NULL);
SELECT retention.create_policy('ledger', 'ledger', 'booked_on', interval '6 years',
                               min_retention => interval '10 years', min_retention_ground => 'HGB §257, AO §147');
SELECT retention.create_policy('ledger', 'ledger', 'booked_on', interval '10 years', min_retention => interval '10 years');
SELECT retention.create_policy('ledger', 'ledger', 'booked_on', interval '10 years',
                               min_retention => interval '10 years', min_retention_ground => 'HGB §257, AO §147') > 0 AS created;
SELECT retention.alter_policy('ledger', purge_after => interval '8 years');
SELECT retention.drop_stage('ledger', 'purge');
SELECT retention.add_stage('ledger', interval '9 years', 'purge');
SELECT retention.add_stage('ledger', interval '11 years', 'purge') > 0 AS added;
SELECT name, purge_after, min_retention, min_retention_ground FROM retention.policies WHERE name = 'ledger';

-- Holds are in the audit log (by id; reasons stay in retention.holds).
SELECT event, details - 'table' - 'subject' AS details, details ? 'subject' AS has_subject_key FROM retention.audit_log WHERE event LIKE 'hold%' ORDER BY id;

SELECT retention.drop_policy('bookings'), retention.drop_policy('ledger');
DROP TABLE bookings, ledger;
