-- Randomized oracle test: one case = random tables, policies, holds and an
-- erasure request, an oracle computed before the run, then the run, then a
-- comparison. Loaded once per database by tests/fuzz/run.sh.
--
-- The model: a root table p, a child c (c.pid -> p.id) and a grandchild g
-- (g.cid -> c.id), each foreign key with a random ON DELETE action; on each
-- table, with some probability, a policy (clock at; purge after 365 days,
-- and sometimes an anonymise stage after 200 days that nulls note; maybe
-- filtered by flag; small random batches); with some probability a legal
-- hold on each table (whole, or rows with keep_me); a subject kind rooted
-- at p, and sometimes a hold on one subject and an erasure request for one
-- subject. The oracle decides, before anything runs, which rows must exist
-- afterwards and with which values: held rows are never deleted or
-- changed, due rows go (or are masked) unless a hold or a referencing row
-- keeps them, and the foreign keys' actions apply to what goes.
CREATE SCHEMA IF NOT EXISTS fuzz;

-- A row's own table: due for purge / for anonymisation, held by the table's hold.
CREATE OR REPLACE FUNCTION fuzz.due(tab text, at timestamptz, flag boolean, age interval DEFAULT interval '365 days')
RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN coalesce((SELECT m.policy IS NOT NULL AND at < now() - age AND (m.policy = 'all' OR flag)
                       FROM fz.model m WHERE m.t = tab), false);
END $$;
CREATE OR REPLACE FUNCTION fuzz.anonymises(tab text) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN coalesce((SELECT m.anonymise FROM fz.model m WHERE m.t = tab), false);
END $$;
CREATE OR REPLACE FUNCTION fuzz.held(tab text, keep_me boolean) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN coalesce((SELECT m.hold = 'whole' OR (m.hold = 'keep_me' AND keep_me) FROM fz.model m WHERE m.t = tab), false);
END $$;
-- The subject under a legal hold (NULL: none), and whether a row, by the
-- subject it belongs to now (simulated state), is held with it.
CREATE OR REPLACE FUNCTION fuzz.held_subject() RETURNS int LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT m.subject FROM fz.model m WHERE m.t = 'p');
END $$;
CREATE OR REPLACE FUNCTION fuzz.held_p(id int, keep_me boolean) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN fuzz.held('p', keep_me) OR id IS NOT DISTINCT FROM fuzz.held_subject();
END $$;
CREATE OR REPLACE FUNCTION fuzz.held_c(pid int, keep_me boolean) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN fuzz.held('c', keep_me) OR coalesce(pid = fuzz.held_subject(), false);
END $$;
CREATE OR REPLACE FUNCTION fuzz.held_g(cid int, keep_me boolean) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN fuzz.held('g', keep_me)
        OR EXISTS (SELECT 1 FROM fz.sc y WHERE y.id = cid AND y.pid = fuzz.held_subject());
END $$;

-- The foreign key c -> g's action on the simulated grandchildren of c rows
-- that are gone (SET DEFAULT: the column has no default, so NULL).
CREATE OR REPLACE FUNCTION fuzz.apply_c_to_g(action text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF action = 'CASCADE' THEN
        DELETE FROM fz.sg y WHERE y.cid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM fz.sc x WHERE x.id = y.cid);
    ELSIF action IN ('SET NULL', 'SET DEFAULT') THEN
        UPDATE fz.sg y SET cid = NULL WHERE y.cid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM fz.sc x WHERE x.id = y.cid);
    END IF;
END $$;

