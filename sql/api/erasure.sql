------------------------------------------------------------------------------
-- Right to erasure: subjects, requests, holds, proof
------------------------------------------------------------------------------

CREATE FUNCTION retention.register_subject(kind text, root regclass, id_column text,
                                           follow_foreign_keys boolean DEFAULT true)
RETURNS integer LANGUAGE sql VOLATILE
RETURN retention._register_subject("kind" => $1, "root" => $2::oid, "id_column" => $3, "follow_foreign_keys" => $4);
COMMENT ON FUNCTION retention.register_subject(text, regclass, text, boolean) IS
'Declares a kind of data subject (e.g. customer): ROOT is the table with one row per subject, ID_COLUMN its id. Tables referencing the root by foreign key are found at any depth (FOLLOW_FOREIGN_KEYS); a cycle is refused. Each found table is purged on erasure unless changed with set_subject_table. Returns the number of tables in the map.';

CREATE FUNCTION retention.add_subject_table(kind text, target regclass, column_name text,
                                            matches text DEFAULT NULL, action text DEFAULT 'purge')
RETURNS integer LANGUAGE sql VOLATILE
RETURN retention._add_subject_table("kind" => $1, "target" => $2::oid, "column_name" => $3, "matches" => $4, "action" => $5);
COMMENT ON FUNCTION retention.add_subject_table(text, regclass, text, text, text) IS
'Adds a table linked to the subject by value: rows whose COLUMN_NAME equals the root row''s MATCHES column (e.g. the e-mail address), or the subject id itself when MATCHES is NULL. ACTION is purge or anonymise.';

CREATE FUNCTION retention.add_owned_table(kind text, target regclass, via regclass DEFAULT NULL,
                                          action text DEFAULT 'purge')
RETURNS integer LANGUAGE sql VOLATILE
RETURN retention._add_owned_table("kind" => $1, "target" => $2::oid, "via" => $3::oid, "action" => $4);
COMMENT ON FUNCTION retention.add_owned_table(text, regclass, regclass, text) IS
'Adds a table whose rows the subject''s rows reference and own (a customer''s address, a profile): found through the foreign key of a mapped table (VIA, or the one mapped table that references TARGET). On erasure such a row is erased (ACTION purge or anonymise) once no other row references it; a row that rows outside the subject''s erased data still reference is kept and counted, with the tables referencing it. Holds on the subject keep its owned rows out of every policy, as for the other tables of the map.';

CREATE FUNCTION retention.add_subject_path(kind text, target regclass, foreign_key text)
RETURNS integer LANGUAGE sql VOLATILE
RETURN retention._add_subject_path("kind" => $1, "target" => $2::oid, "foreign_key" => $3);
COMMENT ON FUNCTION retention.add_subject_path(text, regclass, text) IS
'Makes the map of KIND also follow FOREIGN_KEY, a further foreign key of TARGET (a table the map reaches by a foreign key) to a table of the map: a message''s recipient next to its sender. Rows reached through any of the paths are the subject''s: erased, held and exported with it. A key that would lead back to TARGET is refused.';

CREATE FUNCTION retention.set_erasure_sweep(kind text, sweep boolean)
RETURNS boolean LANGUAGE sql VOLATILE
RETURN retention._set_erasure_sweep("kind" => $1, "sweep" => $2);
COMMENT ON FUNCTION retention.set_erasure_sweep(text, boolean) IS
'With SWEEP, every erasure of KIND ends with a search for the subject''s identifiers (the root row''s columns named like an e-mail address, phone number, IBAN, card number or national id) in every text and json column of every table the kind''s owner may read, as retention.locate searches; the certificate states where they were still found (tables, columns, row counts, no values), and copies outside the map leave the request partially completed. One scan of every such table per request. Returns the previous setting.';

CREATE FUNCTION retention.set_subject_table(kind text, target regclass, action text DEFAULT NULL,
                                            min_retention interval DEFAULT NULL, legal_ground text DEFAULT NULL,
                                            clock text DEFAULT NULL, mask_policy text DEFAULT NULL)
