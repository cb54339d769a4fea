-- A certificate never claims more than was done: every row the erasure
-- reaches ends in one counted outcome, checked against the data.
CREATE SCHEMA proof;
SET search_path = proof, public;
CREATE TABLE people (id int PRIMARY KEY, name text);
-- A soft-delete trigger: the application keeps "deleted" rows.
CREATE TABLE notes (id int PRIMARY KEY, person int NOT NULL, body text, deleted boolean NOT NULL DEFAULT false);
CREATE FUNCTION notes_soft_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE proof.notes SET deleted = true WHERE id = OLD.id;
    RETURN NULL;
END $$;
CREATE TRIGGER soft BEFORE DELETE ON notes FOR EACH ROW EXECUTE FUNCTION notes_soft_delete();
-- Invoices must be kept 10 years; one has no date yet (a draft).
CREATE TABLE invoices (id int PRIMARY KEY, person int NOT NULL, issued_on date, billed_to text);
INSERT INTO people VALUES (42, 'Alice'), (43, 'Bob');
INSERT INTO notes VALUES (1, 42, 'about Alice'), (2, 43, 'about Bob');
INSERT INTO invoices VALUES (1, 42, current_date - 4000, 'Alice'), (2, 42, NULL, 'Alice'),
                            (3, 42, current_date - 10, 'Alice');
SELECT retention.register_subject('proof_person', 'people', 'id', follow_foreign_keys => false);
SELECT retention.add_subject_table('proof_person', 'notes', 'person');
SELECT retention.add_subject_table('proof_person', 'invoices', 'person');
SELECT retention.set_subject_table('proof_person', 'invoices', min_retention => interval '10 years',
                                   legal_ground => 'HGB §257', clock => 'issued_on');
SELECT retention.request_erasure('proof_person', '42') AS request \gset
CALL retention.process_erasures();
-- The soft-deleted note is still there: the request is not completed, and
-- the certificate says what remains. The undated invoice is retained and
-- counted, like the recent one; the old one is erased.
SELECT status FROM retention.requests WHERE id = :request;
SELECT t ->> 'table' AS table_name, t ->> 'purged' AS purged, t ->> 'retained' AS retained,
       t ->> 'remaining' AS remaining, t ->> 'problem' AS problem
  FROM jsonb_array_elements(retention.erasure_certificate(:request) -> 'tables') t ORDER BY 1;
SELECT id, issued_on IS NULL AS undated FROM invoices ORDER BY id;
SELECT id, deleted FROM notes ORDER BY id;
SELECT strpos(retention.erasure_certificate_text(:request), 'REMAINING') > 0 AS certificate_says_remaining;
-- The audit chain records the same outcome.
SELECT details -> 'tables' @> '[{"remaining": 1}]' AS audited_remaining
  FROM retention.audit_log WHERE event = 'erasure completed' AND (details ->> 'request')::bigint = :request;

-- Requests change only through pg_retention's functions, for superusers too.
UPDATE retention.erasure_requests SET received_at = received_at + interval '20 days' WHERE id = :request;
DELETE FROM retention.erasure_requests WHERE id = :request;
-- The certificate is checked against the audit chain: an edit of the
-- request row (here by a superuser who disabled the guard) shows in the
-- certificate.
SELECT strpos(retention.erasure_certificate_text(:request), 'the request record matches its audit entries') > 0 AS matches_before;
ALTER TABLE retention.erasure_requests DISABLE TRIGGER erasure_requests_guard;
UPDATE retention.erasure_requests SET received_at = received_at + interval '20 days' WHERE id = :request;
SELECT (retention.erasure_certificate(:request) ->> 'audit_record_matches')::boolean AS matches_after_edit,
       strpos(retention.erasure_certificate_text(:request), 'DIFFERS FROM ITS AUDIT ENTRIES') > 0 AS certificate_says_so;
UPDATE retention.erasure_requests SET received_at = received_at - interval '20 days' WHERE id = :request;
ALTER TABLE retention.erasure_requests ENABLE TRIGGER erasure_requests_guard;

-- A request cannot be received in the future (it would make any erasure
-- look on time).
SELECT retention.request_erasure('proof_person', '43', received_at => now() + interval '2 days');

