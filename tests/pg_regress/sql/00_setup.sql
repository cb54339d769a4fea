-- pg_retention lives in its own schema, created with the extension.
-- Installing it also creates two NOLOGIN roles (once per cluster):
--   retention_admin    declares, changes and runs policies
--   retention_auditor  reads policies, previews and the run log
CREATE EXTENSION pg_retention;

SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'retention\_%' ORDER BY 1;

-- Everything the extension owns, for reference.
SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS arguments
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'retention' AND p.proname NOT LIKE '\_%'
 ORDER BY 1, 2;

SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'retention' AND c.relkind IN ('r', 'v') ORDER BY 1;

-- Every public function is documented.
SELECT p.proname
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'retention' AND p.proname NOT LIKE '\_%'
   AND obj_description(p.oid, 'pg_proc') IS NULL;