RETURNS boolean LANGUAGE sql VOLATILE
RETURN retention._set_subject_table("kind" => $1, "target" => $2::oid, "action" => $3, "min_retention" => $4, "legal_ground" => $5, "clock" => $6, "mask_policy" => $7);
COMMENT ON FUNCTION retention.set_subject_table(text, regclass, text, interval, text, text, text) IS
'Sets the erasure ACTION of a table in the subject map (purge, or anonymise) and a statutory minimum: rows whose CLOCK is younger than MIN_RETENTION are kept, restricted and minimised instead of erased, naming LEGAL_GROUND (e.g. HGB §257, AO §147). Anonymising uses the masks of MASK_POLICY, a policy on the table that the caller controls; without it, the one such policy with masks (an error if there are several). The choice is recorded: masks of policies other roles declare are never used.';

CREATE FUNCTION retention.drop_subject(kind text)
RETURNS boolean LANGUAGE sql VOLATILE
RETURN retention._drop_subject("kind" => $1);
COMMENT ON FUNCTION retention.drop_subject(text) IS 'Removes a subject kind and its map (requests and the audit log stay).';

CREATE FUNCTION retention.subject_map(kind text)
RETURNS TABLE (target text, link text, depth integer, path text, action text, min_retention interval,
               legal_ground text, indexed boolean, warning text)
LANGUAGE sql STABLE
BEGIN ATOMIC SELECT * FROM retention._subject_map("kind" => $1); END;
COMMENT ON FUNCTION retention.subject_map(text) IS
'The tables where a kind of subject''s data lives: how each is linked (root, foreign key path, value), the erasure action, statutory minimum, and a warning where the subject column has no index.';

CREATE FUNCTION retention.link_suggestions(kind text)
RETURNS TABLE (target text, column_name text, found_by text, note text, suggestion text)
LANGUAGE sql STABLE
BEGIN ATOMIC SELECT * FROM retention._link_suggestions("kind" => $1); END;
COMMENT ON FUNCTION retention.link_suggestions(text) IS
'Tables that may hold subjects of KIND without being in its map, for review: columns named and typed like the root id with no foreign key (found_by ''column name and type''), partitioned tables whose partitions declare a foreign key to the root or a mapped table that the table itself does not (''foreign key on partitions''), and mapped tables with a second foreign key to a mapped table that the map does not follow (''second foreign key''). SUGGESTION is the add_subject_table call that maps the table, where one does; nothing is changed.';

CREATE FUNCTION retention.request_erasure(kind text, subject_id text, reference text DEFAULT NULL,
                                          received_at timestamptz DEFAULT now())
RETURNS bigint LANGUAGE sql VOLATILE
RETURN retention._request_erasure("kind" => $1, "subject_id" => $2, "reference" => $3, "received_at" => $4);
COMMENT ON FUNCTION retention.request_erasure(text, text, text, timestamptz) IS
'Records an erasure request (GDPR Art. 17) for the subject SUBJECT_ID of KIND, due one month after RECEIVED_AT (Art. 12(3)). The id is kept only until the request is processed; the audit log only ever sees its blind index. Returns the request id.';

CREATE FUNCTION retention.request_access(kind text, subject_id text, reference text DEFAULT NULL,
                                         received_at timestamptz DEFAULT now())
RETURNS bigint LANGUAGE sql VOLATILE
RETURN retention._request_access("kind" => $1, "subject_id" => $2, "reference" => $3, "received_at" => $4);
COMMENT ON FUNCTION retention.request_access(text, text, text, timestamptz) IS
'Records a request of access and portability (GDPR Art. 15 and 20) by the subject SUBJECT_ID of KIND, due one month after RECEIVED_AT (Art. 12(3)), extended and refused like an erasure request (refusal grounds Art. 12(5) and 15(4)). The id is kept only until the request is delivered (retention.deliver_access); the audit log only ever sees its blind index. Returns the request id.';