-- A table's anonymise stage on the simulated rows: rows older than 200 days,
-- not yet anonymised, not held, lose their note (anon_at: set).
CREATE OR REPLACE FUNCTION fuzz.anonymise(tab text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF NOT fuzz.anonymises(tab) THEN
        RETURN;
    END IF;
    IF tab = 'g' THEN
        UPDATE fz.sg z SET note = NULL, anon_at = 'epoch'
         WHERE fuzz.due('g', z.at, z.flag, interval '200 days') AND z.anon_at IS NULL AND NOT fuzz.held_g(z.cid, z.keep_me);
    ELSIF tab = 'c' THEN
        UPDATE fz.sc y SET note = NULL, anon_at = 'epoch'
         WHERE fuzz.due('c', y.at, y.flag, interval '200 days') AND y.anon_at IS NULL AND NOT fuzz.held_c(y.pid, y.keep_me);
    ELSE
        UPDATE fz.sp x SET note = NULL, anon_at = 'epoch'
         WHERE fuzz.due('p', x.at, x.flag, interval '200 days') AND x.anon_at IS NULL AND NOT fuzz.held_p(x.id, x.keep_me);
    END IF;
END $$;

-- Erasure of subject s (kind p): deepest table first. A hold on the subject
-- keeps everything; a whole-table hold on a table or above it keeps its
-- rows; a row below a row held by a filter (any depth) stays; a row still
-- referenced by a kept row stays.
CREATE OR REPLACE FUNCTION fuzz.erase(s int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    whole_p boolean := (SELECT hold = 'whole' FROM fz.model WHERE t = 'p') IS TRUE;
    whole_c boolean := (SELECT hold = 'whole' FROM fz.model WHERE t = 'c') IS TRUE;
    whole_g boolean := (SELECT hold = 'whole' FROM fz.model WHERE t = 'g') IS TRUE;
BEGIN
    IF s IS NOT DISTINCT FROM fuzz.held_subject() THEN
        RETURN;
    END IF;
    IF NOT (whole_g OR whole_c OR whole_p) THEN
        DELETE FROM fz.sg z WHERE z.cid IN (SELECT y.id FROM fz.sc y WHERE y.pid = s)
           AND NOT fuzz.held('g', z.keep_me)
           AND NOT EXISTS (SELECT 1 FROM fz.sc y WHERE y.id = z.cid AND fuzz.held('c', y.keep_me))
           AND NOT EXISTS (SELECT 1 FROM fz.sp x WHERE x.id = s AND fuzz.held('p', x.keep_me));
    END IF;
    IF NOT (whole_c OR whole_p) THEN
        DELETE FROM fz.sc y WHERE y.pid = s
           AND NOT fuzz.held('c', y.keep_me)
           AND NOT EXISTS (SELECT 1 FROM fz.sp x WHERE x.id = s AND fuzz.held('p', x.keep_me))
           AND NOT EXISTS (SELECT 1 FROM fz.sg z WHERE z.cid = y.id);
    END IF;
    IF NOT whole_p THEN
        DELETE FROM fz.sp x WHERE x.id = s AND NOT fuzz.held('p', x.keep_me)
           AND NOT EXISTS (SELECT 1 FROM fz.sc y WHERE y.pid = x.id);
    END IF;
END $$;

-- A random age, never within a day of the 200- and 365-day cutoffs.
CREATE OR REPLACE FUNCTION fuzz.random_at() RETURNS timestamptz LANGUAGE sql VOLATILE AS $$
    SELECT now() - (CASE floor(random() * 3)::int WHEN 0 THEN 1 + floor(random() * 190)
                                                  WHEN 1 THEN 210 + floor(random() * 150)
                                                  ELSE 370 + floor(random() * 400) END) * interval '1 day' $$;

CREATE OR REPLACE FUNCTION fuzz.setup(seed bigint) RETURNS text LANGUAGE plpgsql AS $fn$
DECLARE
    actions text[] := ARRAY['CASCADE', 'SET NULL', 'SET DEFAULT', 'RESTRICT', 'NO ACTION'];
    a_pc text; a_cg text;
    tb text; n int;
    held_subject int;
    erase_id int;
BEGIN
    PERFORM setseed(((seed % 2000000) - 1000000) / 1000001.0);
    DROP SCHEMA IF EXISTS fz CASCADE;
    CREATE SCHEMA fz;
    a_pc := actions[1 + floor(random() * 5)::int];
    a_cg := actions[1 + floor(random() * 5)::int];
    -- A cascade into rows that a RESTRICT key still protects fails the
    -- batch; that is an error, not an outcome, and outside the model.
    IF a_pc = 'CASCADE' AND a_cg IN ('RESTRICT', 'NO ACTION') THEN
        a_cg := 'SET NULL';
    END IF;
    CREATE TABLE fz.p (id int PRIMARY KEY, at timestamptz NOT NULL, flag boolean NOT NULL, keep_me boolean NOT NULL,
                       note text, anon_at timestamptz);
    EXECUTE format('CREATE TABLE fz.c (id int PRIMARY KEY, pid int REFERENCES fz.p ON DELETE %s, at timestamptz NOT NULL,
                                       flag boolean NOT NULL, keep_me boolean NOT NULL, note text, anon_at timestamptz)', a_pc);
    EXECUTE format('CREATE TABLE fz.g (id int PRIMARY KEY, cid int REFERENCES fz.c ON DELETE %s, at timestamptz NOT NULL,
                                       flag boolean NOT NULL, keep_me boolean NOT NULL, note text, anon_at timestamptz)', a_cg);
    CREATE INDEX ON fz.c (pid);
    CREATE INDEX ON fz.g (cid);
    n := 2 + floor(random() * 10)::int;
    INSERT INTO fz.p SELECT k, fuzz.random_at(), random() < 0.5, random() < 0.25, 'p' || k, NULL
      FROM generate_series(1, n) k;
    n := floor(random() * 18)::int;
    INSERT INTO fz.c SELECT k, CASE WHEN random() < 0.1 THEN NULL ELSE (SELECT id FROM fz.p WHERE k > 0 ORDER BY random() LIMIT 1) END,
                            fuzz.random_at(), random() < 0.5, random() < 0.25, 'c' || k, NULL
      FROM generate_series(1, n) k;
    n := floor(random() * 24)::int;
    IF EXISTS (SELECT 1 FROM fz.c) THEN
        INSERT INTO fz.g SELECT k, CASE WHEN random() < 0.1 THEN NULL ELSE (SELECT id FROM fz.c WHERE k > 0 ORDER BY random() LIMIT 1) END,
                                fuzz.random_at(), random() < 0.5, random() < 0.25, 'g' || k, NULL
          FROM generate_series(1, n) k;
    END IF;
    CREATE TABLE fz.model (t text PRIMARY KEY, policy text, anonymise boolean NOT NULL DEFAULT false, hold text, subject int);
    INSERT INTO fz.model (t) VALUES ('p'), ('c'), ('g');
    FOREACH tb IN ARRAY ARRAY['p', 'c', 'g'] LOOP
        IF random() < 0.65 THEN
            UPDATE fz.model SET policy = CASE WHEN random() < 0.4 THEN 'flag' ELSE 'all' END WHERE model.t = tb;
            PERFORM retention.create_policy('fz_' || tb, ('fz.' || tb)::regclass, 'at', interval '365 days',
                        filter => CASE WHEN (SELECT policy FROM fz.model WHERE model.t = tb) = 'flag' THEN 'flag' END,
                        batch_size => 1 + floor(random() * 6)::int, drop_partitions => false);
            IF random() < 0.4 THEN
                UPDATE fz.model SET anonymise = true WHERE model.t = tb;
                PERFORM retention.add_stage('fz_' || tb, interval '200 days', 'anonymise', column_name => 'anon_at');
                PERFORM retention.set_mask('fz_' || tb, 'note', 'null');
            END IF;
        END IF;
        IF random() < 0.35 THEN
            UPDATE fz.model SET hold = CASE WHEN random() < 0.25 THEN 'whole' ELSE 'keep_me' END WHERE model.t = tb;
            PERFORM retention.place_hold('fuzz hold on ' || tb, target => ('fz.' || tb)::regclass,
                        filter => CASE WHEN (SELECT hold FROM fz.model WHERE model.t = tb) = 'keep_me' THEN 'keep_me' END);
        END IF;
    END LOOP;
    PERFORM retention.register_subject('fz_person', 'fz.p', 'id');
    IF random() < 0.3 THEN
        held_subject := (SELECT id FROM fz.p ORDER BY random() LIMIT 1);
        UPDATE fz.model SET subject = held_subject WHERE model.t = 'p';
        PERFORM retention.place_hold('fuzz hold on a subject', kind => 'fz_person', subject_id => held_subject::text);
    END IF;
    IF random() < 0.5 THEN
        erase_id := (SELECT id FROM fz.p ORDER BY random() LIMIT 1);
        PERFORM retention.request_erasure('fz_person', erase_id::text);
    END IF;

    -- The oracle: the run's expected end state, simulated on copies.
    -- Policies run children first (g, then c, then p), each its purge stage
    -- then its anonymise stage; erasures last.
    CREATE TABLE fz.sp AS SELECT * FROM fz.p;
    CREATE TABLE fz.sc AS SELECT * FROM fz.c;
    CREATE TABLE fz.sg AS SELECT * FROM fz.g;
    -- Held rows before anything runs, for an independent check.
    CREATE TABLE fz.held_before AS
        SELECT 'p' AS t, to_jsonb(x) AS r FROM fz.p x WHERE fuzz.held_p(x.id, x.keep_me)
        UNION ALL SELECT 'c', to_jsonb(x) FROM fz.c x WHERE fuzz.held_c(x.pid, x.keep_me)
        UNION ALL SELECT 'g', to_jsonb(x) FROM fz.g x WHERE fuzz.held_g(x.cid, x.keep_me);
    DELETE FROM fz.sg z WHERE fuzz.due('g', z.at, z.flag) AND NOT fuzz.held_g(z.cid, z.keep_me);
    PERFORM fuzz.anonymise('g');
    DELETE FROM fz.sc x WHERE fuzz.due('c', x.at, x.flag) AND NOT fuzz.held_c(x.pid, x.keep_me)
        AND NOT (a_cg IN ('RESTRICT', 'NO ACTION') AND EXISTS (SELECT 1 FROM fz.sg y WHERE y.cid = x.id))
        AND NOT (a_cg IN ('CASCADE', 'SET NULL', 'SET DEFAULT')
                 AND EXISTS (SELECT 1 FROM fz.sg y WHERE y.cid = x.id AND fuzz.held('g', y.keep_me)));
    PERFORM fuzz.apply_c_to_g(a_cg);
    PERFORM fuzz.anonymise('c');
    DELETE FROM fz.sp x WHERE fuzz.due('p', x.at, x.flag) AND NOT fuzz.held_p(x.id, x.keep_me)
        AND NOT (a_pc IN ('RESTRICT', 'NO ACTION') AND EXISTS (SELECT 1 FROM fz.sc y WHERE y.pid = x.id))
        AND NOT (a_pc IN ('CASCADE', 'SET NULL', 'SET DEFAULT') AND EXISTS (
                SELECT 1 FROM fz.sc y WHERE y.pid = x.id
                   AND (fuzz.held('c', y.keep_me)
                        OR (a_pc = 'CASCADE' AND a_cg IN ('CASCADE', 'SET NULL', 'SET DEFAULT')
                            AND EXISTS (SELECT 1 FROM fz.sg z WHERE z.cid = y.id AND fuzz.held('g', z.keep_me))))));
    IF a_pc = 'CASCADE' THEN
        DELETE FROM fz.sc y WHERE y.pid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM fz.sp x WHERE x.id = y.pid);
        PERFORM fuzz.apply_c_to_g(a_cg);
    ELSIF a_pc IN ('SET NULL', 'SET DEFAULT') THEN
        UPDATE fz.sc y SET pid = NULL WHERE y.pid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM fz.sp x WHERE x.id = y.pid);
    END IF;
    PERFORM fuzz.anonymise('p');
    IF erase_id IS NOT NULL THEN
        PERFORM fuzz.erase(erase_id);
    END IF;
    RETURN format('seed %s: p->c %s, c->g %s, model %s, held subject %s, erase %s; rows p %s c %s g %s',
                  seed, a_pc, a_cg,
                  (SELECT jsonb_object_agg(t, jsonb_build_object('policy', policy, 'anonymise', anonymise, 'hold', hold)) FROM fz.model),
                  coalesce(held_subject::text, '-'), coalesce(erase_id::text, '-'),
                  (SELECT count(*) FROM fz.p), (SELECT count(*) FROM fz.c), (SELECT count(*) FROM fz.g));
