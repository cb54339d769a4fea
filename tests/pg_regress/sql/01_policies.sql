-- Declaring, inspecting, changing and dropping retention policies.
SET client_min_messages = notice;

CREATE TABLE customers (
    id          bigint PRIMARY KEY,
    email       text NOT NULL,
    created_at  timestamptz NOT NULL,
    closed_at   timestamptz,
    status      text NOT NULL DEFAULT 'active'
);
CREATE INDEX ON customers (created_at);

-- A policy: customers closed more than two years ago are deleted.
-- The clock is the start of the retention period: here the closing date,
-- falling back to the creation date.
SELECT retention.create_policy(
    name        => 'closed_customers',
    target      => 'customers',
    clock       => 'coalesce(closed_at, created_at)',
    purge_after => interval '2 years',
    filter      => $$status = 'closed'$$,
    batch_size  => 500,
    purpose     => 'customer account administration',
    legal_basis => 'GDPR Art. 6(1)(b); deleted when the contract ends'
) > 0 AS created;

SELECT name, target, clock, clock_type, filter, purge_after, batch_size, skip_locked,
       key_columns, owner, paused, purpose
  FROM retention.policies;

-- Settings change with alter_policy; arguments left out keep their value.
SELECT retention.alter_policy('closed_customers', batch_size => 2000, purge_after => interval '3 years') > 0 AS altered;
SELECT name, purge_after, batch_size, filter FROM retention.policies;

-- A filter can be replaced or dropped.
SELECT retention.alter_policy('closed_customers', drop_filter => true) > 0 AS altered;
SELECT name, filter FROM retention.policies;
SELECT retention.alter_policy('closed_customers', filter => $$status IN ('closed', 'banned')$$) > 0 AS altered;
SELECT name, filter FROM retention.policies;

-- Renaming.
SELECT retention.alter_policy('closed_customers', new_name => 'old_customers') > 0 AS altered;
SELECT name FROM retention.policies;

-- Pausing and resuming (true when the state changed).
SELECT retention.pause_policy('old_customers');
SELECT retention.pause_policy('old_customers');
SELECT name, paused FROM retention.policies;
SELECT retention.resume_policy('old_customers');

-- Dropping.
SELECT retention.drop_policy('old_customers');
SELECT retention.drop_policy('old_customers', if_exists => true);
SELECT retention.drop_policy('old_customers');
SELECT count(*) AS policies FROM retention.policies;

-- A table without a primary key is batched by physical row id; preview says so.
CREATE TABLE access_log (ip inet, path text, logged_at timestamp NOT NULL);
SELECT retention.create_policy('access_log_90d', 'access_log', 'logged_at', interval '90 days') > 0 AS created;
SELECT name, key_columns, clock_type FROM retention.policies;
SELECT policy, due_rows, clock_indexed, note FROM retention.preview('access_log_90d');
SELECT retention.drop_policy('access_log_90d');