-- Removing entries from the end of the chain leaves a valid chain; only an
-- anchor kept outside the database shows it. The ledger carries one.
SELECT (retention.erasure_ledger() -> -1) ? 'audit_anchor' AS ledger_has_anchor;
SELECT retention.audit_anchor() AS anchor \gset
-- (The chain of this suite carries the entry forged in 10_erasure; the
-- anchor's own check comes first and is what is shown here.)
SELECT coalesce(problem, '') NOT LIKE '%anchor%' AS anchor_entry_present FROM retention.verify_audit(:'anchor');
SELECT coalesce((SELECT first_broken_id FROM retention.verify_audit()), 0) AS broken_before \gset
ALTER TABLE retention.audit_log DISABLE TRIGGER audit_log_no_update;
DELETE FROM retention.audit_log WHERE id = (SELECT max(id) FROM retention.audit_log);
ALTER TABLE retention.audit_log ENABLE TRIGGER audit_log_no_update;
-- The chain alone reports nothing new ...
SELECT coalesce(first_broken_id, 0) = :broken_before AS chain_alone_sees_no_change FROM retention.verify_audit();
-- ... the anchor names the missing entry.
SELECT ok AS with_anchor_ok, first_broken_id = (:'anchor'::jsonb ->> 'last_id')::bigint AS names_the_entry,
       problem LIKE '%named by the anchor is missing%' AS says_removed
  FROM retention.verify_audit(:'anchor');

-- An anonymising erasure applies the masks the kind's owner chose, never
-- those of a policy another admin declared on the same table.
SET client_min_messages = warning;
CREATE ROLE pf_dpo NOLOGIN IN ROLE retention_admin;
CREATE ROLE pf_other NOLOGIN IN ROLE retention_admin;
GRANT USAGE, CREATE ON SCHEMA proof TO pf_dpo;
GRANT USAGE ON SCHEMA proof TO pf_other;
RESET client_min_messages;
SET ROLE pf_dpo;
CREATE TABLE proof.members (id int PRIMARY KEY, email text, age int, left_at timestamptz NOT NULL, anonymised_at timestamptz);
INSERT INTO proof.members VALUES (42, 'alice@example.com', 37, now());
GRANT SELECT ON proof.members TO pf_other;
SELECT retention.create_policy('pf_lifecycle', 'proof.members', 'left_at', NULL) > 0 AS created;
SELECT retention.add_stage('pf_lifecycle', interval '2 years', 'anonymise', column_name => 'anonymised_at') > 0 AS added;
SELECT retention.set_mask('pf_lifecycle', 'email', 'email', '{"keep_domain": false}');
SELECT retention.register_subject('pf_member', 'proof.members', 'id');
RESET ROLE;
SET ROLE pf_other;
SELECT retention.create_policy('aaa', 'proof.members', 'left_at', NULL, skip_locked => false) > 0 AS created;
SELECT retention.set_mask('aaa', 'age', 'generalise', '{"width": 1}');
RESET ROLE;
SET ROLE pf_dpo;
-- The other admin's policy is not a candidate, and cannot be named.
SELECT retention.set_subject_table('pf_member', 'proof.members', action => 'anonymise', mask_policy => 'aaa');
SELECT retention.set_subject_table('pf_member', 'proof.members', action => 'anonymise');
SELECT retention.request_erasure('pf_member', '42') AS member_request \gset
CALL retention.process_erasures();
RESET ROLE;
SELECT id, email, age, anonymised_at IS NOT NULL AS anonymised FROM proof.members;
SELECT status FROM retention.requests WHERE id = :member_request;

-- Clean up.
SET client_min_messages = warning;
ALTER TABLE retention.erasure_requests DISABLE TRIGGER erasure_requests_guard;
DELETE FROM retention.erasure_requests WHERE kind IN ('proof_person', 'pf_member');
ALTER TABLE retention.erasure_requests ENABLE TRIGGER erasure_requests_guard;
SELECT retention.drop_subject('proof_person'), retention.drop_subject('pf_member');
SELECT retention.drop_policy('aaa'), retention.drop_policy('pf_lifecycle');
DROP SCHEMA proof CASCADE;
DROP OWNED BY pf_dpo, pf_other;
DROP ROLE pf_dpo, pf_other;
RESET search_path;
