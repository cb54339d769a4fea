-- A small web shop with six years of history: the demo data set of `make run`.
-- Deterministic (fixed seed), a few seconds to load.
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS shop CASCADE;
CREATE SCHEMA shop;
DO $$ BEGIN PERFORM setseed(0.42); END $$;

CREATE TABLE shop.customers (
    id          bigint PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    full_name   text NOT NULL,
    created_at  timestamptz NOT NULL,
    last_login  timestamptz NOT NULL,
    closed_at   timestamptz,
    restricted_at timestamptz,    -- set by the mark stage (GDPR Art. 18)
    anonymised_at timestamptz     -- set by the anonymise stage
);

CREATE TABLE shop.orders (
    id           bigint PRIMARY KEY,
    customer_id  bigint REFERENCES shop.customers (id) ON DELETE SET NULL,
    placed_at    timestamptz NOT NULL,
    amount       numeric(10, 2) NOT NULL,
    ship_to      text,
    anonymised_at timestamptz
);

CREATE TABLE shop.newsletter_signups (
    id               bigint PRIMARY KEY,
    email            text NOT NULL,
    signed_up_at     timestamptz NOT NULL,
    unsubscribed_at  timestamptz
);

CREATE TABLE shop.support_tickets (
    id           bigint PRIMARY KEY,
    customer_id  bigint REFERENCES shop.customers (id) ON DELETE CASCADE,
    subject      text NOT NULL,
    body         text NOT NULL,
    opened_at    timestamptz NOT NULL,
    closed_at    timestamptz
);

-- Web server access log: no primary key, as such logs usually are.
CREATE TABLE shop.web_access_log (
    client_ip   inet NOT NULL,
    path        text NOT NULL,
    user_agent  text,
    logged_at   timestamptz NOT NULL
);

INSERT INTO shop.customers
SELECT g,
       'customer' || g || '@example.com',
       'Customer ' || g,
       c.created,
       c.created + random() * (now() - c.created),
       CASE WHEN random() < 0.25 THEN c.created + random() * (now() - c.created) END,
       NULL, NULL
  FROM generate_series(1, 5000) g,
       LATERAL (SELECT now() - random() * interval '6 years' + g * interval '0 s' AS created) c;

INSERT INTO shop.orders
SELECT g, 1 + (g * 7919) % 5000, now() - random() * interval '12 years', round((5 + random() * 200)::numeric, 2),
       'Street ' || g, NULL
  FROM generate_series(1, 20000) g;

INSERT INTO shop.newsletter_signups
SELECT g, 'reader' || g || '@example.org', s.at,
       CASE WHEN random() < 0.4 THEN s.at + random() * (now() - s.at) END
  FROM generate_series(1, 3000) g,
       LATERAL (SELECT now() - random() * interval '5 years' + g * interval '0 s' AS at) s;

INSERT INTO shop.support_tickets
SELECT g, 1 + (g * 104729) % 5000, 'Question ' || g, 'Ticket text ' || g, t.opened,
       CASE WHEN random() < 0.9 THEN t.opened + random() * interval '20 days' END
  FROM generate_series(1, 4000) g,
       LATERAL (SELECT now() - random() * interval '6 years' + g * interval '0 s' AS opened) t;

INSERT INTO shop.web_access_log
SELECT ('10.' || (g % 250) || '.' || (g / 250 % 250) || '.' || (g % 97))::inet,
       '/products/' || (g % 500),
       'Mozilla/5.0 (demo ' || (g % 13) || ')',
       now() - random() * interval '1 year'
  FROM generate_series(1, 100000) g;

CREATE INDEX ON shop.orders (placed_at);
CREATE INDEX ON shop.orders (customer_id);
CREATE INDEX ON shop.customers (closed_at);
CREATE INDEX ON shop.support_tickets (closed_at);
CREATE INDEX ON shop.support_tickets (customer_id);
CREATE INDEX ON shop.web_access_log (logged_at);
ANALYZE;