CREATE FUNCTION retention.deliver_access(request bigint)
RETURNS jsonb LANGUAGE sql VOLATILE
RETURN retention._deliver_access("request" => $1);
COMMENT ON FUNCTION retention.deliver_access(bigint) IS
'Produces the answer to access request REQUEST, once: one JSON document with the subject''s rows from every table of the kind''s map (each row marked restricted or anonymised where a stage applies, each table with the masked columns, the purposes, legal bases, retention periods, statutory minimums and holds), read as each table''s owner from the tables both the kind''s owner and the caller may read. The document is returned and never stored; the request is completed, its subject id forgotten, and the audit log records the rows delivered per table under the blind index. A second call is refused: a new copy needs a new request.';

CREATE FUNCTION retention.access_certificate(request bigint)
RETURNS jsonb LANGUAGE sql STABLE
RETURN retention._access_certificate("request" => $1);
COMMENT ON FUNCTION retention.access_certificate(bigint) IS
'The proof that access request REQUEST was answered: receipt, due date, extensions, delivery (or refusal) and whether it was on time, the rows delivered per table, and whether all of it is what the audit chain recorded. No personal data.';

CREATE FUNCTION retention.extend_request(request bigint, months integer, reason text)
RETURNS timestamptz LANGUAGE sql VOLATILE
RETURN retention._extend_request("id" => $1, "months" => $2, "reason" => $3);
COMMENT ON FUNCTION retention.extend_request(bigint, integer, text) IS
'Extends a pending request''s deadline by MONTHS (at most two in all), within the first month, with the REASON given to the subject (GDPR Art. 12(3)). Returns the new due date.';

CREATE FUNCTION retention.refuse_request(request bigint, ground text)
RETURNS text LANGUAGE sql VOLATILE
RETURN retention._refuse_request("id" => $1, "ground" => $2);
COMMENT ON FUNCTION retention.refuse_request(bigint, text) IS
'Refuses a pending request: an erasure request on a ground of GDPR Art. 17(3) (''17(3)(a)'' … ''17(3)(e)''), an access request on Art. 12(5) (manifestly unfounded or excessive) or 15(4) (the rights of others). Returns the ground as recorded.';

CREATE FUNCTION retention.place_hold(reason text, kind text DEFAULT NULL, subject_id text DEFAULT NULL,
                                     target regclass DEFAULT NULL, filter text DEFAULT NULL,
                                     until timestamptz DEFAULT NULL)
RETURNS bigint LANGUAGE sql VOLATILE
RETURN retention._place_hold("reason" => $1, "kind" => $2, "subject_id" => $3, "target" => $4::oid, "filter" => $5, "until" => $6);
COMMENT ON FUNCTION retention.place_hold(text, text, text, regclass, text, timestamptz) IS
'Places a legal hold (a tax audit, a lawsuit) on a subject (KIND, SUBJECT_ID; stored as blind index only), a whole table (TARGET) or part of one (TARGET, FILTER), optionally UNTIL a date. Held rows are never marked, anonymised, purged or erased; runs and certificates count and name the hold. Returns the hold id.';

CREATE FUNCTION retention.release_hold(hold bigint)
RETURNS boolean LANGUAGE sql VOLATILE
RETURN retention._release_hold("id" => $1);
COMMENT ON FUNCTION retention.release_hold(bigint) IS 'Releases a legal hold. Returns true if it was active.';

CREATE PROCEDURE retention.process_erasures()
LANGUAGE plpgsql
AS $proc$
-- Erases each pending subject in its own transaction (atomically per
-- subject), oldest deadline first.
DECLARE
    req       bigint;
    e_state   text;
    isolation text := pg_catalog.current_setting('default_transaction_isolation');
    path      text := pg_catalog.current_setting('search_path');
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false);
    -- One READ COMMITTED transaction per subject, whatever the session's
    -- default (restored at the end).
    PERFORM pg_catalog.set_config('default_transaction_isolation', 'read committed', false);
    IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
        COMMIT;
    END IF;
    FOR req IN SELECT r.id FROM retention.requests r
                WHERE r.status OPERATOR(pg_catalog.=) 'received' AND r.request_type OPERATOR(pg_catalog.=) 'erasure'
                ORDER BY r.due_at, r.id LOOP
        BEGIN
            PERFORM retention._erase_subject("request" => req);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE;
            RAISE WARNING 'erasure request % failed with SQLSTATE %; it stays pending', req, e_state;
        END;
        COMMIT;
    END LOOP;
    PERFORM pg_catalog.set_config('default_transaction_isolation', isolation, false);
    PERFORM pg_catalog.set_config('search_path', path, false);
