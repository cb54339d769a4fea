-- The security boundary. Nothing a role writes runs with another role's
-- rights; declared text runs exactly as validated; only entitled roles act
-- on a kind's subjects.
SET client_min_messages = warning;
CREATE ROLE sb_owner NOLOGIN IN ROLE retention_admin;     -- owns the data and the policies
CREATE ROLE sb_mallory NOLOGIN IN ROLE retention_admin;   -- another admin
CREATE ROLE sb_app NOLOGIN;                               -- owns a table, no retention role
CREATE SCHEMA sb AUTHORIZATION sb_owner;
GRANT USAGE ON SCHEMA sb TO sb_mallory, sb_app;
GRANT CREATE ON SCHEMA sb TO sb_app;
RESET client_min_messages;

-- 1. The trigger functions run as the role whose change fires them, not as
--    the extension owner: a cast some role wrote never runs as superuser.
SELECT p.proname, p.prosecdef
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'retention' AND p.prosecdef ORDER BY 1;

-- 2. A hold needs SELECT on the table it holds.
SET ROLE sb_owner;
CREATE TABLE sb.notes (id int PRIMARY KEY, note text, created_at timestamptz NOT NULL);
INSERT INTO sb.notes SELECT g, 'n' || g,
       CASE WHEN g <= 2 THEN now() - interval '400 days' ELSE now() - interval '1 day' END
  FROM generate_series(1, 10) g;
SELECT retention.create_policy('sb_notes', 'sb.notes', 'created_at', interval '30 days') > 0 AS created;
RESET ROLE;
SET ROLE sb_mallory;
SELECT retention.place_hold('no rights', target => 'sb.notes');
RESET ROLE;

-- 3. With SELECT, a hold's filter is stored in the server's canonical form:
--    text declared under standard_conforming_strings = off means the same
--    when a run parses it under on (it cannot break out of its literal).
GRANT SELECT ON sb.notes TO sb_mallory;
CREATE FUNCTION public.sb_innocent(int) RETURNS boolean LANGUAGE plpgsql STABLE AS $$ BEGIN RETURN false; END $$;
SET ROLE sb_mallory;
SET standard_conforming_strings = off;
SET escape_string_warning = off;
SELECT retention.place_hold('looks harmless', target => 'sb.notes',
       filter => $f$note = 'a\' ), false)) OR (true OR coalesce((true -- '$f$) > 0 AS placed;
RESET escape_string_warning;
RESET standard_conforming_strings;
SELECT filter FROM retention.holds WHERE reason = 'looks harmless';
--    A hold filter may not call code a role wrote (it would run as the
--    table owner inside the owner's batches).
SELECT retention.place_hold('function', target => 'sb.notes', filter => 'public.sb_innocent(id)');
RESET ROLE;
SET ROLE sb_owner;
CALL retention.run('sb_notes');
RESET ROLE;
-- Only the two due rows are gone; the eight young ones stay.
SELECT count(*) AS rows_left_expect_8 FROM sb.notes;
SELECT policy, status, rows_purged FROM retention.runs WHERE policy = 'sb_notes';

-- 4. Batches run as the table's owner, in a security-restricted operation:
--    a trigger of the table sees the table owner as current_user, whoever
--    declared or runs the policy.
SET ROLE sb_app;
CREATE TABLE sb.sessions (id int PRIMARY KEY, started_at timestamptz NOT NULL);
INSERT INTO sb.sessions SELECT g, now() - interval '400 days' FROM generate_series(1, 3) g;
CREATE TABLE sb.seen_as (who text, restricted boolean);
CREATE FUNCTION sb.on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sb.seen_as VALUES (current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user));
    RETURN OLD;
END $$;
CREATE TRIGGER t BEFORE DELETE ON sb.sessions FOR EACH ROW EXECUTE FUNCTION sb.on_delete();
RESET ROLE;
-- The superuser declares the policy on the application's table.
SELECT retention.create_policy('sb_sessions', 'sb.sessions', 'started_at', interval '30 days') > 0 AS created;
CALL retention.run('sb_sessions');
SELECT DISTINCT who, restricted FROM sb.seen_as;
SELECT count(*) AS sessions_left FROM sb.sessions;
SELECT retention.drop_policy('sb_sessions');

-- 5. The policy owner's rights are checked before every batch: a policy
--    whose owner lost DELETE fails, and deletes nothing.
INSERT INTO sb.notes VALUES (100, 'old', now() - interval '400 days');
RESET ROLE;
ALTER TABLE sb.notes OWNER TO sb_app;
SET ROLE sb_app;
GRANT SELECT, UPDATE ON sb.notes TO sb_owner;
RESET ROLE;
SET ROLE sb_owner;
CALL retention.run('sb_notes');
RESET ROLE;
SELECT status, error_code, error FROM retention.runs WHERE policy = 'sb_notes' ORDER BY id DESC LIMIT 1;
SELECT count(*) AS old_row_kept FROM sb.notes WHERE id = 100;
ALTER TABLE sb.notes OWNER TO sb_owner;

-- 6. A timestamp clock is read as UTC: the runner's TimeZone does not move
--    the cutoff, for rows and for whole partitions.
SET ROLE sb_owner;
CREATE TABLE sb.logins (id int PRIMARY KEY, at timestamp NOT NULL);
INSERT INTO sb.logins VALUES
  (1, (now() AT TIME ZONE 'UTC') - interval '31 days'),
  (2, (now() AT TIME ZONE 'UTC') - interval '29 days'),
  (3, (now() AT TIME ZONE 'UTC') - interval '25 days');
