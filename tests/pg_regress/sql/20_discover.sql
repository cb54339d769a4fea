-- Finding personal data: retention.discover() on tables with known content
-- (personal data planted in some columns, look-alikes in others), its
-- precision and recall, and retention.coverage() on the same schema.
SET client_min_messages = warning;
CREATE SCHEMA dm;
CREATE TABLE dm.kunden (id int PRIMARY KEY, vorname text, nachname text, email text, telefon text, geburtsdatum date,
                        strasse text, plz text, ort text, iban text, steuer_id text, created_at timestamptz);
INSERT INTO dm.kunden
SELECT g, 'Erika' || g, 'Muster' || g, 'kunde' || g || '@example.org',
       CASE WHEN g % 2 = 0 THEN '+49 170 ' || lpad(g::text, 7, '0') ELSE '030 ' || (10000000 + g) END,
       date '1970-01-01' + g * 37, 'Hauptstraße ' || g, lpad((10000 + g * 7)::text, 5, '0'), 'Berlin',
       (ARRAY['DE89 3704 0044 0532 0130 00', 'GB82 WEST 1234 5698 7654 32', 'FR14 2004 1010 0505 0001 3M02 606', 'NL91 ABNA 0417 1643 00'])[1 + g % 4],
       (ARRAY['49825979194', '17483378874', '72328601290', '14047966698'])[1 + g % 4], now()
  FROM generate_series(1, 200) g;
CREATE TABLE dm.payments (id int PRIMARY KEY, card_number text, amount numeric, client_ip inet, paid_at timestamptz);
INSERT INTO dm.payments
SELECT g, (ARRAY['4111 1111 1111 1111', '5500 0000 0000 0004', '4012 8888 8888 1881', '3782 822463 10005'])[1 + g % 4],
       g * 1.25, ('10.0.' || g / 256 || '.' || g % 256)::inet, now()
  FROM generate_series(1, 200) g;
-- Free text: a third of the tickets quote an e-mail address or a phone number.
CREATE TABLE dm.support (id int PRIMARY KEY, ticket_text text, status text, opened_at timestamptz);
INSERT INTO dm.support
SELECT g, CASE g % 6 WHEN 0 THEN 'Customer asks to write to kunde' || g || '@example.org instead'
                     WHEN 1 THEN 'Please call back on +49 30 ' || (1000000 + g) || ' tomorrow'
                     ELSE 'Parcel ' || g || ' delivered late, refund of 5 EUR granted' END,
       'open', now()
  FROM generate_series(1, 200) g;
CREATE TABLE dm.events (id bigint PRIMARY KEY, payload jsonb, at timestamptz);
INSERT INTO dm.events SELECT g, jsonb_build_object('action', 'login', 'email', 'kunde' || g || '@example.org'), now()
  FROM generate_series(1, 200) g;
-- A column whose name says nothing: its values are e-mail addresses.
CREATE TABLE dm.contacts (id int PRIMARY KEY, info text);
INSERT INTO dm.contacts SELECT g, 'kunde' || g || '@example.org' FROM generate_series(1, 200) g;
-- Look-alikes: order numbers and barcodes of card-number length, product
-- names, SKUs, prices, descriptions; a flag named after e-mail.
CREATE TABLE dm.products (id int PRIMARY KEY, name text, sku text, barcode text, price numeric, description text,
                          email_opt_in boolean, order_no bigint, created_at timestamptz);
INSERT INTO dm.products
SELECT g, 'Product ' || g, 'SKU-' || lpad(g::text, 6, '0'), '400' || lpad((g * 7919)::text, 10, '0'), g * 0.99,
       'A sturdy item number ' || g || ' made of steel, weight 2 kg', g % 2 = 0, 4000000000000000 + g * 7919, now()
  FROM generate_series(1, 200) g;

-- Everything found, medium or high, and how.
SELECT target, column_name, category, confidence, found_by
  FROM retention.discover('dm') WHERE confidence <> 'low' ORDER BY 1, 2;
-- Low confidence: names that often mean something else.
SELECT target, column_name, category, found_by FROM retention.discover('dm') WHERE confidence = 'low' ORDER BY 1, 2;

-- Precision and recall against what was planted.
CREATE TEMP TABLE planted (target text, column_name text, category text);
INSERT INTO planted VALUES
    ('dm.kunden', 'vorname', 'name'), ('dm.kunden', 'nachname', 'name'), ('dm.kunden', 'email', 'e-mail'),
    ('dm.kunden', 'telefon', 'phone'), ('dm.kunden', 'geburtsdatum', 'birth date'),
    ('dm.kunden', 'strasse', 'street address'), ('dm.kunden', 'plz', 'postcode'), ('dm.kunden', 'iban', 'IBAN'),
    ('dm.kunden', 'steuer_id', 'national id'), ('dm.payments', 'card_number', 'credit card'),
    ('dm.payments', 'client_ip', 'IP address'), ('dm.support', 'ticket_text', 'free text'),
    ('dm.events', 'payload', 'free text'), ('dm.contacts', 'info', 'e-mail');
