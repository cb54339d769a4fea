-- The demo shop's retention policies: what is kept how long, and why.
SET client_min_messages = warning;

-- Server logs with IP addresses: 90 days for security analysis.
SELECT retention.create_policy('access_log_90d', 'shop.web_access_log', 'logged_at', interval '90 days',
    purpose => 'detecting attacks and faults',
    legal_basis => 'GDPR Art. 6(1)(f), legitimate interest; 90 days');

-- Newsletter readers who unsubscribed: deleted 30 days later.
SELECT retention.create_policy('newsletter_unsubscribed', 'shop.newsletter_signups', 'unsubscribed_at', interval '30 days',
    filter => 'unsubscribed_at IS NOT NULL',
    purpose => 'newsletter delivery',
    legal_basis => 'GDPR Art. 6(1)(a), consent withdrawn');

-- Support tickets: two years after closing.
SELECT retention.create_policy('tickets_closed_2y', 'shop.support_tickets', 'closed_at', interval '2 years',
    filter => 'closed_at IS NOT NULL',
    purpose => 'customer support',
    legal_basis => 'GDPR Art. 6(1)(b); warranty period');

-- Closed customer accounts: restricted 30 days after closing, anonymised
-- after one year, deleted after three (limitation period, BGB §195).
SELECT retention.create_policy('customers_closed', 'shop.customers', 'closed_at', interval '3 years',
    filter => 'closed_at IS NOT NULL',
    purpose => 'customer account',
    legal_basis => 'GDPR Art. 6(1)(b), 17(3)(e); BGB §195 limitation period');
SELECT retention.add_stage('customers_closed', interval '30 days', 'mark', column_name => 'restricted_at');
SELECT retention.add_stage('customers_closed', interval '1 year', 'anonymise', column_name => 'anonymised_at');
SELECT retention.set_mask('customers_closed', 'email', 'pseudonym');
SELECT retention.set_mask('customers_closed', 'full_name', 'constant', '{"value": "(anonymised)"}');
SELECT retention.restrict('shop.customers');

-- Orders are accounting vouchers: ten years (HGB §257, AO §147), counted
-- here from the order date; the delivery address goes after two years.
SELECT retention.create_policy('orders_10y', 'shop.orders', 'placed_at', interval '10 years',
    purpose => 'bookkeeping',
    legal_basis => 'HGB §257, AO §147: 10 years');
SELECT retention.add_stage('orders_10y', interval '2 years', 'anonymise', column_name => 'anonymised_at');
SELECT retention.set_mask('orders_10y', 'ship_to', 'null');

-- Every night at 03:00, pg_cron runs the due work.
SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'pg_retention';
SELECT cron.schedule('pg_retention', '0 3 * * *', 'CALL retention.run()');

-- A customer is a data subject: their data lives in the customer row, in
-- tables found through foreign keys, and in the newsletter list by e-mail.
SELECT retention.register_subject('customer', 'shop.customers', 'id');
SELECT retention.add_subject_table('customer', 'shop.newsletter_signups', 'email', matches => 'email');
-- Orders stay for the books; on erasure they are anonymised with the masks
-- of their policy instead of deleted.
SELECT retention.set_subject_table('customer', 'shop.orders', action => 'anonymise');
-- Customer 42 asked to be forgotten.
SELECT retention.request_erasure('customer', '42', reference => 'e-mail of 2026-11-28');