END
$proc$;
COMMENT ON PROCEDURE retention.process_erasures() IS
'Processes every pending erasure request: erases the subject across its tables in foreign-key-safe order (deepest first) in one transaction per subject, keeping rows under a hold or a statutory minimum. Also run at the end of CALL retention.run().';

COMMENT ON FUNCTION retention.request_erasure_trigger() IS
'Trigger function for applications: files an erasure request for the row''s subject (arguments: kind, id column), e.g. when an account is flagged for deletion; a subject with a pending request is not filed twice. Runs with the rights of the role whose change fires it, which must be a member of the kind''s owner or hold DELETE on the kind''s root table.';

CREATE FUNCTION retention.verify_audit(anchor jsonb DEFAULT NULL)
RETURNS TABLE (ok boolean, entries bigint, first_broken_id bigint, problem text, head_hash text)
LANGUAGE sql STABLE
BEGIN ATOMIC SELECT * FROM retention._verify_audit("anchor" => $1); END;
COMMENT ON FUNCTION retention.verify_audit(jsonb) IS
'Recomputes the audit log''s hash chain; names the first entry that was altered, removed or reordered. With ANCHOR (a value of retention.audit_anchor() kept outside the database) it also checks that the entry the anchor names is still there, unchanged, and that the chain has not shrunk: removing entries from the end of the chain is found only this way.';

CREATE FUNCTION retention.audit_anchor()
RETURNS jsonb LANGUAGE sql STABLE
RETURN retention._audit_anchor();
COMMENT ON FUNCTION retention.audit_anchor() IS
'The audit chain''s anchor: its number of entries and its newest entry''s id and hash. Keep it outside the database (retention.erasure_ledger() includes one) and pass it to retention.verify_audit(anchor) later: entries removed from the end of the chain are found that way.';

CREATE FUNCTION retention.erasure_certificate(request bigint)
RETURNS jsonb LANGUAGE sql STABLE
RETURN retention._erasure_certificate("request" => $1);
COMMENT ON FUNCTION retention.erasure_certificate(bigint) IS
'The proof of an erasure request: reference, blind index, received / due / completed times, per table the rows purged, anonymised, retained (with the legal ground) and held (with the hold), whether a VACUUM has finished since (vacuumed_at, row_versions: until one does, old versions of the erased rows may remain in the table''s files), and the audit-chain hash at completion. Holds no subject id.';

