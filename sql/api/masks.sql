------------------------------------------------------------------------------
-- Masking library
------------------------------------------------------------------------------

CREATE VIEW retention.mask_strategies (strategy, kind, column_types, sql_function, options, description) AS
VALUES
    ('null',        'anonymising',     'any nullable column',        NULL,
     NULL,                                         'Overwrites the value with NULL.'),
    ('constant',    'anonymising',     'any',                        NULL,
     'value',                                      'Overwrites the value with one constant of the column''s type.'),
    ('default',     'anonymising',     'any',                        NULL,
     NULL,                                         'Overwrites the value with the column default.'),
    ('partial',     'anonymising',     'text, varchar',              'retention.mask_partial(text, integer, integer, text)',
     'keep_start, keep_end, fill',                 'Keeps a few leading/trailing characters, replaces the rest; values too short to hide anything are masked entirely. Anonymising only if the kept characters do not identify the person.'),
    ('email',       'anonymising',     'text, varchar',              'retention.mask_email(text, boolean)',
     'keep_domain',                                'Keeps the first character of the local part and, optionally, the domain. Anonymising only if the domain does not identify the person (a company domain may).'),
    ('pseudonym',   'pseudonymising',  'text, varchar',              'retention.mask_hmac(text, bytea) with the database key',
     NULL,                                         'HMAC-SHA-256 under the database''s pseudonym key: equal inputs give equal outputs, so joins and counts survive. Whoever holds the key can test guesses: the result is still personal data (GDPR Recital 26).'),
    ('hash_random', 'anonymising',     'text, varchar',              'retention.mask_hash_random(text)',
     NULL,                                         'HMAC-SHA-256 under a random key that is never stored: no way back, and no joins.'),
    ('generalise',  'anonymising',     'date; bigint/integer; inet; text (prefix via partial)', 'retention.mask_generalise(date, text), (bigint, bigint), (inet, integer)',
     'unit (month, year) | width | bits',           'Coarsens a value: a date to its month or year, a number to the lower bound of its bucket, an IP address to its network.'),
    ('noise',       'anonymising',     'double precision, bigint, date', 'retention.mask_noise(value, amount)',
     'amount',                                     'Moves a value by a random amount within ±amount. Protects single values; aggregates over many rows stay close.'),
    ('jsonb_drop',  'anonymising',     'jsonb',                      'retention.mask_jsonb_drop(jsonb, text[])',
     'keys',                                       'Removes the given top-level keys from a jsonb document.');

COMMENT ON VIEW retention.mask_strategies IS
'The masking strategies of pg_retention and whether each anonymises (no way back) or only pseudonymises (still personal data under GDPR Recital 26).';

COMMENT ON FUNCTION retention.mask_partial(text, integer, integer, text) IS
'Keeps KEEP_START leading and KEEP_END trailing characters and replaces each other character with FILL; a value too short to hide anything is masked entirely.';
COMMENT ON FUNCTION retention.mask_email(text, boolean) IS
'Masks an e-mail address to its first character plus ***, keeping the domain (or only the top-level domain when KEEP_DOMAIN is false); text that is not an address is masked entirely.';
COMMENT ON FUNCTION retention.mask_hmac(text, bytea) IS
'HMAC-SHA-256 of VALUE under KEY (at least 16 bytes) as 64 hex digits. Pseudonymising while the key exists.';
COMMENT ON FUNCTION retention.pseudonym(text) IS
'HMAC-SHA-256 of VALUE under the database''s pseudonym key (created on first use, never shown). Pseudonymising: the result is still personal data.';
COMMENT ON FUNCTION retention.rotate_pseudonym_key() IS
'Replaces the database''s pseudonym key with a new random key. Pseudonyms made before no longer match new ones; with the old key gone, the old pseudonyms can no longer be linked to a person by anyone.';
COMMENT ON FUNCTION retention.mask_hash_random(text) IS
'HMAC-SHA-256 under a random key that is thrown away at once: irreversible, and equal inputs do not give equal outputs.';
COMMENT ON FUNCTION retention.mask_generalise(date, text) IS
'The first day of the date''s month or year (UNIT ''month'' or ''year'').';
COMMENT ON FUNCTION retention.mask_generalise(bigint, bigint) IS
'The lower bound of the value''s bucket of WIDTH (37, 10 -> 30; -3, 10 -> -10).';
COMMENT ON FUNCTION retention.mask_generalise(inet, integer) IS
'The network of an IP address: the first BITS bits (default 24 for IPv4, 48 for IPv6), the rest zero.';
COMMENT ON FUNCTION retention.mask_noise(double precision, double precision) IS
'VALUE moved by a random amount within plus or minus AMOUNT.';
COMMENT ON FUNCTION retention.mask_noise(bigint, bigint) IS
'VALUE moved by a random whole amount within plus or minus AMOUNT.';
COMMENT ON FUNCTION retention.mask_noise(date, integer) IS
'VALUE moved by a random number of days within plus or minus DAYS.';
COMMENT ON FUNCTION retention.mask_jsonb_drop(jsonb, text[]) IS
'The document without the given top-level KEYS.';