END
$fn$;

-- Compares the end state with the oracle; returns the differences (none:
-- the case passed). When a row was anonymised counts, not the time.
CREATE OR REPLACE FUNCTION fuzz.check() RETURNS SETOF text LANGUAGE plpgsql AS $fn$
BEGIN
    RETURN QUERY
    WITH actual AS (
        SELECT 'p' AS t, to_jsonb(x) - 'anon_at' || jsonb_build_object('anonymised', x.anon_at IS NOT NULL) AS r FROM fz.p x
        UNION ALL SELECT 'c', to_jsonb(x) - 'anon_at' || jsonb_build_object('anonymised', x.anon_at IS NOT NULL) FROM fz.c x
        UNION ALL SELECT 'g', to_jsonb(x) - 'anon_at' || jsonb_build_object('anonymised', x.anon_at IS NOT NULL) FROM fz.g x),
    expected AS (
        SELECT 'p' AS t, to_jsonb(x) - 'anon_at' || jsonb_build_object('anonymised', x.anon_at IS NOT NULL) AS r FROM fz.sp x
        UNION ALL SELECT 'c', to_jsonb(x) - 'anon_at' || jsonb_build_object('anonymised', x.anon_at IS NOT NULL) FROM fz.sc x
        UNION ALL SELECT 'g', to_jsonb(x) - 'anon_at' || jsonb_build_object('anonymised', x.anon_at IS NOT NULL) FROM fz.sg x)
    SELECT coalesce(a.t, e.t) || ' ' || (coalesce(a.r, e.r) ->> 'id') || ': '
           || CASE WHEN a.r IS NULL THEN 'missing or changed, expected ' || e.r::text
                   ELSE 'not expected: ' || a.r::text END
      FROM actual a FULL JOIN expected e ON a.t = e.t AND a.r = e.r
     WHERE a.r IS NULL OR e.r IS NULL
    UNION ALL
    -- Independent of the simulation: every held row is there, unchanged.
    SELECT 'held row changed or gone: ' || h.t || ' ' || (h.r ->> 'id')
      FROM fz.held_before h
     WHERE NOT EXISTS (SELECT 1 FROM fz.p x WHERE h.t = 'p' AND to_jsonb(x) = h.r)
       AND NOT EXISTS (SELECT 1 FROM fz.c x WHERE h.t = 'c' AND to_jsonb(x) = h.r)
       AND NOT EXISTS (SELECT 1 FROM fz.g x WHERE h.t = 'g' AND to_jsonb(x) = h.r)
    UNION ALL
    -- No run failed, and every request ended.
    SELECT 'policy ' || policy || ' ' || status || coalesce(': ' || error, '')
      FROM retention.runs WHERE policy LIKE 'fz\_%' AND status NOT IN ('succeeded', 'skipped')
    UNION ALL
    SELECT 'request ' || id || ' is ' || status FROM retention.requests WHERE kind = 'fz_person' AND status = 'received';
END
$fn$;

-- Removes what a case declared.
CREATE OR REPLACE FUNCTION fuzz.teardown() RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM retention.drop_policy(name) FROM retention.policies WHERE name LIKE 'fz\_%';
    UPDATE retention.holds SET released_at = now() WHERE released_at IS NULL AND reason LIKE 'fuzz hold%';
    ALTER TABLE retention.erasure_requests DISABLE TRIGGER erasure_requests_guard;
    DELETE FROM retention.erasure_requests WHERE kind = 'fz_person';
    ALTER TABLE retention.erasure_requests ENABLE TRIGGER erasure_requests_guard;
    PERFORM retention.drop_subject('fz_person') FROM retention.subject_kinds WHERE kind = 'fz_person';
    DELETE FROM retention.run_log WHERE policy LIKE 'fz\_%';
    DROP SCHEMA IF EXISTS fz CASCADE;
END
$fn$;