CREATE FUNCTION retention.erasure_certificate_text(request bigint)
RETURNS text LANGUAGE sql STABLE
BEGIN ATOMIC
SELECT concat_ws(E'\n',
    'Erasure certificate for request ' || (c ->> 'request') || coalesce(' (reference ' || (c ->> 'reference') || ')', ''),
    'Subject: ' || (c ->> 'kind') || ', blind index ' || (c ->> 'subject_blind_index'),
    'Received: ' || (c ->> 'received_at') || '   due: ' || (c ->> 'due_at') ||
        CASE WHEN (c ->> 'extended_months')::int > 0 THEN ' (extended by ' || (c ->> 'extended_months') || ' months)' ELSE '' END,
    'Status: ' || (c ->> 'status') || coalesce(' at ' || (c ->> 'completed_at'), '') ||
        CASE WHEN (c ->> 'on_time')::boolean THEN ', within the deadline' WHEN (c ->> 'on_time')::boolean IS FALSE THEN ', AFTER the deadline' ELSE '' END,
    CASE WHEN c ->> 'refusal_ground' IS NOT NULL THEN 'Refused: ' || (c ->> 'refusal_ground') END,
    (SELECT string_agg(format('  %s: %s purged, %s anonymised, %s retained%s, %s held%s%s',
                              t ->> 'table', t ->> 'purged', t ->> 'anonymised', t ->> 'retained',
                              coalesce(' (' || (t ->> 'retained_ground') || ')', ''), t ->> 'held',
                              coalesce(' (' || (SELECT string_agg('hold ' || (h ->> 'hold') || ': ' || (h ->> 'reason'), '; ')
                                                  FROM jsonb_array_elements(t -> 'holds') h) || ')', ''),
                              coalesce(', ' || (t ->> 'kept_referenced') || ' kept: rows kept elsewhere still reference them', '') ||
                              coalesce(', ' || (t ->> 'remaining') || ' REMAINING: ' || coalesce(t ->> 'problem', 'not erased'), '') ||
                              CASE WHEN NOT t ? 'row_versions' THEN ''
                                   WHEN t ->> 'vacuumed_at' IS NOT NULL THEN '; vacuumed at ' || (t ->> 'vacuumed_at')
                                   ELSE '; not vacuumed since: old row versions may remain in the table''s files' END), E'\n')
       FROM jsonb_array_elements(c -> 'tables') t),
    CASE WHEN c -> 'sweep' IS NOT NULL AND c -> 'sweep' <> 'null' THEN
        'Final sweep for the subject''s identifiers after the erasure: ' ||
        coalesce((SELECT string_agg(CASE WHEN s ->> 'rows' IS NULL
                                         THEN coalesce(s ->> 'table' || ': ', '') || (s ->> 'note')
                                         ELSE format('%s.%s: %s rows%s', s ->> 'table', s ->> 'column', s ->> 'rows',
                                                     CASE WHEN (s ->> 'in_map')::boolean THEN ' (in the map)' ELSE ' (OUTSIDE THE MAP)' END) END, '; ')
                    FROM jsonb_array_elements(c -> 'sweep') s), 'found nowhere') END,
    'Audit chain: ' || coalesce(c ->> 'audit_hash', '-') ||
        CASE WHEN (c ->> 'audit_chain_verified')::boolean THEN ' (chain verified)' ELSE ' (CHAIN BROKEN)' END ||
        CASE WHEN NOT (c ->> 'audit_entry_found')::boolean AND c ->> 'status' <> 'received'
             THEN '; ITS COMPLETION ENTRY IS MISSING FROM THE CHAIN' ELSE '' END ||
        CASE WHEN (c ->> 'audit_record_matches')::boolean THEN '; the request record matches its audit entries'
             ELSE '; THE REQUEST RECORD DIFFERS FROM ITS AUDIT ENTRIES' END)
FROM (SELECT retention.erasure_certificate($1) AS c) s;
END;
COMMENT ON FUNCTION retention.erasure_certificate_text(bigint) IS 'The erasure certificate as text an auditor can read.';

CREATE FUNCTION retention.erasure_ledger(since timestamptz DEFAULT NULL)
RETURNS jsonb LANGUAGE sql STABLE
RETURN retention._erasure_ledger("since" => $1);
COMMENT ON FUNCTION retention.erasure_ledger(timestamptz) IS
'The completed erasures as a JSON array of request, kind, blind index and completion time: no personal data. Keep a copy outside the database; after restoring a backup, pass it to retention.reapply_erasures.';

CREATE FUNCTION retention.reapply_erasures(since timestamptz DEFAULT NULL, ledger jsonb DEFAULT NULL)
RETURNS TABLE (kind text, subject_blind_index text, request bigint, status text)
LANGUAGE sql VOLATILE
BEGIN ATOMIC SELECT * FROM retention._reapply_erasures("since" => $1, "ledger" => $2); END;
COMMENT ON FUNCTION retention.reapply_erasures(timestamptz, jsonb) IS
'Erases again every subject of the erasure LEDGER (default: this database''s own, completed since SINCE) that is present, matching root rows by blind index: run it after every restore so that erased people do not come back from a backup.';