WITH found AS (SELECT target, column_name, category FROM retention.discover('dm') WHERE confidence <> 'low'),
     tp AS (SELECT count(*) AS n FROM found JOIN planted USING (target, column_name, category))
SELECT tp.n AS true_positives,
       (SELECT count(*) FROM found) - tp.n AS false_positives,
       (SELECT count(*) FROM planted) - tp.n AS missed,
       round(tp.n::numeric / (SELECT count(*) FROM found), 2) AS precision,
       round(tp.n::numeric / (SELECT count(*) FROM planted), 2) AS recall
  FROM tp;

-- No sampled value in the answer.
SELECT count(*) AS values_returned FROM retention.discover('dm') d
 WHERE d::text LIKE '%example.org%' OR d::text LIKE '%4111%' OR d::text LIKE '%DE89%' OR d::text LIKE '%Erika%';
-- A bounded sample: 50 rows read at most.
SELECT DISTINCT sampled FROM retention.discover('dm', 50) WHERE target = 'dm.kunden' AND sampled IS NOT NULL;
SELECT * FROM retention.discover('dm', 0);

-- A reader who may not SELECT a table learns only what its column names say.
CREATE ROLE dm_dpo NOLOGIN IN ROLE retention_auditor;
GRANT USAGE ON SCHEMA dm TO dm_dpo;
GRANT SELECT ON dm.contacts TO dm_dpo;
SET ROLE dm_dpo;
SELECT target, column_name, category, confidence, found_by FROM retention.discover('dm')
 WHERE target IN ('dm.kunden', 'dm.contacts') AND column_name IN ('email', 'info') ORDER BY 1;
RESET ROLE;

-- Coverage: what governs each table with personal data, and what is missing.
SELECT target, personal_data, policies, missing FROM retention.coverage('dm');
SELECT suggestion FROM retention.coverage('dm') WHERE target = 'dm.kunden';
-- The suggestion runs as it is and changes nothing (a policy without stages).
SELECT retention.create_policy('kunden', 'dm.kunden', 'created_at', NULL, purpose => 'customer accounts',
                               legal_basis => 'GDPR Art. 6(1)(b)') > 0 AS declared;
SELECT retention.register_subject('dm_kunde', 'dm.kunden', 'id') AS mapped;
SELECT target, policies, stages, subject_kinds, missing FROM retention.coverage('dm') WHERE target IN ('dm.kunden', 'dm.contacts');
SELECT retention.add_stage('kunden', interval '10 years', 'purge') > 0 AS staged;
SELECT target, stages FROM retention.coverage('dm') WHERE target = 'dm.kunden';

-- Where else does customer 12 appear? Its e-mail address, phone number and
-- IBAN are searched in every text column: found in its own row, in a
-- support ticket, an event's payload and the contacts, none of which the
-- map reaches.
UPDATE dm.kunden SET iban = 'DE44 5001 0517 5407 3249 31', steuer_id = NULL WHERE id = 12;
SELECT target, column_name, "rows", in_map, note FROM retention.locate('dm_kunde', '12') ORDER BY 1, 2;
-- Only counts: no value in the answer.
SELECT count(*) AS values_returned FROM retention.locate('dm_kunde', '12') l
 WHERE l::text LIKE '%example.org%' OR l::text LIKE '%DE44%' OR l::text LIKE '%0000012%';
SELECT * FROM retention.locate('dm_kunde', '9999');
SELECT * FROM retention.locate('dm_kunde', 'x');
SET ROLE dm_dpo;
SELECT * FROM retention.locate('dm_kunde', '12');
RESET ROLE;

-- The erasure of customer 12 ends with a sweep: the certificate says where
-- its identifiers were still found (the support ticket, the event payload,
-- the contacts), and the request is partially completed.
SELECT retention.set_erasure_sweep('dm_kunde', true) AS was;
SELECT retention.request_erasure('dm_kunde', '12') AS e12 \gset
CALL retention.process_erasures();
SELECT status FROM retention.requests WHERE id = :e12;
SELECT s ->> 'table' AS "table", s ->> 'column' AS "column", s -> 'rows' AS "rows", s -> 'in_map' AS in_map
  FROM jsonb_array_elements(retention.erasure_certificate(:e12) -> 'sweep') s ORDER BY 1, 2;
SELECT retention.erasure_certificate(:e12) -> 'audit_record_matches' AS matches;
SELECT line FROM regexp_split_to_table(retention.erasure_certificate_text(:e12), E'\n') line WHERE line LIKE 'Final sweep%';
SELECT count(*) AS leaks FROM retention.audit_log WHERE details::text LIKE '%kunde12@%' OR details::text LIKE '%DE44%';
-- Without identifier columns there is nothing to sweep for.
CREATE TABLE dm.plain (id int PRIMARY KEY);
SELECT retention.register_subject('dm_plain', 'dm.plain', 'id') AS mapped;
SELECT retention.set_erasure_sweep('dm_plain', true);
SELECT retention.drop_subject('dm_plain');

-- Clean up.
SELECT retention.drop_policy('kunden');
SELECT retention.drop_subject('dm_kunde');
DROP SCHEMA dm CASCADE;
DROP OWNED BY dm_dpo;
DROP ROLE dm_dpo;
