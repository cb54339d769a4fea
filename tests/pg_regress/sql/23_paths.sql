-- A table reached by two foreign keys (a message's sender and recipient):
-- the map follows both, so erasure, holds, policies and access find the
-- subject's rows through either.
SET client_min_messages = warning;
CREATE SCHEMA mp;
CREATE TABLE mp.customers (id int PRIMARY KEY, name text);
CREATE TABLE mp.messages (id int PRIMARY KEY,
                          sender_id int NOT NULL, recipient_id int NOT NULL,
                          sent_at timestamptz NOT NULL, body text,
                          CONSTRAINT messages_sender FOREIGN KEY (sender_id) REFERENCES mp.customers,
                          CONSTRAINT messages_recipient FOREIGN KEY (recipient_id) REFERENCES mp.customers);
CREATE TABLE mp.attachments (id int PRIMARY KEY, message_id int NOT NULL REFERENCES mp.messages, name text);
INSERT INTO mp.customers VALUES (1, 'Ann'), (2, 'Ben'), (3, 'Cid'), (4, 'Dee');
INSERT INTO mp.messages VALUES (12, 1, 2, now() - interval '3 years', 'a'), (21, 2, 1, now() - interval '3 years', 'b'),
                               (13, 1, 3, now() - interval '3 years', 'c'), (32, 3, 2, now() - interval '3 years', 'd'),
                               (23, 2, 3, now() - interval '3 years', 'e'), (24, 2, 4, now() - interval '3 years', 'f');
INSERT INTO mp.attachments VALUES (1, 21, 'b.pdf'), (2, 13, 'c.pdf');
SELECT retention.register_subject('mp_customer', 'mp.customers', 'id') AS mapped;
-- The map follows one key; the other is suggested, with the call.
SELECT target, column_name, found_by FROM retention.link_suggestions('mp_customer') WHERE found_by = 'second foreign key';
SELECT suggestion FROM retention.link_suggestions('mp_customer') WHERE found_by = 'second foreign key' \gexec
SELECT count(*) AS suggested_after FROM retention.link_suggestions('mp_customer') WHERE found_by = 'second foreign key';
SELECT target, regexp_replace(path, 'sender_id|recipient_id', 'one key', 'g') AS path FROM retention.subject_map('mp_customer')
 WHERE target = 'mp.messages';
-- Refused: an unknown key, a table outside the map, a key already followed,
-- and a key that leads back.
SELECT retention.add_subject_path('mp_customer', 'mp.messages', 'no_such_key');
SELECT retention.add_subject_path('mp_customer', 'mp.customers', 'messages_sender');
SELECT retention.add_subject_path('mp_customer', 'mp.messages', 'messages_sender');
ALTER TABLE mp.messages ADD COLUMN first_attachment int;
ALTER TABLE mp.messages ADD CONSTRAINT messages_first_attachment FOREIGN KEY (first_attachment) REFERENCES mp.attachments;
SELECT retention.add_subject_path('mp_customer', 'mp.messages', 'messages_first_attachment');

-- Customer 3 is under a hold. Erasing customer 1 takes the messages it
-- sent or received (and their attachments), except the one to customer 3.
SELECT retention.place_hold('mp dispute', kind => 'mp_customer', subject_id => '3') > 0 AS held;
SELECT retention.request_erasure('mp_customer', '1') AS r1 \gset
CALL retention.process_erasures();
SELECT status FROM retention.requests WHERE id = :r1;
SELECT t ->> 'table' AS "table", t -> 'purged' AS purged, t -> 'held' AS held
  FROM jsonb_array_elements(retention.erasure_certificate(:r1) -> 'tables') t ORDER BY 1;
SELECT id, sender_id, recipient_id FROM mp.messages ORDER BY id;
SELECT id, message_id FROM mp.attachments ORDER BY id;

-- A policy purging old messages keeps every message of held customer 3,
-- sent or received; the one between customers 2 and 4 goes.
SELECT retention.create_policy('mp_messages', 'mp.messages', 'sent_at', interval '2 years') > 0 AS created;
CALL retention.run('mp_messages');
SELECT status, rows_purged FROM retention.runs WHERE policy = 'mp_messages';
SELECT id, sender_id, recipient_id FROM mp.messages ORDER BY id;

-- Access: customer 2's messages, sent and received.
INSERT INTO mp.messages VALUES (42, 2, 2, now(), 'note to self'), (99, 3, 3, now(), 'other');
SELECT retention.request_access('mp_customer', '2') AS a2 \gset
SELECT (r -> 'values' ->> 'id')::int AS message
  FROM jsonb_array_elements(retention.deliver_access(:a2) -> 'tables') t, jsonb_array_elements(t -> 'rows') r
 WHERE t ->> 'table' = 'mp.messages' ORDER BY 1;

-- The export lists the further key; applying it changes nothing.
SELECT jsonb_pretty(t -> 'also') AS also
  FROM jsonb_array_elements(retention.export_config() -> 'subject_kinds' -> 'mp_customer' -> 'tables') t
 WHERE t ->> 'table' = 'mp.messages';
SELECT count(*) AS changes FROM retention.apply_config(retention.export_config(), dry_run => false);

-- A policy on the root never deletes a held subject's row through a
-- cascading key: person 4's note is about held person 3 (a further path),
-- so person 4 stays; persons 1 and 2 go, with their notes.
CREATE TABLE mp.people (id int PRIMARY KEY, joined timestamptz NOT NULL);
CREATE TABLE mp.notes (id int PRIMARY KEY, author_id int NOT NULL, about_id int NOT NULL,
                       CONSTRAINT notes_author FOREIGN KEY (author_id) REFERENCES mp.people ON DELETE CASCADE,
                       CONSTRAINT notes_about FOREIGN KEY (about_id) REFERENCES mp.people ON DELETE CASCADE);
INSERT INTO mp.people SELECT g, now() - interval '2 years' FROM generate_series(1, 4) g;
INSERT INTO mp.notes VALUES (1, 4, 3), (2, 2, 1);
SELECT retention.register_subject('mp_person', 'mp.people', 'id') AS mapped;
SELECT suggestion FROM retention.link_suggestions('mp_person') WHERE found_by = 'second foreign key' \gexec
SELECT retention.place_hold('mp person', kind => 'mp_person', subject_id => '3') > 0 AS held;
SELECT retention.create_policy('mp_people', 'mp.people', 'joined', interval '1 year') > 0 AS created;
SELECT action, due_rows, note FROM retention.preview('mp_people');
CALL retention.run('mp_people');
SELECT status, rows_purged, rows_held FROM retention.runs WHERE policy = 'mp_people';
SELECT id FROM mp.people ORDER BY id;
SELECT id, author_id, about_id FROM mp.notes ORDER BY id;
SELECT retention.drop_policy('mp_people');
SELECT retention.drop_subject('mp_person');

-- A policy on one partition of a mapped partitioned table keeps the held
-- subject's rows too: the partition's rows are its parent's.
CREATE TABLE mp.members (id int PRIMARY KEY);
CREATE TABLE mp.visits (id int, member_id int NOT NULL REFERENCES mp.members, at timestamptz NOT NULL,
                        PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE mp.visits_2020 PARTITION OF mp.visits FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
CREATE TABLE mp.visits_later PARTITION OF mp.visits FOR VALUES FROM ('2021-01-01') TO (MAXVALUE);
INSERT INTO mp.members VALUES (1), (2);
INSERT INTO mp.visits SELECT g, 1 + g % 2, timestamptz '2020-06-01' + g * interval '1 day' FROM generate_series(1, 10) g;
SELECT retention.register_subject('mp_member', 'mp.members', 'id') AS mapped;
SELECT retention.place_hold('mp member', kind => 'mp_member', subject_id => '1') > 0 AS held;
SELECT retention.create_policy('mp_visits_2020', 'mp.visits_2020', 'at', interval '1 year') > 0 AS created;
CALL retention.run('mp_visits_2020');
SELECT status, rows_purged, rows_held FROM retention.runs WHERE policy = 'mp_visits_2020';
SELECT member_id, count(*) FROM mp.visits GROUP BY 1 ORDER BY 1;
SELECT retention.drop_policy('mp_visits_2020');
SELECT retention.drop_subject('mp_member');

-- A map deeper than 32 tables is refused where it is followed, never
-- taken as "not held".
CREATE TABLE mp.chain_0 (id int PRIMARY KEY);
DO $$
BEGIN
    FOR i IN 1..40 LOOP
        EXECUTE format('CREATE TABLE mp.chain_%s (id int PRIMARY KEY, up int REFERENCES mp.chain_%s, at timestamptz NOT NULL DEFAULT now() - interval ''2 years'')', i, i - 1);
    END LOOP;
END $$;
INSERT INTO mp.chain_0 VALUES (1);
SELECT retention.register_subject('mp_chain', 'mp.chain_0', 'id') AS mapped;
SELECT max(depth) AS deepest FROM retention.subject_map('mp_chain');
SELECT retention.place_hold('mp chain', kind => 'mp_chain', subject_id => '1') > 0 AS held;
SELECT retention.create_policy('mp_chain_40', 'mp.chain_40', 'at', interval '1 year') > 0 AS created;
CALL retention.run('mp_chain_40');
SELECT status, error_code FROM retention.runs WHERE policy = 'mp_chain_40';
SELECT retention.drop_policy('mp_chain_40');
SELECT retention.drop_subject('mp_chain');

-- Keys of type char(n) are compared whole (a cast to plain "character"
-- would cut them to one character): a hold on account ABC123 keeps its
-- logins, not those of account A.
CREATE TABLE mp.accounts (code char(6) PRIMARY KEY);
CREATE TABLE mp.logins (id int PRIMARY KEY, account char(6) NOT NULL REFERENCES mp.accounts, at timestamptz NOT NULL);
INSERT INTO mp.accounts VALUES ('ABC123'), ('A'), ('XYZ789');
INSERT INTO mp.logins SELECT g, (ARRAY['ABC123', 'A', 'XYZ789'])[1 + g % 3], now() - interval '2 years' FROM generate_series(1, 9) g;
SELECT retention.register_subject('mp_account', 'mp.accounts', 'code') AS mapped;
SELECT retention.place_hold('mp audit', kind => 'mp_account', subject_id => 'ABC123') > 0 AS held;
SELECT retention.create_policy('mp_logins', 'mp.logins', 'at', interval '1 year') > 0 AS created;
CALL retention.run('mp_logins');
SELECT account, count(*) FROM mp.logins GROUP BY 1 ORDER BY 1;
SELECT retention.request_erasure('mp_account', 'XYZ789') AS rx \gset
CALL retention.process_erasures();
SELECT code FROM mp.accounts ORDER BY 1;

-- Clean up.
SELECT retention.drop_policy('mp_logins');
SELECT retention.drop_subject('mp_account');
SELECT retention.drop_policy('mp_messages');
UPDATE retention.holds SET released_at = now() WHERE released_at IS NULL AND reason LIKE 'mp %';
SELECT retention.drop_subject('mp_customer');
DROP SCHEMA mp CASCADE;