SELECT retention.create_policy('sb_logins', 'sb.logins', 'at', interval '30 days') > 0 AS created;
CREATE TABLE sb.clicks (id int, at timestamp NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
DO $$
DECLARE d int;
BEGIN
    FOR d IN SELECT generate_series(0, 40, 5) LOOP
        EXECUTE format('CREATE TABLE sb.clicks_%s PARTITION OF sb.clicks FOR VALUES FROM (%L) TO (%L)',
                       d, (now() AT TIME ZONE 'UTC')::date - d, (now() AT TIME ZONE 'UTC')::date - d + 1);
    END LOOP;
END $$;
INSERT INTO sb.clicks SELECT d, (now() AT TIME ZONE 'UTC')::date - d FROM generate_series(0, 40, 5) d;
SELECT retention.create_policy('sb_clicks', 'sb.clicks', 'at', interval '30 days') > 0 AS created;
RESET ROLE;
SET ROLE sb_mallory;
SET TIME ZONE 'UTC-167';
SET DateStyle = 'SQL, DMY';
CALL retention.run('sb_logins');
CALL retention.run('sb_clicks');
RESET DateStyle;
RESET TIME ZONE;
RESET ROLE;
SELECT id FROM sb.logins ORDER BY id;
SELECT string_agg(tableoid::regclass::text, ', ' ORDER BY at) AS partitions_left FROM sb.clicks;

-- 7. Holds are released by the role that placed them, by identity: a
--    rename does not open them to other admins.
CREATE ROLE sb_legal NOLOGIN IN ROLE retention_admin;
GRANT USAGE ON SCHEMA sb TO sb_legal;
GRANT SELECT ON sb.logins TO sb_legal;
SET ROLE sb_legal;
SELECT retention.place_hold('litigation', target => 'sb.logins') AS hold \gset
RESET ROLE;
ALTER ROLE sb_legal RENAME TO sb_legal_department;
SELECT set_config('sb.hold', :'hold', false) IS NOT NULL AS noted;
SET ROLE sb_mallory;
DO $$
BEGIN
    PERFORM retention.release_hold(current_setting('sb.hold')::bigint);
    RAISE NOTICE 'released by another admin';
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'refused with SQLSTATE %', SQLSTATE;
END $$;
RESET ROLE;
SET ROLE sb_legal_department;
SELECT retention.release_hold(:hold) AS released_by_its_role;
RESET ROLE;

-- 8. Blind indexes are computed inside the extension only.
SET ROLE sb_mallory;
SELECT retention._blind('customer', '1');
RESET ROLE;

-- 9. Only roles entitled to a kind's data (members of its owner, or with
--    DELETE on its root table) file, extend, refuse or re-apply erasures.
SET ROLE sb_owner;
CREATE TABLE sb.customers (id int PRIMARY KEY, name text);
INSERT INTO sb.customers VALUES (5, 'Bob'), (6, 'Carol');
SELECT retention.register_subject('sb_customer', 'sb.customers', 'id');
SELECT retention.request_erasure('sb_customer', '5') AS request \gset
RESET ROLE;
SET ROLE sb_mallory;
SELECT retention.request_erasure('sb_customer', '6');
SELECT retention.extend_request(:request, 1, 'complex case');
SELECT retention.refuse_request(:request, '17(3)(b)');
SELECT * FROM retention.reapply_erasures(ledger => '[{"kind": "sb_customer", "subject": "x"}]');
SELECT retention.place_hold('hold', kind => 'sb_customer', subject_id => '6');
RESET ROLE;
-- With DELETE on the root table, the same role is entitled.
GRANT SELECT, DELETE ON sb.customers TO sb_mallory;
SET ROLE sb_mallory;
SELECT retention.extend_request(:request, 1, 'complex case') IS NOT NULL AS extended;
RESET ROLE;
-- A request received in the future is refused.
SELECT retention.request_erasure('sb_customer', '6', received_at => now() + interval '1 day');
SELECT count(*) AS customers_left FROM sb.customers;

-- 10. An application's erasure trigger runs as the role whose change fires
--     it: a role not entitled to the kind cannot file through it.
SET ROLE sb_app;
CREATE TABLE sb.signups (person int);
CREATE TRIGGER f AFTER INSERT ON sb.signups FOR EACH ROW
    EXECUTE FUNCTION retention.request_erasure_trigger('sb_customer', 'person');
INSERT INTO sb.signups VALUES (6);
RESET ROLE;
GRANT DELETE ON sb.customers TO sb_app;
SET ROLE sb_app;
INSERT INTO sb.signups VALUES (6);
RESET ROLE;
SELECT count(*) AS pending_requests FROM retention.requests WHERE kind = 'sb_customer' AND status = 'received';

-- Clean up (requests and audit entries stay, as they would in production).
SET client_min_messages = warning;
SELECT retention.drop_policy(name) FROM retention.policies WHERE name LIKE 'sb\_%';
UPDATE retention.holds SET released_at = now() WHERE released_at IS NULL;
ALTER TABLE retention.erasure_requests DISABLE TRIGGER erasure_requests_guard;
DELETE FROM retention.erasure_requests WHERE kind = 'sb_customer';
ALTER TABLE retention.erasure_requests ENABLE TRIGGER erasure_requests_guard;
SELECT retention.drop_subject('sb_customer');
DROP SCHEMA sb CASCADE;
DROP FUNCTION public.sb_innocent(int);
DROP OWNED BY sb_owner, sb_mallory, sb_app, sb_legal_department;
DROP ROLE sb_owner, sb_mallory, sb_app, sb_legal_department;
