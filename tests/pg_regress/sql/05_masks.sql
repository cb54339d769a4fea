-- The masking library. Each strategy is a SQL function; the catalogue says
-- which strategies anonymise and which only pseudonymise.
SELECT strategy, kind, column_types FROM retention.mask_strategies ORDER BY strategy;

-- partial: keep a few characters, mask the rest (one fill per character).
SELECT v, retention.mask_partial(v, 2, 2) AS masked
  FROM (VALUES ('DE89370400440532013000'), ('Jürgen'), ('日本語テキスト'), ('abc'), (''), (NULL)) t(v);
SELECT retention.mask_partial('+49 151 23456789', keep_start => 3, keep_end => 0, fill => '#');
SELECT retention.mask_partial('x', -1, 0);

-- email: first character and the domain (or only its top-level domain).
SELECT v, retention.mask_email(v) AS keep_domain, retention.mask_email(v, keep_domain => false) AS hide_domain
  FROM (VALUES ('alice.smith@example.com'), ('ÿvonne@bücher.de'), ('no-at-sign'), ('two@@signs'), ('@nolocal.com'), (''), (NULL)) t(v);

-- pseudonym: keyed HMAC under the database's key; equal in, equal out.
SELECT retention.pseudonym('alice@example.com') = retention.pseudonym('alice@example.com') AS stable,
       retention.pseudonym('alice@example.com') <> retention.pseudonym('bob@example.com') AS distinct_values,
       length(retention.pseudonym('alice@example.com')) AS hex_digits;
-- The key itself is not readable by retention roles.
CREATE ROLE rt_mask_admin NOLOGIN IN ROLE retention_admin;
SET ROLE rt_mask_admin;
SELECT key FROM retention.secrets;
SELECT length(retention.pseudonym('x')) AS admin_may_pseudonymise;
RESET ROLE;
DROP ROLE rt_mask_admin;
-- Rotation: earlier pseudonyms no longer match.
CREATE TEMP TABLE before AS SELECT retention.pseudonym('alice@example.com') AS p;
SELECT retention.rotate_pseudonym_key() IS NOT NULL AS rotated;
SELECT p = retention.pseudonym('alice@example.com') AS still_equal FROM before;

-- hash_random: a key that is thrown away; equal inputs no longer match.
SELECT retention.mask_hash_random('alice') <> retention.mask_hash_random('alice') AS unlinkable;

-- generalise: dates to month or year, numbers to buckets, addresses to networks.
SELECT d, retention.mask_generalise(d, 'month') AS month, retention.mask_generalise(d, 'year') AS year
  FROM (VALUES (date '1984-07-23'), (date '4713-01-01 BC'), (date '5874897-12-31'), (date 'infinity')) t(d);
SELECT retention.mask_generalise(date '2020-02-02', 'week');
SELECT n, retention.mask_generalise(n, 10) AS decade
  FROM (VALUES (37::bigint), (0), (-3), (9223372036854775807)) t(n);
SELECT retention.mask_generalise(5::bigint, 0);
SELECT ip, retention.mask_generalise(ip) AS network, retention.mask_generalise(ip, 16) AS wider
  FROM (VALUES (inet '192.168.17.42'), (inet '2001:db8:85a3::8a2e:370:7334'), (inet '::1')) t(ip);

-- noise: random, within bounds.
SELECT bool_and(retention.mask_noise(1000::bigint, 50) BETWEEN 950 AND 1050) AS int_ok,
       bool_and(retention.mask_noise(-2.5::float8, 0.5) BETWEEN -3 AND -2) AS float_ok,
       bool_and(retention.mask_noise(date '2000-02-29', 10) BETWEEN date '2000-02-19' AND date '2000-03-10') AS date_ok
  FROM generate_series(1, 500);

-- jsonb_drop: remove top-level keys.
SELECT retention.mask_jsonb_drop('{"name": "Alice", "ip": "10.0.0.1", "items": 3}', ARRAY['name', 'ip', 'absent']);
SELECT retention.mask_jsonb_drop('[1, 2]', ARRAY['name']);
