-- Runs purge_layout.sql :times times for :layout, numbering the runs in
-- :rep (set it to 0 first). psql has no loops: the file includes itself.
SELECT :rep + 1 AS rep \gset
\ir purge_layout.sql
SELECT :rep < :times AS again \gset
\if :again
\ir purge_repeat.sql
\endif
